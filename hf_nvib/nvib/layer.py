"""The NVIB layer: encoder states → a Dirichlet-process mixture of Gaussians (nvib-maths.md §1).

Every tensor-owning leaf (prior, projections) knows its own identity-initialisation values from
scalar hyper-parameters stored on it, so transformers' per-leaf ``_init_weights`` and plain
:meth:`NvibLayer.reset_parameters` set exactly the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .kl import kl_dirichlet, kl_gaussian
from .sampling import exp_no_subnormal, log_gamma_rsample, masked_log_softmax

_TINY = torch.finfo(torch.float32).tiny
# exp() of this is the largest float32 Σα reported (Σα itself may be e^1000).
_MAX_LOG_ALPHA_SUM = 88.0

Scalar = float | Tensor  # hyper-parameters are floats; the prior may be an empirical vector


def _full(value: Scalar, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """``value`` broadcast to ``shape`` with ``like``'s dtype and device (meta included)."""
    value = torch.as_tensor(value, dtype=torch.float64)
    return value.to(dtype=like.dtype, device=like.device).expand(shape).clone()


@dataclass
class NvibOutput:
    """Latent mixture for the decoder; slot 0 (κ copies: 0..κ-1) is the prior component."""

    z: Tensor  # (B, L, P) sample in training, μ in eval
    mu: Tensor  # (B, L, P)
    logvar: Tensor  # (B, L, P)
    log_alpha: Tensor  # (B, L) per copy: log(α/κ)
    log_pi: Tensor  # (B, L) -inf where masked or pruned
    mask: Tensor  # (B, L) bool: the decoder attends to this slot
    kl_gaussian: Tensor  # (B,)
    kl_dirichlet: Tensor  # (B,)
    num_kept: Tensor  # (B,) long, prior included
    num_valid: Tensor  # (B,) long, existing slots (prior + tokens) × κ
    alpha_sum: Tensor  # (B,) float32 Σα over existing slots, clamped at e^88

    @property
    def pi(self) -> Tensor:
        return self.log_pi.exp()

    @property
    def kept_proportion(self) -> Tensor:
        return self.num_kept.float() / self.num_valid.float()


