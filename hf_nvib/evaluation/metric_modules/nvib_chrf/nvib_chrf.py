"""Offline ``evaluate`` module: Corpus chrF (sacrebleu defaults), 0-100.

``evaluate.load(hf_nvib.evaluation.metric_module_path("nvib_chrf"))`` reads it with no Hub
access; the scoring lives in :mod:`hf_nvib.evaluation.metrics`.
"""

from hf_nvib.evaluation.metric_module_base import TextMetricModule
from hf_nvib.evaluation.metrics import chrf_score


class NvibChrf(TextMetricModule):
    description = "Corpus chrF (sacrebleu defaults), 0-100."

    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {"chrf": chrf_score(predictions, references)}
