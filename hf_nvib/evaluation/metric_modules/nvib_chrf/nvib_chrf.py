"""hf_nvib local ``evaluate`` module: Corpus chrF (sacrebleu defaults), 0-100, offline.

Load with ``evaluate.load(hf_nvib.evaluation.metric_module_path("nvib_chrf"))``; no Hub access.
The scoring itself lives in :mod:`hf_nvib.evaluation.metrics` so both paths agree.
"""

from __future__ import annotations

import datasets
import evaluate

from hf_nvib.evaluation.metrics import chrf_score

_DESCRIPTION = "Corpus chrF (sacrebleu defaults), 0-100, offline."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of reference strings, one per prediction.
Returns ``{"chrf": float}``.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NvibChrf(evaluate.Metric):
    """``evaluate`` wrapper around :func:`hf_nvib.evaluation.metrics.chrf_score`."""

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
        return {"chrf": chrf_score(predictions, references)}
