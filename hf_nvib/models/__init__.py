"""Transformers integration of NVIB: NVIB-BART and NVIB-T5, plus Auto-class registration."""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from hf_nvib.models.bart import (
    NvibBartConfig,
    NvibBartForConditionalGeneration,
    NvibBartModel,
)
from hf_nvib.models.outputs import NvibEncoderOutput, NvibSeq2SeqLMOutput, NvibSeq2SeqModelOutput
from hf_nvib.models.t5 import NvibT5Config, NvibT5ForConditionalGeneration, NvibT5Model


def register_auto_classes() -> None:
    """Make ``AutoModelForSeq2SeqLM.from_pretrained`` load NVIB checkpoints (no remote code)."""
    for config_class, model_class, lm_class in (
        (NvibBartConfig, NvibBartModel, NvibBartForConditionalGeneration),
        (NvibT5Config, NvibT5Model, NvibT5ForConditionalGeneration),
    ):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        AutoModelForSeq2SeqLM.register(config_class, lm_class, exist_ok=True)


__all__ = [
    "NvibBartConfig",
    "NvibBartForConditionalGeneration",
    "NvibBartModel",
    "NvibEncoderOutput",
    "NvibSeq2SeqLMOutput",
    "NvibSeq2SeqModelOutput",
    "NvibT5Config",
    "NvibT5ForConditionalGeneration",
    "NvibT5Model",
    "register_auto_classes",
]
