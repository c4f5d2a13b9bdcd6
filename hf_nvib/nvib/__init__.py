"""NVIB maths in plain torch: the layer, its KL terms and denoising attention.

Never imports transformers: the model integrations in ``hf_nvib.models`` build on this.
"""

from .attention import (
    EvaluationTerms,
    denoising_attention_eval,
    denoising_attention_train,
    evaluation_terms,
    training_key_bias,
)
from .kl import kl_dirichlet, kl_gaussian
from .layer import (
    NvibLayer,
    NvibLogAlphaProjection,
    NvibLogVarProjection,
    NvibMeanProjection,
    NvibOutput,
    NvibPrior,
    compact_output,
)
from .sampling import log_gamma_rsample, masked_log_softmax

__all__ = [
    "EvaluationTerms",
    "NvibLayer",
    "NvibLogAlphaProjection",
    "NvibLogVarProjection",
    "NvibMeanProjection",
    "NvibOutput",
    "NvibPrior",
    "compact_output",
    "denoising_attention_eval",
    "denoising_attention_train",
    "evaluation_terms",
    "kl_dirichlet",
    "kl_gaussian",
    "log_gamma_rsample",
    "masked_log_softmax",
    "training_key_bias",
]
