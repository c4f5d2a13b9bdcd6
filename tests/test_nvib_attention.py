"""Denoising attention against float64 loops over the formulas of nvib-maths.md §3."""

from __future__ import annotations

import math

import pytest
import torch

from hf_nvib.nvib import (
    denoising_attention_eval,
    denoising_attention_train,
    evaluation_terms,
    training_key_bias,
)

B, H, M, L, E = 2, 3, 4, 5, 4
P = H * E
S = 1 / math.sqrt(E)


def _heads(x: torch.Tensor) -> torch.Tensor:
    """(B, T, P) → (B, H, T, E)."""
    return x.view(x.shape[0], x.shape[1], H, E).transpose(1, 2)


def _setup(seed: int, dtype: torch.dtype = torch.float64) -> dict:
    """Random latents (with one masked and one pruned slot), decoder queries and projections."""
    gen = torch.Generator().manual_seed(seed)
    rnd = lambda *shape: torch.randn(*shape, generator=gen, dtype=dtype)  # noqa: E731
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, -2:] = False  # padding in the second sequence only: batch order matters
    mask[0, 2] = False
    log_pi = torch.log_softmax(rnd(B, L).masked_fill(~mask, -torch.inf), -1)
    return {
        "mu": rnd(B, L, P),
        "logvar": rnd(B, L, P) - 1.0,
        "log_pi": log_pi,
        "mask": mask,
        "query": _heads(rnd(B, M, P)),
        "w_k": rnd(P, P) / math.sqrt(P),
        "b_k": rnd(P),
        "w_v": rnd(P, P) / math.sqrt(P),
        "b_v": rnd(P),
    }


def _loop_train(query, z, log_pi, w_k, b_k, w_v, b_v, scale):
    """logit_{m,i} = s·q_m·k_i + log π_i - (s/2)‖z_i‖², per batch, head, query and key."""
    out = torch.zeros(B, H, M, E, dtype=torch.float64)
    weights = torch.zeros(B, H, M, L, dtype=torch.float64)
    for b in range(B):
        keys = z[b] @ w_k.T + b_k
        values = z[b] @ w_v.T + b_v
        for h in range(H):
            cols = slice(h * E, (h + 1) * E)
            for m in range(M):
                logits = torch.full((L,), -torch.inf, dtype=torch.float64)
                for i in range(L):
                    if torch.isfinite(log_pi[b, i]):
                        logits[i] = (
                            scale * query[b, h, m] @ keys[i, cols]
                            + log_pi[b, i]
                            - 0.5 * scale * z[b, i] @ z[b, i]
                        )
                a = torch.softmax(logits, 0)
                weights[b, h, m] = a
                out[b, h, m] = a @ values[:, cols]
    return out, weights


def _loop_eval(query, mu, logvar, log_pi, w_k, w_v, b_v, scale):
    """Closed form: u = W_kᵀq, t = σ² + 1/s, logit = Σu μ/t + log π - ½Σμ²/t - ½Σ log t,
    value z̃ = (σ²/t)⊙u + ((1/s)/t)⊙μ, out = W_v Σ A z̃ + b_v (the -½Σu²/t term omitted)."""
    out = torch.zeros(B, H, M, E, dtype=torch.float64)
    var = logvar.exp()
    t = var + 1 / scale
    for b in range(B):
        for h in range(H):
            rows = slice(h * E, (h + 1) * E)
            for m in range(M):
                u = w_k[rows].T @ query[b, h, m]
                logits = torch.full((L,), -torch.inf, dtype=torch.float64)
                for i in range(L):
                    if torch.isfinite(log_pi[b, i]):
                        logits[i] = (
                            (u * mu[b, i] / t[b, i]).sum()
                            + log_pi[b, i]
                            - 0.5 * (mu[b, i] ** 2 / t[b, i]).sum()
                            - 0.5 * t[b, i].log().sum()
                        )
                a = torch.softmax(logits, 0)
                z_tilde = var[b] / t[b] * u + (1 / scale) / t[b] * mu[b]
                out[b, h, m] = w_v[rows] @ (a @ z_tilde) + b_v[rows]
    return out


def test_training_key_bias_values() -> None:
    d = _setup(0)
    bias = training_key_bias(d["mu"], d["log_pi"], S)
    want = d["log_pi"] - 0.5 * S * d["mu"].square().sum(-1)
    assert torch.equal(torch.isneginf(bias), ~d["mask"])
    torch.testing.assert_close(bias[d["mask"]], want[d["mask"]])
    assert training_key_bias(d["mu"].bfloat16(), d["log_pi"].float(), S).dtype == torch.float32


@pytest.mark.parametrize("output_weights", [False, True])
def test_training_form_matches_loop(output_weights: bool) -> None:
    d = _setup(1)
    z = d["mu"]
    key = _heads(torch.nn.functional.linear(z, d["w_k"], d["b_k"]))
    value = _heads(torch.nn.functional.linear(z, d["w_v"], d["b_v"]))
    bias = training_key_bias(z, d["log_pi"], S)
    out, weights = denoising_attention_train(
        d["query"], key, value, bias, scale=S, output_weights=output_weights
    )
    want, want_weights = _loop_train(
        d["query"], z, d["log_pi"], d["w_k"], d["b_k"], d["w_v"], d["b_v"], S
    )
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)
    if output_weights:
        torch.testing.assert_close(weights, want_weights, rtol=1e-10, atol=1e-10)
    else:
        assert weights is None


