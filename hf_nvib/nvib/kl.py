"""The two NVIB KL terms, per sequence (nvib-maths.md §2).

Both take slot-level tensors as the layer produces them: ``log_alpha`` is per copy
(``log(α/κ)``), ``mask`` marks existing slots (prior + real tokens, all κ copies).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .sampling import exp_no_subnormal, masked_log_softmax

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# The Dirichlet KL switches to its cancellation-free asymptotic form once A_q/K ≥ this: the
# 5-term Stirling/digamma series below are then exact to ~2e-14, and the direct lgamma form
# (terms ~ A_q log A_q that cancel down to ~K log A_q) is still accurate below it.
_ASYMPTOTIC_MIN_SHAPE = 10.0


def _float_dtype(*tensors: Tensor) -> torch.dtype:
    """At least float32 (bf16/fp16 inputs are promoted); float64 stays float64."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def kl_gaussian(
    mu: Tensor,
    logvar: Tensor,
    log_alpha: Tensor,
    mask: Tensor,
    prior_mu: Tensor | float,
    prior_var: Tensor | float,
    kappa: int = 1,
) -> Tensor:
    """``KL_G = (κ/2) Σ_i E[π_i] · mean_p[σ²/σ₀² + (μ-μ₀)²/σ₀² - 1 - log(σ²/σ₀²)]`` per sequence.

    ``E[π_i] = α_i/Σα`` over ``mask``; the mean (not sum) over features follows the reference.
    mu/logvar (B, L, P), log_alpha/mask (B, L); returns (B,) in float32 (float64 for float64).
    """
    with torch.autocast(device_type=mu.device.type, enabled=False):  # mat-vecs stay fp32
        return _kl_gaussian(mu, logvar, log_alpha, mask, prior_mu, prior_var, kappa)


def _kl_gaussian(
    mu: Tensor,
    logvar: Tensor,
    log_alpha: Tensor,
    mask: Tensor,
    prior_mu: Tensor | float,
    prior_var: Tensor | float,
    kappa: int,
) -> Tensor:
    dtype = _float_dtype(mu, logvar, log_alpha)
    mu, logvar = mu.to(dtype), logvar.to(dtype)
    width = mu.shape[-1]
    prior_mu = torch.as_tensor(prior_mu, dtype=dtype, device=mu.device).expand(width)
    prior_var = torch.as_tensor(prior_var, dtype=dtype, device=mu.device).expand(width)
    inv_prior_var = prior_var.reciprocal() / width  # the 1/P makes the dot products means
    # mean_p[σ²/σ₀²] + mean_p[(μ-μ₀)²/σ₀²] - 1 - mean_p[log σ²] + mean_p[log σ₀²], with the
    # two weighted means as mat-vecs (fewer passes over (B, L, P) than term by term). Only the
    # exp is clamped (subnormals): the -log σ² term keeps its gradient for any log σ².
    per_slot = (
        exp_no_subnormal(logvar) @ inv_prior_var
        + (mu - prior_mu).square() @ inv_prior_var
        - logvar.mean(-1)
        + (prior_var.log().mean() - 1.0)
    )
    weights = masked_log_softmax(log_alpha.to(dtype), mask).exp()
    per_slot = torch.where(mask, per_slot, torch.zeros_like(per_slot))
    return 0.5 * kappa * (weights * per_slot).sum(-1)


def _stirling_remainder(y: Tensor) -> Tensor:
    """``lnΓ(x) - [(x-½)ln x - x + ½ln 2π]`` for ``y = 1/x ≤ 0.1``."""
    y2 = y * y
    return y * (1 / 12 - y2 * (1 / 360 - y2 * (1 / 1260 - y2 * (1 / 1680 - y2 / 1188))))


def _digamma_remainder_over_y(y: Tensor) -> Tensor:
    """``x·[ln x - 1/(2x) - ψ(x)]`` for ``y = 1/x ≤ 0.1``."""
    y2 = y * y
    return y * (1 / 12 - y2 * (1 / 120 - y2 * (1 / 252 - y2 * (1 / 240 - y2 / 132))))


def _kl_dirichlet_direct(a: Tensor, ap: Tensor, k: Tensor) -> Tensor:
    """``n·KL_D`` straight from the formula (fine while A_q/K is moderate)."""
    return (
        torch.lgamma(a)
        - torch.lgamma(ap)
        + (a - ap) * (torch.digamma(a / k) - torch.digamma(a))
        + k * (torch.lgamma(ap / k) - torch.lgamma(a / k))
    )


def _kl_dirichlet_asymptotic(log_a: Tensor, ap: Tensor, k: Tensor) -> Tensor:
    """``n·KL_D`` for A_q/K ≥ 10 in terms of ``log A_q`` only: no overflow, no cancellation.

    Substituting Stirling's and the digamma series into the formula, the O(A_q log A_q) terms
    cancel exactly, leaving ``(K-1)/2·log A_q`` plus bounded terms and series in 1/A_q.
    """
    inv_a = torch.exp(-log_a)
    y_k = k * inv_a  # K / A_q = 1/(A_q/K)
    log_k = k.log()
    a_times_s_diff = k * _digamma_remainder_over_y(y_k) - _digamma_remainder_over_y(inv_a)
    return (
        0.5 * (k - 1) * log_a
        - 0.5 * k * log_k
        + ap * log_k
        + _HALF_LOG_2PI * (1 - k)
        - 0.5 * (k - 1)
        + 0.5 * (k - 1) * ap * inv_a
        + _stirling_remainder(inv_a)
        - k * _stirling_remainder(y_k)
        - (1 - ap * inv_a) * a_times_s_diff
        - torch.lgamma(ap)
        + k * torch.lgamma(ap / k)
    )


def kl_dirichlet(
    log_alpha: Tensor,
    mask: Tensor,
    prior_log_alpha: Tensor | float,
    delta: float = 1.0,
    kappa: int = 1,
) -> Tensor:
    """``KL_D = KL(Dir(A_q/K·1_K) ‖ Dir(A_p/K·1_K)) / n`` per sequence, in float64.

    ``A_q = Σα`` over ``mask`` (log-sum-exp of the per-copy ``log α``), ``K`` = unmasked slots,
    ``n = K/κ``, ``A_p = α₀ + δ(n-1)``. Finite (value and gradient) for ``log α`` up to 1e3 and
    beyond. log_alpha/mask (B, L); returns (B,) in float32 (float64 for float64 input).
    """
    out_dtype = _float_dtype(log_alpha)
    la = log_alpha.to(torch.float64).masked_fill(~mask, float("-inf"))
    log_a = torch.logsumexp(la, dim=-1).clamp_min(-700.0)
    k = mask.sum(-1).to(torch.float64).clamp_min(1.0)
    n = k / kappa
    prior_log_alpha = torch.as_tensor(prior_log_alpha, dtype=torch.float64, device=la.device)
    ap = prior_log_alpha.clamp_max(700.0).exp() + delta * (n - 1.0)

    log_switch = torch.log(k * _ASYMPTOTIC_MIN_SHAPE)
    direct = _kl_dirichlet_direct(torch.minimum(log_a, log_switch).exp(), ap, k)
    asymptotic = _kl_dirichlet_asymptotic(torch.maximum(log_a, log_switch), ap, k)
    kl = torch.where(log_a > log_switch, asymptotic, direct) / n
    return kl.to(out_dtype)
