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
from hf_nvib.pipelines import NvibText2TextGenerationPipeline, register_pipeline

register_auto_classes()
register_pipeline()

__all__ = [
    "NvibBartConfig",
    "NvibBartForConditionalGeneration",
    "NvibBartModel",
    "NvibT5Config",
    "NvibT5ForConditionalGeneration",
    "NvibT5Model",
    "NvibText2TextGenerationPipeline",
    "__version__",
]