class NvibPrior(nn.Module):
    """Prior component (μ₀, σ²₀, log α₀) as persistent buffers: saved, and moved by ``.to()``."""

    def __init__(
        self,
        d_model: int,
        *,
        prior_mu: Scalar = 0.0,
        prior_var: Scalar = 1.0,
        prior_log_alpha: Scalar = 0.0,
        prior_log_alpha_stdev: Scalar = 1.0,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.prior_mu, self.prior_var = prior_mu, prior_var
        self.prior_log_alpha, self.prior_log_alpha_stdev = prior_log_alpha, prior_log_alpha_stdev
        self.register_buffer("mu", torch.empty(d_model))
        self.register_buffer("var", torch.empty(d_model))
        self.register_buffer("log_alpha", torch.empty(()))
        self.register_buffer("log_alpha_stdev", torch.empty(()))
        self.reset_parameters()

    def identity_values(self) -> dict[str, Tensor]:
        p = (self.d_model,)
        return {
            "mu": _full(self.prior_mu, p, self.mu),
            "var": _full(self.prior_var, p, self.var),
            "log_alpha": _full(self.prior_log_alpha, (), self.log_alpha),
            "log_alpha_stdev": _full(self.prior_log_alpha_stdev, (), self.log_alpha_stdev),
        }

    def reset_parameters(self) -> None:
        _copy_identity(self)


class NvibMeanProjection(nn.Linear):
    """μ = W_μ x + b_μ; identity: ``W_μ = mu_tau·I``, ``b_μ = (1 - mu_tau)·prior_mu``."""

    def __init__(self, d_model: int, *, mu_tau: float = 1.0, prior_mu: Scalar = 0.0) -> None:
        self.mu_tau, self.prior_mu = mu_tau, prior_mu
        super().__init__(d_model, d_model)

    def identity_values(self) -> dict[str, Tensor]:
        eye = torch.eye(self.in_features, dtype=torch.float64) * self.mu_tau
        bias = (1.0 - self.mu_tau) * torch.as_tensor(self.prior_mu, dtype=torch.float64)
        return {
            "weight": _full(eye, self.weight.shape, self.weight),
            "bias": _full(bias, self.bias.shape, self.bias),
        }

    def reset_parameters(self) -> None:
        if hasattr(self, "mu_tau"):  # nn.Linear.__init__ calls this before our attrs exist
            _copy_identity(self)


class NvibLogVarProjection(nn.Linear):
    """log σ² = W_ℓ x + b_ℓ; identity: ``W_ℓ = 0``, ``b_ℓ = log(stdev_tau²·prior_var + tiny)``."""

    def __init__(self, d_model: int, *, stdev_tau: float = 0.0, prior_var: Scalar = 1.0) -> None:
        self.stdev_tau, self.prior_var = stdev_tau, prior_var
        super().__init__(d_model, d_model)

    def identity_values(self) -> dict[str, Tensor]:
        var = torch.as_tensor(self.prior_var, dtype=torch.float64)
        bias = torch.log((self.stdev_tau * var.sqrt()) ** 2 + _TINY)
        return {
            "weight": _full(0.0, self.weight.shape, self.weight),
            "bias": _full(bias, self.bias.shape, self.bias),
        }

    def reset_parameters(self) -> None:
        if hasattr(self, "stdev_tau"):
            _copy_identity(self)


class NvibLogAlphaProjection(nn.Module):
    """``log α = w_lin·x + w_quad·(x⊙x) + b`` (P → 1), always computed in float32 or wider.

    Identity: ``w_lin = 0``, ``w_quad = s/2``, ``b = alpha_tau·prior_log_alpha_stdev``, so that
    ``log α = (s/2)‖x‖² + const`` cancels the ``-(s/2)‖z‖²`` key bias of denoising attention.
    """

    def __init__(
        self,
        d_model: int,
        *,
        logit_scale: float,
        alpha_tau: float = 10.0,
        prior_log_alpha_stdev: Scalar = 1.0,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.logit_scale, self.alpha_tau = logit_scale, alpha_tau
        self.prior_log_alpha_stdev = prior_log_alpha_stdev
        self.weight_linear = nn.Parameter(torch.empty(d_model))
        self.weight_quadratic = nn.Parameter(torch.empty(d_model))
        self.bias = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def identity_values(self) -> dict[str, Tensor]:
        stdev = torch.as_tensor(self.prior_log_alpha_stdev, dtype=torch.float64)
        return {
            "weight_linear": _full(0.0, (self.d_model,), self.weight_linear),
            "weight_quadratic": _full(self.logit_scale / 2, (self.d_model,), self.weight_quadratic),
            "bias": _full(self.alpha_tau * stdev, (1,), self.bias),
        }

    def reset_parameters(self) -> None:
        _copy_identity(self)

    def forward(self, x: Tensor) -> Tensor:
        """(…, P) → (…,) log α in float32 (float64 for float64 x), outside autocast."""
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dtype)
            w_lin = self.weight_linear.to(dtype)
            w_quad = self.weight_quadratic.to(dtype)
            return x @ w_lin + x.square() @ w_quad + self.bias.to(dtype)


def _copy_identity(module: nn.Module) -> None:
    with torch.no_grad():
        for name, value in module.identity_values().items():
            getattr(module, name).copy_(value)


class NvibLayer(nn.Module):
    """Nonparametric variational information bottleneck over a sequence of vectors.

    Run-time switches (plain attributes): ``kappa``, ``delta``, ``prune_threshold``,
    ``compact``; ``logit_scale`` is a property that also updates the α projection's identity
    hyper-parameter (the consumer attention's ``s``).
    """

    def __init__(
        self,
        d_model: int,
        *,
        logit_scale: float,
        kappa: int = 1,
        prior_mu: float = 0.0,
        prior_var: float = 1.0,
        prior_log_alpha: float = 0.0,
        prior_log_alpha_stdev: float = 1.0,
        mu_tau: float = 1.0,
        stdev_tau: float = 0.0,
        alpha_tau: float = 10.0,
        delta: float = 1.0,
        prune_threshold: float = 0.1,
        compact: bool = False,
    ) -> None:
        super().__init__()
        if kappa < 1:
            raise ValueError(f"kappa must be >= 1, got {kappa}")
        if prior_var <= 0:
            raise ValueError(f"prior_var must be > 0, got {prior_var}")
        self.d_model = d_model
        self.kappa, self.delta = kappa, delta
        self.prune_threshold, self.compact = prune_threshold, compact
        self.prior = NvibPrior(
            d_model,
            prior_mu=prior_mu,
            prior_var=prior_var,
            prior_log_alpha=prior_log_alpha,
            prior_log_alpha_stdev=prior_log_alpha_stdev,
        )
        self.mu_proj = NvibMeanProjection(d_model, mu_tau=mu_tau, prior_mu=prior_mu)
        self.logvar_proj = NvibLogVarProjection(d_model, stdev_tau=stdev_tau, prior_var=prior_var)
        self.alpha_proj = NvibLogAlphaProjection(
            d_model,
            logit_scale=logit_scale,
            alpha_tau=alpha_tau,
            prior_log_alpha_stdev=prior_log_alpha_stdev,
        )

    @property
    def logit_scale(self) -> float:
        return self.alpha_proj.logit_scale

    @logit_scale.setter
    def logit_scale(self, value: float) -> None:
        self.alpha_proj.logit_scale = value

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, logit_scale={self.logit_scale:.4g}, kappa={self.kappa}, "
            f"delta={self.delta}, prune_threshold={self.prune_threshold}, compact={self.compact}"
        )

    def reset_parameters(self) -> None:
        """Identity initialisation of every leaf (see the leaves' ``identity_values``)."""
        for leaf in (self.prior, self.mu_proj, self.logvar_proj, self.alpha_proj):
            _copy_identity(leaf)

    def set_prior(
        self,
        *,
        mu: Scalar | None = None,
        var: Scalar | None = None,
        log_alpha: Scalar | None = None,
        log_alpha_stdev: Scalar | None = None,
        reset: bool = True,
    ) -> None:
        """Set (e.g. empirical, per-feature) prior values on every leaf that depends on them,
        then re-apply the identity initialisation if ``reset``."""
        detach = lambda v: v.detach().cpu() if isinstance(v, Tensor) else v  # noqa: E731
        if mu is not None:
            self.prior.prior_mu = self.mu_proj.prior_mu = detach(mu)
        if var is not None:
            self.prior.prior_var = self.logvar_proj.prior_var = detach(var)
        if log_alpha is not None:
            self.prior.prior_log_alpha = detach(log_alpha)
        if log_alpha_stdev is not None:
            stdev = detach(log_alpha_stdev)
            self.prior.prior_log_alpha_stdev = self.alpha_proj.prior_log_alpha_stdev = stdev
        if reset:
            self.reset_parameters()
        else:
            _copy_identity(self.prior)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        *,
        sample: bool | None = None,
        gaussian_noise: Tensor | None = None,
    ) -> NvibOutput:
        """hidden_states (B, N, P), attention_mask (B, N) 1/True = real token.

        Returns L = κ(N+1) slots (fewer with ``compact``), component-major: slot ``i·κ + c`` is
        copy c of component i, component 0 the prior. ``sample`` defaults to ``self.training``.
        """
        batch, length, _ = hidden_states.shape
        sample = self.training if sample is None else sample
        kappa = int(self.kappa)
        device = hidden_states.device
        if attention_mask is None:
            tokens = torch.ones(batch, length, dtype=torch.bool, device=device)
        else:
            tokens = attention_mask.to(device) != 0

        x = hidden_states
        weight = self.mu_proj.weight
        if not torch.is_autocast_enabled(device.type) and x.dtype != weight.dtype:
            x = x.to(weight.dtype)
        mu = self.mu_proj(x)
        logvar = self.logvar_proj(x)
        log_alpha = self.alpha_proj(x)

        prior = self.prior
        mu = torch.cat([prior.mu.to(mu.dtype).expand(batch, 1, -1), mu], dim=1)
        prior_logvar = prior.var.log().to(logvar.dtype)
        logvar = torch.cat([prior_logvar.expand(batch, 1, -1), logvar], dim=1)
        prior_log_alpha = prior.log_alpha.to(log_alpha.dtype)
        log_alpha = torch.cat([prior_log_alpha.expand(batch, 1), log_alpha], dim=1)
        valid = torch.cat([torch.ones_like(tokens[:, :1]), tokens], dim=1)
        # Per component (κ copies share μ, σ²; E[π] summed over copies is the component's).
        kl_g = kl_gaussian(mu, logvar, log_alpha, valid, prior.mu, prior.var, kappa)
        if kappa > 1:
            mu, logvar, log_alpha, valid = (
                t.repeat_interleave(kappa, dim=1) for t in (mu, logvar, log_alpha, valid)
            )
            log_alpha = log_alpha - math.log(kappa)

        kl_d = kl_dirichlet(log_alpha, valid, prior.log_alpha, self.delta, kappa)
        alpha_sum = torch.logsumexp(log_alpha.masked_fill(~valid, float("-inf")), dim=-1)
        alpha_sum = alpha_sum.clamp_max(_MAX_LOG_ALPHA_SUM).exp().float()

        if sample:
            noise = torch.randn_like(mu) if gaussian_noise is None else gaussian_noise.to(mu)
            z = torch.addcmul(mu, exp_no_subnormal(0.5 * logvar), noise)
            # Gamma(α/κ) per copy, normalised over all slots = ρ ~ Dir(α) times a symmetric
            # Dir(α/κ) split of each component's mass over its copies (nvib-maths.md §1).
            mask = valid
            log_pi = masked_log_softmax(log_gamma_rsample(log_alpha), mask)
        else:
            z = mu
            mask = valid & self._not_pruned(log_alpha, kappa)
            log_pi = masked_log_softmax(log_alpha, mask)

        out = NvibOutput(
            z=z,
            mu=mu,
            logvar=logvar,
            log_alpha=log_alpha,
            log_pi=log_pi,
            mask=mask,
            kl_gaussian=kl_g,
            kl_dirichlet=kl_d,
            num_kept=mask.sum(-1),
            num_valid=valid.sum(-1),
            alpha_sum=alpha_sum,
        )
        if self.compact and not sample:
            out = compact_output(out)
        return out

    def _not_pruned(self, log_alpha: Tensor, kappa: int) -> Tensor:
        """α per copy above ``prune_threshold`` (≤ 0 disables); the prior's copies always."""
        keep = torch.ones_like(log_alpha, dtype=torch.bool)
        if self.prune_threshold > 0:
            keep = log_alpha > math.log(self.prune_threshold)
            keep[:, :kappa] = True
        return keep


def compact_output(out: NvibOutput) -> NvibOutput:
    """Gather the kept slots of every sequence to the front (order kept), pad to the batch
    maximum; padding slots have ``mask`` False and ``log_pi`` -inf. Per-sequence statistics are
    unchanged. Reads the batch maximum back from the device."""
    order = torch.argsort((~out.mask).to(torch.int8), dim=1, stable=True)
    width = int(out.num_kept.max())
    index = order[:, :width]
    mask = torch.arange(width, device=index.device)[None, :] < out.num_kept[:, None]

    def take(t: Tensor) -> Tensor:
        if t.dim() == 3:
            return t.gather(1, index[..., None].expand(-1, -1, t.shape[-1]))
        return t.gather(1, index)

    return NvibOutput(
        z=take(out.z),
        mu=take(out.mu),
        logvar=take(out.logvar),
        log_alpha=take(out.log_alpha),
        log_pi=take(out.log_pi).masked_fill(~mask, float("-inf")),
        mask=mask,
        kl_gaussian=out.kl_gaussian,
        kl_dirichlet=out.kl_dirichlet,
        num_kept=out.num_kept,
        num_valid=out.num_valid,
        alpha_sum=out.alpha_sum,
    )
