"""Offline ``evaluate`` module: Exact match (%) after stripping whitespace.

``evaluate.load(hf_nvib.evaluation.metric_module_path("nvib_exact_match"))`` reads it with no Hub
access; the scoring lives in :mod:`hf_nvib.evaluation.metrics`.
"""

from hf_nvib.evaluation.metric_module_base import TextMetricModule
from hf_nvib.evaluation.metrics import exact_match


class NvibExactMatch(TextMetricModule):
    description = "Exact match (%) after stripping whitespace."

    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {"exact_match": exact_match(predictions, references)}
