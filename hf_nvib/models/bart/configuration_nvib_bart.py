"""Configuration of NVIB-BART: a ``BartConfig`` plus flat ``nvib_*`` fields."""

from __future__ import annotations

from typing import Any

from transformers import BartConfig, PreTrainedConfig

from hf_nvib.models.config_validation import (
    NvibConfigMixin,
    check_nvib_kwargs,
    strip_plain_config_dict,
)
from hf_nvib.models.outputs import NVIB_KEYS_TO_IGNORE_AT_INFERENCE

_BACKBONES = ("bart",)


class NvibBartConfig(NvibConfigMixin, BartConfig):
    """BART config with NVIB between encoder and decoder (see ``NvibConfigMixin`` fields).

    Loading a plain ``bart`` config (``from_pretrained`` on a BART checkpoint, or
    :meth:`from_plain`) converts it; any other ``model_type`` raises ``ValueError``.
    """

    model_type = "nvib_bart"
    keys_to_ignore_at_inference = NVIB_KEYS_TO_IGNORE_AT_INFERENCE

    @property
    def nvib_logit_scale(self) -> float:
        """Logit scale s of the consumer attention (decoder cross-attention): 1/sqrt(head dim)."""
        return float(self.d_model // self.decoder_attention_heads) ** -0.5

    @classmethod
    def get_config_dict(cls, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        config_dict, kwargs = super().get_config_dict(*args, **kwargs)
        return _strip(config_dict), kwargs

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> NvibBartConfig:
        check_nvib_kwargs(kwargs)
        return super().from_dict(_strip(config_dict), **kwargs)

    @classmethod
    def from_plain(cls, config: PreTrainedConfig, **nvib_kwargs: Any) -> NvibBartConfig:
        """Convert a plain ``BartConfig`` (or an NVIB-BART one) and set NVIB options."""
        check_nvib_kwargs(nvib_kwargs)
        if not all(k.startswith("nvib_") for k in nvib_kwargs):
            raise ValueError(f"from_plain takes only nvib_* options, got {sorted(nvib_kwargs)}")
        return cls.from_dict({**config.to_dict(), **nvib_kwargs})


def _strip(config_dict: dict[str, Any]) -> dict[str, Any]:
    return strip_plain_config_dict(
        config_dict, nvib_model_type=NvibBartConfig.model_type, backbone_model_types=_BACKBONES
    )


__all__ = ["NvibBartConfig"]
