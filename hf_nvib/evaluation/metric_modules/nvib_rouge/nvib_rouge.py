"""hf_nvib local ``evaluate`` module: mean ROUGE-1/2/L F x 100 (no stemming), offline.

Load with ``evaluate.load(hf_nvib.evaluation.metric_module_path("nvib_rouge"))``; no Hub access.
The scoring itself lives in :mod:`hf_nvib.evaluation.metrics` so both paths agree.
"""

from __future__ import annotations

import datasets
import evaluate

from hf_nvib.evaluation.metrics import rouge_scores

_DESCRIPTION = "Mean ROUGE-1/2/L F-measure x 100 (rouge_score, no stemming), offline."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of reference strings, one per prediction.
Returns ``{"rouge1", "rouge2", "rougeL"}`` floats.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NvibRouge(evaluate.Metric):
    """``evaluate`` wrapper around :func:`hf_nvib.evaluation.metrics.rouge_scores`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return rouge_scores(predictions, references)
