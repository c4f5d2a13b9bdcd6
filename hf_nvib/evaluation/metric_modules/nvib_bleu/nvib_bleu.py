"""Offline ``evaluate`` module: Corpus BLEU (sacrebleu defaults), 0-100.

``evaluate.load(hf_nvib.evaluation.metric_module_path("nvib_bleu"))`` reads it with no Hub
access; the scoring lives in :mod:`hf_nvib.evaluation.metrics`.
"""

from hf_nvib.evaluation.metric_module_base import TextMetricModule
from hf_nvib.evaluation.metrics import bleu_score


class NvibBleu(TextMetricModule):
    description = "Corpus BLEU (sacrebleu defaults), 0-100."

    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {"bleu": bleu_score(predictions, references)}
