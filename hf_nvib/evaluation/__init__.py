"""Evaluation: offline text metrics, local ``evaluate`` modules and NVIB/VAE statistics."""

from hf_nvib.evaluation.metrics import (
    METRIC_MODULES,
    ROUGE_TYPES,
    bleu_score,
    build_compute_metrics,
    chrf_score,
    exact_match,
    mean_length,
    metric_module_path,
    rouge_scores,
    text_metrics,
)
from hf_nvib.evaluation.nvib_metrics import (
    NvibMetricAccumulator,
    active_units,
    pooled_latent_means,
    reconstruction_metrics,
)

__all__ = [
    "METRIC_MODULES",
    "ROUGE_TYPES",
    "NvibMetricAccumulator",
    "active_units",
    "bleu_score",
    "build_compute_metrics",
    "chrf_score",
    "exact_match",
    "mean_length",
    "metric_module_path",
    "pooled_latent_means",
    "reconstruction_metrics",
    "rouge_scores",
    "text_metrics",
]
