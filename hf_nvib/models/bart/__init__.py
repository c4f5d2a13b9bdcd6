"""NVIB-BART."""

from hf_nvib.models.bart.configuration_nvib_bart import NvibBartConfig
from hf_nvib.models.bart.modeling_nvib_bart import (
    NvibBartCrossAttention,
    NvibBartDecoder,
    NvibBartEncoder,
    NvibBartForConditionalGeneration,
    NvibBartModel,
)

__all__ = [
    "NvibBartConfig",
    "NvibBartCrossAttention",
    "NvibBartDecoder",
    "NvibBartEncoder",
    "NvibBartForConditionalGeneration",
    "NvibBartModel",
]
