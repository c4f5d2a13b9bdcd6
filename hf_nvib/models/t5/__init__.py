"""NVIB-T5."""

from hf_nvib.models.t5.configuration_nvib_t5 import NvibT5Config
from hf_nvib.models.t5.modeling_nvib_t5 import (
    NvibT5CrossAttention,
    NvibT5DecoderStack,
    NvibT5EncoderStack,
    NvibT5ForConditionalGeneration,
    NvibT5Model,
)

__all__ = [
    "NvibT5Config",
    "NvibT5CrossAttention",
    "NvibT5DecoderStack",
    "NvibT5EncoderStack",
    "NvibT5ForConditionalGeneration",
    "NvibT5Model",
]
