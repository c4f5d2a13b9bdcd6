"""Configuration of NVIB-T5: a ``T5Config`` plus flat ``nvib_*`` fields."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig, T5Config

from hf_nvib.models.config_validation import (
    NvibConfigMixin,
    check_nvib_kwargs,
    strip_plain_config_dict,
)
from hf_nvib.models.outputs import NVIB_KEYS_TO_IGNORE_AT_INFERENCE

_BACKBONES = ("t5",)


class NvibT5Config(NvibConfigMixin, T5Config):
    """T5 config with NVIB between encoder and decoder (see ``NvibConfigMixin`` fields).

    Loading a plain ``t5`` config (``from_pretrained`` on a T5 checkpoint, or
    :meth:`from_plain`) converts it; any other ``model_type`` raises ``ValueError``.
    """

    model_type = "nvib_t5"
    keys_to_ignore_at_inference = NVIB_KEYS_TO_IGNORE_AT_INFERENCE

    @property
    def nvib_logit_scale(self) -> float:
        """T5 does not scale attention logits: s = 1."""
        return 1.0

    @classmethod
    def get_config_dict(cls, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        config_dict, kwargs = super().get_config_dict(*args, **kwargs)
        return _strip(config_dict), kwargs

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> NvibT5Config:
        check_nvib_kwargs(kwargs)
        return super().from_dict(_strip(config_dict), **kwargs)

    @classmethod
    def from_plain(cls, config: PreTrainedConfig, **nvib_kwargs: Any) -> NvibT5Config:
        """Convert a plain ``T5Config`` (or an NVIB-T5 one) and set NVIB options."""
        check_nvib_kwargs(nvib_kwargs)
        if not all(k.startswith("nvib_") for k in nvib_kwargs):
            raise ValueError(f"from_plain takes only nvib_* options, got {sorted(nvib_kwargs)}")
        return cls.from_dict({**config.to_dict(), **nvib_kwargs})


def _strip(config_dict: dict[str, Any]) -> dict[str, Any]:
    return strip_plain_config_dict(
        config_dict, nvib_model_type=NvibT5Config.model_type, backbone_model_types=_BACKBONES
    )


__all__ = ["NvibT5Config"]