def _eval_attention(d: dict, scale: float = S, output_weights: bool = False):
    terms = evaluation_terms(d["mu"], d["logvar"], d["log_pi"], scale)
    key = _heads(torch.nn.functional.linear(terms.key_input, d["w_k"], d["b_k"]))
    value = _heads(torch.nn.functional.linear(terms.value_input, d["w_v"], d["b_v"]))
    out, weights = denoising_attention_eval(
        d["query"],
        key,
        value,
        terms.key_bias,
        variance_ratio=terms.variance_ratio,
        key_weight=d["w_k"],
        value_weight=d["w_v"],
        output_weights=output_weights,
    )
    return out, weights, terms


@pytest.mark.parametrize("scale", [S, 1.0])
def test_eval_form_matches_loop_with_variance(scale: float) -> None:
    d = _setup(2)
    out, _, terms = _eval_attention(d, scale)
    assert terms.variance_ratio is not None
    want = _loop_eval(
        d["query"], d["mu"], d["logvar"], d["log_pi"], d["w_k"], d["w_v"], d["b_v"], scale
    )
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)
    # The σ² value term matters here: without it the result is clearly different.
    d["logvar"] = torch.full_like(d["logvar"], -80.0)
    no_var, _, terms = _eval_attention(d, scale)
    assert terms.variance_ratio is None
    assert (no_var - out).abs().max() > 1e-2


def test_eval_form_tends_to_training_form_as_variance_vanishes() -> None:
    d = _setup(3)
    z = d["mu"]
    key = _heads(torch.nn.functional.linear(z, d["w_k"], d["b_k"]))
    value = _heads(torch.nn.functional.linear(z, d["w_v"], d["b_v"]))
    train, _ = denoising_attention_train(
        d["query"], key, value, training_key_bias(z, d["log_pi"], S), scale=S
    )
    gaps = []
    for logvar in (-8.0, -14.0, -80.0):
        d["logvar"] = torch.full_like(d["logvar"], logvar)
        out, _, terms = _eval_attention(d)
        assert (terms.variance_ratio is None) == (logvar == -80.0)
        gaps.append(float((out - train).abs().max()))
    assert gaps[0] < 1e-2 and gaps[1] < 1e-4 and gaps[2] < 1e-12
    assert gaps[0] > gaps[1] > gaps[2]


def test_eval_weights_are_a_distribution_over_unmasked_keys() -> None:
    d = _setup(4)
    _, weights, _ = _eval_attention(d, output_weights=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, M, dtype=torch.float64))
    assert (weights.masked_select(~d["mask"][:, None, None, :]) == 0).all()


def test_attention_gradcheck_both_forms() -> None:
    d = _setup(5)
    mask = d["mask"]

    def train(query, z, log_pi_raw, w_k):
        log_pi = torch.log_softmax(log_pi_raw.masked_fill(~mask, -torch.inf), -1)
        key = _heads(torch.nn.functional.linear(z, w_k, d["b_k"]))
        value = _heads(torch.nn.functional.linear(z, d["w_v"], d["b_v"]))
        bias = training_key_bias(z, log_pi, S)
        return denoising_attention_train(query, key, value, bias, scale=S)[0]

    def evaluate(query, mu, logvar, w_k, w_v):
        terms = evaluation_terms(mu, logvar, d["log_pi"], S)
        key = _heads(torch.nn.functional.linear(terms.key_input, w_k, d["b_k"]))
        value = _heads(torch.nn.functional.linear(terms.value_input, w_v, d["b_v"]))
        return denoising_attention_eval(
            query,
            key,
            value,
            terms.key_bias,
            variance_ratio=terms.variance_ratio,
            key_weight=w_k,
            value_weight=w_v,
        )[0]

    grad = lambda t: t.clone().requires_grad_(True)  # noqa: E731
    log_pi_raw = torch.randn(B, L, dtype=torch.float64)
    train_inputs = (d["query"], d["mu"], log_pi_raw, d["w_k"])
    assert torch.autograd.gradcheck(train, tuple(grad(t) for t in train_inputs))
    eval_inputs = (d["query"], d["mu"], d["logvar"], d["w_k"], d["w_v"])
    assert torch.autograd.gradcheck(evaluate, tuple(grad(t) for t in eval_inputs))


def test_low_precision_keeps_large_cancelling_biases() -> None:
    """Biases of ~1e3 that differ by O(1) (T5 norms at identity init) survive bf16."""
    d = _setup(6)
    z = d["mu"]
    key = _heads(torch.nn.functional.linear(z, d["w_k"], d["b_k"]))
    value = _heads(torch.nn.functional.linear(z, d["w_v"], d["b_v"]))
    bias = training_key_bias(z, d["log_pi"], S) - 1234.5
    want, _ = denoising_attention_train(d["query"], key, value, bias, scale=S)
    low = [t.bfloat16() for t in (d["query"], key, value)]
    for output_weights in (False, True):
        out, _ = denoising_attention_train(
            *low, bias.float(), scale=S, output_weights=output_weights
        )
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.double(), want, rtol=0.0, atol=0.05)
    out, _ = denoising_attention_eval(*low, bias.float() / S, output_weights=False)
    assert torch.isfinite(out.float()).all()
