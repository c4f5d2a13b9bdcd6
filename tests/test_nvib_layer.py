"""The NVIB layer: identity init, sampling, pruning, compaction, numerics, state."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from hf_nvib.nvib import (
    NvibLayer,
    denoising_attention_eval,
    denoising_attention_train,
    evaluation_terms,
    log_gamma_rsample,
    training_key_bias,
)

P, H = 16, 4
E = P // H
S = 1 / math.sqrt(E)


def _heads(x: torch.Tensor) -> torch.Tensor:
    return x.view(x.shape[0], x.shape[1], H, -1).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def _leaves(layer: NvibLayer):
    return (layer.prior, layer.mu_proj, layer.logvar_proj, layer.alpha_proj)


def _randomise(layer: NvibLayer, seed: int = 0, std: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)


def test_identity_values_match_reset_and_design_formulas() -> None:
    layer = NvibLayer(
        P,
        logit_scale=0.3,
        prior_mu=0.5,
        prior_var=2.0,
        prior_log_alpha=1.5,
        prior_log_alpha_stdev=0.7,
        mu_tau=0.8,
        stdev_tau=0.2,
        alpha_tau=-3.0,
    )
    _randomise(layer)
    with torch.no_grad():
        for buffer in layer.buffers():
            buffer.fill_(-9.0)
    layer.reset_parameters()
    for leaf in _leaves(layer):
        values = leaf.identity_values()
        own = dict(leaf.named_parameters(recurse=False)) | dict(leaf.named_buffers(recurse=False))
        assert set(values) == set(own)
        for name, value in values.items():
            assert torch.equal(own[name], value), name
    eye = torch.eye(P)
    torch.testing.assert_close(layer.mu_proj.weight, 0.8 * eye)
    torch.testing.assert_close(layer.mu_proj.bias, torch.full((P,), 0.2 * 0.5))
    assert (layer.logvar_proj.weight == 0).all()
    want_lv = math.log((0.2 * math.sqrt(2.0)) ** 2 + torch.finfo(torch.float32).tiny)
    torch.testing.assert_close(layer.logvar_proj.bias, torch.full((P,), want_lv))
    assert (layer.alpha_proj.weight_linear == 0).all()
    assert (layer.alpha_proj.weight_quadratic == 0.15).all()
    torch.testing.assert_close(layer.alpha_proj.bias, torch.tensor([-3.0 * 0.7]))
    torch.testing.assert_close(layer.prior.var, torch.full((P,), 2.0))
    assert float(layer.prior.log_alpha) == 1.5
    # logit_scale is a run-time attribute that the α projection's identity follows.
    layer.logit_scale = 1.0
    assert (layer.alpha_proj.identity_values()["weight_quadratic"] == 0.5).all()


def _identity_setup(seed: int):
    torch.manual_seed(seed)
    p, heads = 64, 4
    scale = 1 / math.sqrt(p // heads)
    layer = NvibLayer(p, logit_scale=scale)  # mu_tau=1, stdev_tau=0, alpha_tau=10
    x = torch.randn(3, 7, p) * 1.5  # log α ≈ 28: Dirichlet noise e^-14
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    y = torch.randn(3, 5, p)
    q_proj, k_proj, v_proj = (torch.nn.Linear(p, p) for _ in range(3))
    return layer, x, mask, q_proj(y), k_proj, v_proj, scale


def _split(x: torch.Tensor, heads: int = 4) -> torch.Tensor:
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


@pytest.mark.parametrize("mode", ["train", "eval-mean", "eval-denoising"])
def test_identity_init_equals_plain_cross_attention(mode: str) -> None:
    layer, x, mask, q, k_proj, v_proj, s = _identity_setup(0)
    query = _split(q)
    plain = F.scaled_dot_product_attention(
        query, _split(k_proj(x)), _split(v_proj(x)), attn_mask=mask.bool()[:, None, None], scale=s
    )
    out = layer(x, mask, sample=mode == "train")
    if mode == "eval-denoising":
        terms = evaluation_terms(out.mu, out.logvar, out.log_pi, s)
        got, _ = denoising_attention_eval(
            query,
            _split(k_proj(terms.key_input)),
            _split(v_proj(terms.value_input)),
            terms.key_bias,
            variance_ratio=terms.variance_ratio,
            key_weight=k_proj.weight,
            value_weight=v_proj.weight,
        )
    else:
        assert torch.equal(out.z[:, 1:], x)  # σ² = tiny: the sample is exactly μ = x
        bias = training_key_bias(out.z, out.log_pi, s)
        got, _ = denoising_attention_train(
            query, _split(k_proj(out.z)), _split(v_proj(out.z)), bias, scale=s
        )
    torch.testing.assert_close(got, plain, rtol=0.0, atol=1e-4)


def test_identity_init_prior_weight_is_e_minus_10_relative() -> None:
    layer, x, mask, q, k_proj, v_proj, s = _identity_setup(1)
    # Eval π = α/Σα. (In training the prior's π is a Gamma(α₀ = 1) draw: e^-10·Exp(1) noise.)
    out = layer(x, mask, sample=False)
    keys = _split(k_proj(out.z))
    _, weights = denoising_attention_train(
        _split(q),
        keys,
        _split(v_proj(out.z)),
        training_key_bias(out.z, out.log_pi, s),
        scale=s,
        output_weights=True,
    )
    # log w_0 - log w_j = -10 + s·q·(k_0 - k_j): the prior's weight is e^-10 relative.
    log_ratio = weights[..., :1].log() - weights[..., 1:].log()
    dots = s * torch.einsum("bhme,bhle->bhml", _split(q), keys)
    want = -10.0 + dots[..., :1] - dots[..., 1:]
    real = mask.bool()[:, None, None, :].expand_as(log_ratio)
    torch.testing.assert_close(log_ratio[real], want[real], rtol=0.0, atol=1e-3)


@pytest.mark.parametrize("kappa", [1, 3])
@pytest.mark.parametrize("sample", [True, False])
def test_pi_sums_to_one_and_masks(kappa: int, sample: bool) -> None:
    torch.manual_seed(2)
    layer = NvibLayer(P, logit_scale=S, kappa=kappa, alpha_tau=0.0)
    _randomise(layer)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    out = layer(torch.randn(3, 4, P), mask, sample=sample)
    assert out.z.shape == (3, kappa * 5, P) and out.log_pi.shape == (3, kappa * 5)
    torch.testing.assert_close(out.pi.sum(-1), torch.ones(3))
    valid = mask.bool().repeat_interleave(kappa, 1)
    valid = torch.cat([torch.ones(3, kappa, dtype=torch.bool), valid], 1)
    assert torch.equal(out.num_valid, valid.sum(-1))
    assert (out.pi[~valid] == 0).all() and torch.isneginf(out.log_pi[~out.mask]).all()
    assert torch.equal(out.mask, valid) if sample else not (out.mask & ~valid).any()
    # The all-padding row keeps the prior only.
    assert float(out.pi[2, :kappa].sum().detach()) == pytest.approx(1.0)


def _known_alpha_layer(alphas: list[float], kappa: int) -> tuple[NvibLayer, torch.Tensor]:
    """log α_j = x_j[0] exactly (w_lin = e_0, w_quad = 0, b = 0), prior α₀ = alphas[0]."""
    layer = NvibLayer(4, logit_scale=1.0, kappa=kappa, prior_log_alpha=math.log(alphas[0]))
    with torch.no_grad():
        layer.alpha_proj.weight_quadratic.zero_()
        layer.alpha_proj.bias.zero_()
        layer.alpha_proj.weight_linear.copy_(torch.tensor([1.0, 0, 0, 0]))
    x = torch.zeros(1, len(alphas) - 1, 4)
    x[0, :, 0] = torch.tensor(alphas[1:]).log()
    return layer, x


@pytest.mark.parametrize("kappa", [1, 3])
def test_monte_carlo_mean_of_training_pi_is_alpha_over_sum(kappa: int) -> None:
    torch.manual_seed(3)
    alphas = [1.0, 0.3, 2.0, 5.0, 0.05]
    layer, x = _known_alpha_layer(alphas, kappa)
    draws = 20000
    out = layer(x.expand(draws, -1, -1), sample=True)
    mean = out.pi.mean(0).view(len(alphas), kappa)
    want = torch.tensor(alphas) / sum(alphas) / kappa
    # Standard error of each mean ≤ 0.5/sqrt(20000) = 3.5e-3; tolerance 0.01 ≈ 3 sigma.
    torch.testing.assert_close(mean, want[:, None].expand_as(mean), rtol=0.0, atol=0.01)
    # Eval π is exactly α/Σα (per copy α/κ) with nothing pruned.
    layer.prune_threshold = 0.0
    eval_pi = layer(x, sample=False).pi.view(len(alphas), kappa)
    torch.testing.assert_close(eval_pi, want[:, None].expand_as(eval_pi))


@pytest.mark.parametrize("log_a", [-7.0, -2.0, 0.5, 3.0, 8.0, 12.0, 40.0])
def test_log_gamma_sampler_moments_and_reparameterised_gradient(log_a: float) -> None:
    """E[log g] = ψ(a), Var[log g] = ψ'(a), and E[d log g / d log a] = a·ψ'(a) (pathwise)."""
    torch.manual_seed(4)
    n = 40000
    shape = torch.full((n,), log_a, dtype=torch.float64, requires_grad=True)
    log_g = log_gamma_rsample(shape)
    (grad,) = torch.autograd.grad(log_g.sum(), shape)
    a = torch.tensor(math.exp(log_a), dtype=torch.float64)
    trigamma = torch.polygamma(1, a)
    se = (trigamma / n).sqrt()
    log_g = log_g.detach()
    assert abs(float(log_g.mean() - torch.digamma(a))) < 5 * se
    assert float(log_g.var() / trigamma) == pytest.approx(1.0, abs=0.05)
    assert float(grad.mean() / (a * trigamma)) == pytest.approx(1.0, abs=0.05)
    assert torch.isfinite(log_g).all() and torch.isfinite(grad).all()


def test_pruning_removes_exactly_slots_at_or_below_threshold() -> None:
    alphas = [1e-6, 0.3, 0.05, 0.1, 2.0, 0.1001, 0.0999]  # prior tiny yet never pruned
    for kappa in (1, 2):
        layer, x = _known_alpha_layer(alphas, kappa)
        layer.eval()
        out = layer(x)
        per_copy = torch.tensor(alphas, dtype=torch.float64).repeat_interleave(kappa) / kappa
        want = per_copy > 0.1
        want[:kappa] = True
        assert torch.equal(out.mask[0], want)
        assert int(out.num_kept) == int(want.sum()) and int(out.num_valid) == len(want)
        torch.testing.assert_close(out.pi.sum(), torch.tensor(1.0))
        layer.prune_threshold = 0.0
        assert bool(layer(x).mask.all())


def _attend(out, q, k_proj, v_proj, form: str) -> torch.Tensor:
    if form == "train":
        bias = training_key_bias(out.z, out.log_pi, S)
        return denoising_attention_train(
            _heads(q), _heads(k_proj(out.z)), _heads(v_proj(out.z)), bias, scale=S
        )[0]
    terms = evaluation_terms(out.mu, out.logvar, out.log_pi, S)
    return denoising_attention_eval(
        _heads(q),
        _heads(k_proj(terms.key_input)),
        _heads(v_proj(terms.value_input)),
        terms.key_bias,
        variance_ratio=terms.variance_ratio,
        key_weight=k_proj.weight,
        value_weight=v_proj.weight,
    )[0]


@pytest.mark.parametrize("form", ["train", "eval"])
def test_compaction_gives_the_same_attention(form: str) -> None:
    torch.manual_seed(5)
    layer = NvibLayer(P, logit_scale=S, kappa=2, alpha_tau=0.0, stdev_tau=0.5)
    _randomise(layer, std=0.2)
    layer.eval()
    layer.prune_threshold = 0.6
    x, mask = torch.randn(3, 9, P), torch.ones(3, 9)
    mask[1, 5:] = 0
    q, k_proj, v_proj = torch.randn(3, 6, P), torch.nn.Linear(P, P), torch.nn.Linear(P, P)
    full = layer(x, mask)
    layer.compact = True
    small = layer(x, mask)
    assert (full.num_kept < full.num_valid).all()  # something was pruned in every row
    assert small.z.shape[1] == int(full.num_kept.max()) < full.z.shape[1]
    assert torch.equal(small.mask.sum(-1), full.num_kept)
    for name in ("kl_gaussian", "kl_dirichlet", "num_kept", "num_valid", "alpha_sum"):
        assert torch.equal(getattr(small, name), getattr(full, name))
    for b in range(3):
        torch.testing.assert_close(small.mu[b][small.mask[b]], full.mu[b][full.mask[b]])
        torch.testing.assert_close(small.log_pi[b][small.mask[b]], full.log_pi[b][full.mask[b]])
    torch.testing.assert_close(
        _attend(small, q, k_proj, v_proj, form), _attend(full, q, k_proj, v_proj, form)
    )


@pytest.mark.parametrize("bias", [1000.0, -7.0, -1000.0])
@pytest.mark.parametrize("sample", [True, False])
def test_extreme_alpha_padding_and_length_one_are_finite(bias: float, sample: bool) -> None:
    torch.manual_seed(6)
    layer = NvibLayer(P, logit_scale=S, kappa=2, stdev_tau=0.5)
    with torch.no_grad():
        layer.alpha_proj.bias.fill_(bias)
    k_proj, v_proj = torch.nn.Linear(P, P), torch.nn.Linear(P, P)
    for x, mask in [
        (torch.randn(3, 5, P) * 30, torch.tensor([[1] * 5, [0] * 5, [1, 0, 0, 0, 0]])),
        (torch.randn(2, 1, P), None),
    ]:
        x = x.requires_grad_(True)
        out = layer(x, mask, sample=sample)
        q = torch.randn(x.shape[0], 3, P)
        total = out.kl_gaussian.sum() + out.kl_dirichlet.sum() + out.alpha_sum.sum() * 0
        for form in ("train", "eval"):
            res = _attend(out, q, k_proj, v_proj, form)
            assert torch.isfinite(res).all()
            total = total + res.square().sum()
        for t in (out.z, out.kl_gaussian, out.kl_dirichlet, out.alpha_sum, out.log_alpha):
            assert torch.isfinite(t).all()
        assert not out.log_pi.isnan().any()
        torch.testing.assert_close(out.pi.sum(-1), torch.ones(x.shape[0]))
        total.backward()
        assert torch.isfinite(x.grad).all()
        for p in layer.parameters():
            assert torch.isfinite(p.grad).all()
        layer.zero_grad()


def test_bfloat16_layer_and_autocast() -> None:
    torch.manual_seed(7)
    x = torch.randn(2, 6, P) * 4
    mask = torch.tensor([[1] * 6, [1, 1, 0, 0, 0, 0]])
    ref_layer = NvibLayer(P, logit_scale=S, stdev_tau=0.3)
    ref = ref_layer(x.bfloat16().float(), mask, sample=False)
    layer = NvibLayer(P, logit_scale=S, stdev_tau=0.3).to(torch.bfloat16)
    low = layer(x.bfloat16(), mask, sample=False)
    assert low.z.dtype == torch.bfloat16 and low.log_alpha.dtype == torch.float32
    torch.testing.assert_close(low.log_pi.exp(), ref.log_pi.exp(), rtol=0.0, atol=2e-2)
    xb = x.bfloat16().requires_grad_(True)
    out = layer(xb, mask, sample=True)
    (out.z.float().sum() + out.kl_gaussian.sum() + out.log_pi[out.mask].sum()).backward()
    assert torch.isfinite(xb.grad.float()).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = ref_layer(x, mask, sample=True)
    assert auto.z.dtype == torch.bfloat16 and auto.log_alpha.dtype == torch.float32
    # log α and the KLs are computed in float32 under autocast too (from bf16 μ, log σ²).
    full = ref_layer(x, mask, sample=False)
    torch.testing.assert_close(auto.log_alpha, full.log_alpha)
    torch.testing.assert_close(auto.kl_dirichlet, full.kl_dirichlet)
    torch.testing.assert_close(auto.kl_gaussian, full.kl_gaussian, rtol=1e-2, atol=0.0)
    assert torch.isfinite(auto.z.float()).all() and torch.isfinite(auto.kl_dirichlet).all()


def test_state_dict_round_trip_double_and_to() -> None:
    layer = NvibLayer(P, logit_scale=S, kappa=2, mu_tau=0.5, stdev_tau=0.5)
    gen = torch.Generator().manual_seed(8)
    layer.set_prior(
        mu=torch.randn(P, generator=gen),
        var=torch.rand(P, generator=gen) + 0.5,
        log_alpha=0.3,
        log_alpha_stdev=2.0,
    )
    # set_prior re-derived the identity of the dependent projections from the vectors.
    torch.testing.assert_close(layer.logvar_proj.bias, (0.25 * layer.prior.var).log())
    torch.testing.assert_close(layer.mu_proj.bias, 0.5 * layer.prior.mu)
    assert float(layer.alpha_proj.bias.detach()) == 20.0  # alpha_tau · prior_log_alpha_stdev
    buffers = {k: v.clone() for k, v in layer.state_dict().items() if k.startswith("prior.")}
    assert set(buffers) == {f"prior.{n}" for n in ("mu", "var", "log_alpha", "log_alpha_stdev")}
    blob = io.BytesIO()
    torch.save(layer.state_dict(), blob)
    blob.seek(0)
    fresh = NvibLayer(P, logit_scale=S, kappa=2, mu_tau=0.5, stdev_tau=0.5)
    fresh.load_state_dict(torch.load(blob))
    for name, value in buffers.items():
        assert torch.equal(fresh.state_dict()[name], value)
    x = torch.randn(2, 3, P)
    torch.testing.assert_close(
        fresh(x, sample=False).kl_gaussian, layer(x, sample=False).kl_gaussian
    )
    double = fresh.double()
    out = double(x.double(), sample=False)
    assert out.z.dtype == out.log_alpha.dtype == out.kl_gaussian.dtype == torch.float64
    assert double.prior.mu.dtype == torch.float64
    moved = NvibLayer(P, logit_scale=S).to("meta")
    assert all(b.device.type == "meta" for b in moved.buffers())


def _functional(layer: NvibLayer, names: list[str]):
    def call(x, *params, mask, noise, sample):
        torch.manual_seed(1234)  # the Dirichlet draw is fixed across gradcheck's evaluations
        state = dict(zip(names, params, strict=True))
        out = torch.func.functional_call(
            layer, state, (x, mask), {"sample": sample, "gaussian_noise": noise}
        )
        return out.z, out.kl_gaussian, out.kl_dirichlet, out.log_pi.masked_fill(~out.mask, 0.0)

    return call


@pytest.mark.parametrize("regime", ["eval", "sample-gaussian", "sample-large-alpha"])
def test_layer_gradcheck(regime: str) -> None:
    torch.manual_seed(9)
    layer = NvibLayer(4, logit_scale=0.5, kappa=2, stdev_tau=0.5, prune_threshold=0.0).double()
    _randomise(layer, std=0.3)
    if regime == "sample-large-alpha":  # Wilson-Hilferty branch: a pathwise Gamma sample
        with torch.no_grad():
            layer.alpha_proj.bias.fill_(15.0)
    names = ["mu_proj.weight", "logvar_proj.weight", "alpha_proj.weight_quadratic"]
    params = [dict(layer.named_parameters())[n].detach().clone() for n in names]
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    noise = torch.randn(2, 8, 4, dtype=torch.float64)
    call = _functional(layer, names)
    sample = regime != "eval"

    def fn(*inputs):
        outs = call(*inputs, mask=mask, noise=noise, sample=sample)
        # The exact Gamma sampler's implicit gradient is not the derivative of its own
        # rejection sampler at fixed seeds: there π is checked by Monte Carlo instead.
        return outs if regime != "sample-gaussian" else outs[:3]

    inputs = tuple(t.requires_grad_(True) for t in (x, *params))
    assert torch.autograd.gradcheck(fn, inputs)
