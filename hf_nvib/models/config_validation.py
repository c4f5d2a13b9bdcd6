"""NVIB hyper-parameters shared by every NVIB config: fields, validation, plain-config conversion.

Validation lives in ``__setattr__`` (not in ``@strict`` validators) so that a bad value raises a
plain ``ValueError`` whether it comes from the constructor, from ``from_pretrained(...,
nvib_kappa=0)`` (transformers applies such kwargs with ``setattr`` *after* construction) or from
a later assignment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EVAL_ATTENTION_CHOICES = ("denoising", "mean")

# Keys of a plain checkpoint's config that must not leak into an NVIB config: a leftover
# `model_type="bart"` instance attribute would shadow the class's `nvib_bart`, and a plain
# checkpoint's `auto_map` points at someone else's remote code.
PLAIN_CONFIG_KEYS_TO_DROP = ("model_type", "architectures", "transformers_version", "auto_map")
# An NVIB config keeps its `auto_map` (a remote-code push needs it to load with
# `trust_remote_code=True`). So does a dict without `model_type`: `from_pretrained` strips the
# dict twice (`get_config_dict`, then `from_dict`), and the second pass no longer sees the type.
NVIB_CONFIG_KEYS_TO_DROP = tuple(k for k in PLAIN_CONFIG_KEYS_TO_DROP if k != "auto_map")


def _finite(value: float) -> bool:
    return math.isfinite(value)


# name -> (python type, predicate on the coerced value, human description of the valid range)
_CHECKS: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "nvib_kappa": (int, lambda v: v >= 1, "an integer >= 1"),
    "nvib_prior_mu": (float, _finite, "a finite float"),
    "nvib_prior_var": (float, lambda v: _finite(v) and v > 0, "a finite float > 0"),
    "nvib_prior_log_alpha": (float, _finite, "a finite float"),
    "nvib_prior_log_alpha_stdev": (float, lambda v: _finite(v) and v >= 0, "a finite float >= 0"),
    "nvib_mu_tau": (float, _finite, "a finite float"),
    "nvib_stdev_tau": (float, lambda v: _finite(v) and v >= 0, "a finite float >= 0"),
    "nvib_alpha_tau": (float, _finite, "a finite float"),
    "nvib_delta": (float, lambda v: _finite(v) and v > 0, "a finite float > 0"),
    "nvib_lambda_gaussian": (float, lambda v: _finite(v) and v >= 0, "a finite float >= 0"),
    "nvib_lambda_dirichlet": (float, lambda v: _finite(v) and v >= 0, "a finite float >= 0"),
    "nvib_prune_threshold": (float, lambda v: _finite(v) and v >= 0, "a finite float >= 0"),
    "nvib_compact": (bool, lambda v: True, "a bool"),
    "nvib_eval_attention": (
        str,
        lambda v: v in EVAL_ATTENTION_CHOICES,
        f"one of {EVAL_ATTENTION_CHOICES}",
    ),
}

NVIB_FIELD_NAMES: tuple[str, ...] = tuple(_CHECKS)


def coerce_nvib_value(name: str, value: Any) -> Any:
    """``value`` converted to the field's type; a ``ValueError`` naming the field otherwise."""
    kind, predicate, description = _CHECKS[name]
    ok_type = (
        (isinstance(value, bool) if kind is bool else False)
        or (kind is int and isinstance(value, int) and not isinstance(value, bool))
        or (kind is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (kind is str and isinstance(value, str))
    )
    if not ok_type:
        raise ValueError(f"{name} must be {description}, got {value!r} ({type(value).__name__})")
    coerced = float(value) if kind is float else value
    if not predicate(coerced):
        raise ValueError(f"{name} must be {description}, got {value!r}")
    return coerced


@dataclass(kw_only=True, repr=False)
class NvibConfigMixin:
    """Flat NVIB fields (see docs/nvib-maths.md for their meaning); mixed into each NVIB config."""

    nvib_kappa: int = 1
    nvib_prior_mu: float = 0.0
    nvib_prior_var: float = 1.0
    nvib_prior_log_alpha: float = 0.0
    nvib_prior_log_alpha_stdev: float = 1.0
    nvib_mu_tau: float = 1.0
    nvib_stdev_tau: float = 0.0
    nvib_alpha_tau: float = 10.0
    nvib_delta: float = 1.0
    nvib_lambda_gaussian: float = 0.01
    nvib_lambda_dirichlet: float = 1.0
    nvib_prune_threshold: float = 0.1
    nvib_compact: bool = False
    nvib_eval_attention: str = "denoising"

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _CHECKS:
            value = coerce_nvib_value(key, value)
        super().__setattr__(key, value)

    def nvib_layer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``NvibLayer`` (everything but ``d_model`` and ``logit_scale``)."""
        return {
            "kappa": self.nvib_kappa,
            "prior_mu": self.nvib_prior_mu,
            "prior_var": self.nvib_prior_var,
            "prior_log_alpha": self.nvib_prior_log_alpha,
            "prior_log_alpha_stdev": self.nvib_prior_log_alpha_stdev,
            "mu_tau": self.nvib_mu_tau,
            "stdev_tau": self.nvib_stdev_tau,
            "alpha_tau": self.nvib_alpha_tau,
            "delta": self.nvib_delta,
            "prune_threshold": self.nvib_prune_threshold,
            "compact": self.nvib_compact,
        }


def check_nvib_kwargs(kwargs: dict[str, Any]) -> None:
    """Reject misspelt ``nvib_*`` keyword arguments instead of silently storing them."""
    unknown = sorted(k for k in kwargs if k.startswith("nvib_") and k not in _CHECKS)
    if unknown:
        raise ValueError(f"Unknown NVIB option(s) {unknown}; valid: {list(NVIB_FIELD_NAMES)}")


def strip_plain_config_dict(
    config_dict: dict[str, Any], *, nvib_model_type: str, backbone_model_types: tuple[str, ...]
) -> dict[str, Any]:
    """Return a copy of a config dict fit for an NVIB config, or raise for a foreign backbone.

    A dict saved by the NVIB model itself is returned unchanged (minus the version marker); a plain
    backbone dict loses the keys that would make the NVIB config pose as the plain one.
    """
    model_type = config_dict.get("model_type")
    if model_type not in (None, nvib_model_type, *backbone_model_types):
        raise ValueError(
            f"Cannot convert a {model_type!r} checkpoint/config into {nvib_model_type!r}: "
            f"supported backbones are {list(backbone_model_types)} (or {nvib_model_type!r})."
        )
    drop = (
        PLAIN_CONFIG_KEYS_TO_DROP
        if model_type in backbone_model_types
        else NVIB_CONFIG_KEYS_TO_DROP
    )
    return {k: v for k, v in config_dict.items() if k not in drop}
