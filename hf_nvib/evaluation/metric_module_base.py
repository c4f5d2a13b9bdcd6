"""The shared body of the shipped ``evaluate`` modules (``metric_modules/*/``).

Each module file only names its score; ``evaluate.load(path)`` picks the first non-abstract
``EvaluationModule`` subclass in the file, so this base stays abstract.
"""

from __future__ import annotations

import abc

import datasets
import evaluate

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of reference strings, one per prediction.
"""


class TextMetricModule(evaluate.Metric, abc.ABC):
    """An offline ``evaluate.Metric`` scoring generated strings against single references."""

    description: str = ""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.description,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return self.score(predictions, references)

    @abc.abstractmethod
    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        """The metric's values, keyed by name."""
