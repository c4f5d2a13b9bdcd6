"""Offline ``evaluate`` module: Mean ROUGE-1/2/L F-measure x 100 (rouge_score, no stemming).

``evaluate.load(hf_nvib.evaluation.metric_module_path("nvib_rouge"))`` reads it with no Hub
access; the scoring lives in :mod:`hf_nvib.evaluation.metrics`.
"""

from hf_nvib.evaluation.metric_module_base import TextMetricModule
from hf_nvib.evaluation.metrics import rouge_scores


class NvibRouge(TextMetricModule):
    description = "Mean ROUGE-1/2/L F-measure x 100 (rouge_score, no stemming)."

    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return rouge_scores(predictions, references)
