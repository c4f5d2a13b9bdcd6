"""Reparameterised Gamma sampling in log space.

NVIB keeps ``log α`` as its primary quantity: ``exp(log α)`` overflows float32 at 88.7 and
T5-sized encoder norms reach that at the identity initialisation. A Dirichlet sample is a
normalised vector of Gamma samples, so everything downstream only needs ``log g``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Above this shape the Wilson-Hilferty cube-of-a-normal approximation is used. Its mean is
# exact to a relative 1/(729 a^3) (< 2e-15 here) and its quantile error in log g is O(a^-3/2)
# (< 1e-6), below the float32 resolution of log g ≈ log a ≥ 9.2 (ulp ≈ 1e-6), so the switch is
# invisible; below it torch's exact sampler is used, whose values (≤ ~1e4) are far from
# overflow and whose relative spread (≥ 1%) float32 resolves.
LOG_LARGE_SHAPE = math.log(1e4)
# Shapes below e^-60 are sampled as e^-60: such a sample is below exp(-1e25) anyway, i.e. its
# mixture weight is exactly 0 next to any ordinary slot, and 1/a stays finite in float32.
LOG_SMALL_SHAPE = -60.0


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else is sampled in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def log_gamma_rsample(log_shape: Tensor) -> Tensor:
    """Sample ``log g`` with ``g ~ Gamma(exp(log_shape), 1)``, differentiable in ``log_shape``.

    - ``a < 1``: ``Gamma(a) = Gamma(a+1)·U^(1/a)`` so ``log g = log G(a+1) + log(U)/a``;
      ``g`` itself would underflow to 0 (``P(g < 1e-38) ≈ 0.4`` at ``a = 0.01``).
    - ``1 ≤ a ≤ 1e4``: ``log`` of torch's exact sampler (implicit reparameterisation grads).
    - ``a > 1e4``: Wilson-Hilferty, ``g = a(1 - 1/(9a) + ξ/(3√a))³`` with ``ξ ~ N(0,1)``,
      written with ``exp(-log a)`` so ``log a`` up to 1e3 (and beyond) stays finite.
    Every branch is evaluated at clamped inputs so unused branches never produce inf/NaN
    gradients through ``torch.where``.
    """
    dtype = _working_dtype(log_shape.dtype)
    with torch.autocast(device_type=log_shape.device.type, enabled=False):
        log_a = log_shape.to(dtype)
        tiny = torch.finfo(dtype).tiny

        # Exact branch (with the boost for a < 1).
        la_exact = log_a.clamp(LOG_SMALL_SHAPE, LOG_LARGE_SHAPE)
        a = la_exact.exp()
        boost = a < 1.0
        g = torch._standard_gamma(torch.where(boost, a + 1.0, a))
        u = torch.rand_like(a).clamp_min(tiny)
        log_g_exact = g.clamp_min(tiny).log() + torch.where(
            boost, u.log() * torch.exp(-la_exact), torch.zeros_like(a)
        )

        # Large-shape branch (Wilson-Hilferty).
        la_large = log_a.clamp_min(LOG_LARGE_SHAPE)
        xi = torch.randn_like(la_large)
        w = 1.0 - torch.exp(-la_large) / 9.0 + xi * torch.exp(-0.5 * la_large) / 3.0
        log_g_large = la_large + 3.0 * w.clamp_min(tiny).log()

        return torch.where(log_a > LOG_LARGE_SHAPE, log_g_large, log_g_exact)


# exp() of anything below this lands in float32's subnormal range, which is both meaningless
# for a variance and ~10x slower on CPU (vectorised exp takes a slow path).
MIN_EXP_ARG = -87.0


def exp_no_subnormal(x: Tensor) -> Tensor:
    """``exp(x)`` with ``x`` clamped at -87 (results ≥ 1.6e-38 instead of subnormal)."""
    return x.clamp_min(MIN_EXP_ARG).exp()


def masked_log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """``log_softmax`` over ``mask`` (last dim); ``-inf`` elsewhere, with no NaN in value or grad.

    Masked entries are replaced by a finite value *before* the softmax (so garbage at padded
    slots never reaches the gradient) and set to ``-inf`` after. Rows need one ``True`` entry
    (NVIB's prior slot guarantees it).
    """
    very_negative = torch.finfo(logits.dtype).min / 4
    filled = logits.masked_fill(~mask, very_negative)
    return torch.log_softmax(filled, dim=-1).masked_fill(~mask, float("-inf"))
