"""hf_nvib: the nonparametric variational information bottleneck for Hugging Face seq2seq models."""

__version__ = "0.1.0"

from hf_nvib.models import (
    NvibBartConfig,
    NvibBartForConditionalGeneration,
    NvibBartModel,
    NvibT5Config,
    NvibT5ForConditionalGeneration,
    NvibT5Model,
    register_auto_classes,
)

register_auto_classes()

__all__ = [
    "NvibBartConfig",
    "NvibBartForConditionalGeneration",
    "NvibBartModel",
    "NvibT5Config",
    "NvibT5ForConditionalGeneration",
    "NvibT5Model",
    "__version__",
]
