"""hf_nvib local ``evaluate`` module: Exact match (%) after stripping whitespace, offline.

Load with ``evaluate.load(hf_nvib.evaluation.metric_module_path("nvib_exact_match"))``;
no Hub access.
The scoring itself lives in :mod:`hf_nvib.evaluation.metrics` so both paths agree.
"""

from __future__ import annotations

import datasets
import evaluate

from hf_nvib.evaluation.metrics import exact_match

_DESCRIPTION = "Exact match (%) after stripping whitespace, offline."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of reference strings, one per prediction.
Returns ``{"exact_match": float}``.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NvibExactMatch(evaluate.Metric):
    """``evaluate`` wrapper around :func:`hf_nvib.evaluation.metrics.exact_match`."""

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
        return {"exact_match": exact_match(predictions, references)}
