"""Denoising attention: the decoder's cross-attention over NVIB latents (nvib-maths.md §3).

The caller owns the projections and the head split; these functions only see per-head
tensors plus the per-key terms that NVIB adds. Per-key terms are ``(B, L)`` and broadcast as
``[:, None, None, :]`` over heads and queries, so batch and head can never be mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .sampling import exp_no_subnormal

# evaluation_terms drops the σ² value term when max(σ²·s) over attended slots is below this.
# The term is (σ²/t)⊙u with σ²/t = σ²s/(1+σ²s) ≤ σ²s, against a μ term of size ~|μ|; with
# |u|/|μ| up to 1e3 it stays below 1e-9 relative, i.e. under float32 output resolution (6e-8).
# For such σ², t = σ² + 1/s already rounds to 1/s in float32, so keys and biases are unchanged.
VARIANCE_NEGLIGIBLE = 1e-12


def _float_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def training_key_bias(z: Tensor, log_pi: Tensor, scale: float) -> Tensor:
    """``log π - (s/2)‖z‖²`` per key, (B, L), float32 (float64 for float64); ``-inf`` where masked.

    Computed in float32 because the two parts can be ~1e3 and cancel (identity init).
    """
    dtype = _float_dtype(z)
    masked = torch.isneginf(log_pi)
    sq_norm = z.to(dtype).square().sum(-1).masked_fill(masked, 0.0)
    bias = log_pi.to(dtype).masked_fill(masked, 0.0) - 0.5 * scale * sq_norm
    return bias.masked_fill(masked, float("-inf"))


@dataclass
class EvaluationTerms:
    """Inputs of the closed-form evaluation attention (t = σ² + 1/s, per feature)."""

    key_input: Tensor  # (B, L, P) μ/t, to feed through k_proj
    value_input: Tensor  # (B, L, P) μ/(s·t), to feed through v_proj
    key_bias: Tensor  # (B, L) log π - ½Σμ²/t - ½Σ log t; -inf where masked
    variance_ratio: Tensor | None  # (B, L, P) σ²/t (0 where masked), None when negligible


def evaluation_terms(
    mu: Tensor,
    logvar: Tensor,
    log_pi: Tensor,
    scale: float,
    *,
    variance_threshold: float = VARIANCE_NEGLIGIBLE,
) -> EvaluationTerms:
    """Per-key terms of the evaluation form, from the layer's μ, log σ² and log π.

    ``key_input``/``value_input`` keep μ's dtype (they go through the caller's projections);
    ``key_bias``/``variance_ratio`` are float32 (float64 for float64). Checking whether the
    variance is negligible reads one scalar back from the device.
    """
    dtype = _float_dtype(mu)
    masked = torch.isneginf(log_pi)
    mu32 = mu.to(dtype)
    var = exp_no_subnormal(logvar.to(dtype))  # identity init: log σ² = log(tiny)
    t = var + 1.0 / scale
    key_input = mu32 / t
    bias = -0.5 * (mu32 * key_input + t.log()).sum(-1)
    bias = (log_pi.to(dtype).masked_fill(masked, 0.0) + bias).masked_fill(masked, float("-inf"))
    variance = var.masked_fill(masked[..., None], 0.0)
    variance_ratio = None
    if float(variance.detach().max()) * scale >= variance_threshold:
        variance_ratio = variance / t
    return EvaluationTerms(
        key_input=key_input.to(mu.dtype),
        value_input=(key_input / scale).to(mu.dtype),
        key_bias=bias,
        variance_ratio=variance_ratio,
    )


def _attention_mask(key_bias: Tensor, dtype: torch.dtype) -> Tensor:
    """(B,1,1,L) additive mask. The per-row max is subtracted first (softmax-invariant) so that
    casting to bf16/fp16 keeps the small differences between keys (identity init: the biases
    are ~(s/2)‖z‖² in size but nearly equal across tokens)."""
    row_max = key_bias.detach().amax(-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    return (key_bias - row_max).to(dtype)[:, None, None, :]


def _explicit_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor, scale: float, dropout_p: float
) -> tuple[Tensor, Tensor, Tensor]:
    """softmax(s·qkᵀ + mask)·v, returning (out, weights, weights after dropout); the softmax
    runs in float32 at least."""
    logits = scale * torch.matmul(query, key.transpose(-1, -2)) + mask
    weights = torch.softmax(logits, dim=-1, dtype=_float_dtype(logits)).to(query.dtype)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return torch.matmul(dropped, value), weights, dropped


def _variance_value_term(
    query: Tensor, weights: Tensor, variance_ratio: Tensor, key_weight: Tensor, value_weight: Tensor
) -> Tensor:
    """``W_v^h[(A^h·σ²/t) ⊙ (W_k^h)ᵀq^h]`` for every head, as three plain bmm's (no broadcast
    copies of the weights or of σ²/t over heads)."""
    batch, heads, queries, head_dim = query.shape
    width = key_weight.shape[-1]
    w_k = key_weight.to(query.dtype).view(heads, head_dim, width)  # (H, E, P)
    w_v = value_weight.to(query.dtype).view(heads, head_dim, width)  # (H, E, P)
    q = query.transpose(0, 1).reshape(heads, batch * queries, head_dim)
    u = torch.bmm(q, w_k)  # (H, B·M, P)
    spread = torch.bmm(
        weights.reshape(batch, heads * queries, -1), variance_ratio.to(query.dtype)
    )  # (B, H·M, P)
    spread = spread.view(batch, heads, queries, width).transpose(0, 1)
    u = u.view(heads, batch, queries, width)
    if torch.is_grad_enabled() and (u.requires_grad or spread.requires_grad):
        u = u * spread
    else:  # inference: reuse u's buffer (saves a (H,B,M,P) allocation, ~15% of this term)
        u.mul_(spread)
    extra = torch.bmm(u.view(heads, batch * queries, width), w_v.transpose(1, 2))
    return extra.view(heads, batch, queries, head_dim).transpose(0, 1)


def denoising_attention_train(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_bias: Tensor,
    *,
    scale: float,
    dropout_p: float = 0.0,
    output_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Training form: ``softmax(s·q·k + log π - (s/2)‖z‖²)·v`` — exactly SDPA with a float mask.

    query (B,H,M,E) unscaled; key/value (B,H,L,E) = k_proj(z)/v_proj(z) split into heads;
    key_bias (B,L) from :func:`training_key_bias`. Returns (out (B,H,M,E), weights or None).
    ``dropout_p`` is applied as given (pass 0 in eval).
    """
    mask = _attention_mask(key_bias, query.dtype)
    if output_weights:
        out, weights, _ = _explicit_attention(query, key, value, mask, scale, dropout_p)
        return out, weights
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout_p, scale=scale
    )
    return out, None


def denoising_attention_eval(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_bias: Tensor,
    *,
    variance_ratio: Tensor | None = None,
    key_weight: Tensor | None = None,
    value_weight: Tensor | None = None,
    dropout_p: float = 0.0,
    output_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Closed-form evaluation attention over the Gaussian components.

    key = k_proj(μ/t), value = v_proj(μ/(s·t)) split into heads (B,H,L,E); the logits are the
    plain dot product ``q·k'`` (the scale lives in t) plus ``key_bias``. This drops the
    ``-½Σ_p u²_mp/t_ip`` logit term exactly as the reference does (it would make keys depend on
    the query through t): kept out for equivalence with the published models.

    With ``variance_ratio`` (σ²/t, (B,L,P)) the query-dependent part of the value,
    ``W_v^h[(A^h·σ²/t) ⊙ u^h]`` with ``u^h = (W_k^h)ᵀ q^h``, is added; it needs
    ``key_weight``/``value_weight`` = k_proj.weight / v_proj.weight (P, P), head h = rows
    h·E:(h+1)·E. The value bias is not added again (the weights sum to 1).
    """
    mask = _attention_mask(key_bias, query.dtype)
    if variance_ratio is None and not output_weights:
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout_p, scale=1.0
        )
        return out, None
    out, weights, dropped = _explicit_attention(query, key, value, mask, 1.0, dropout_p)
    if variance_ratio is not None:
        if key_weight is None or value_weight is None:
            raise ValueError("variance_ratio needs key_weight and value_weight")
        out = out + _variance_value_term(query, dropped, variance_ratio, key_weight, value_weight)
    return out, weights if output_weights else None
