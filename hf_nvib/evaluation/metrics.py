"""Offline text-generation metrics (BLEU, chrF, ROUGE, exact match, length).

Computed with ``sacrebleu`` and ``rouge_score`` directly: ``evaluate.load("bleu")`` would fetch
a metric script from the Hub. All scores are on a 0–100 scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer

__all__ = [
    "METRIC_MODULES",
    "ROUGE_TYPES",
    "bleu_score",
    "build_compute_metrics",
    "chrf_score",
    "exact_match",
    "mean_length",
    "metric_module_path",
    "rouge_scores",
    "text_metrics",
]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
METRIC_MODULES = ("nvib_bleu", "nvib_chrf", "nvib_exact_match", "nvib_rouge")
_METRIC_MODULES_DIR = Path(__file__).resolve().parent / "metric_modules"


def metric_module_path(name: str) -> str:
    """Directory of a shipped ``evaluate`` module, for ``evaluate.load(path)`` without the Hub.

    ``name`` is one of :data:`METRIC_MODULES` (``"bleu"`` is accepted for ``"nvib_bleu"``).
    """
    key = name if name.startswith("nvib_") else f"nvib_{name}"
    if key not in METRIC_MODULES:
        raise ValueError(f"unknown metric module {name!r}; available: {METRIC_MODULES}")
    return str(_METRIC_MODULES_DIR / key)


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references: one reference "
            f"per prediction is expected"
        )
    if not predictions:
        raise ValueError("no predictions to score")


def bleu_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, exp smoothing), 0–100."""
    _check(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def chrf_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults: character 6-grams, β = 2), 0–100."""
    _check(predictions, references)
    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean sentence-level ROUGE-1/2/L F-measure × 100 (no stemming)."""
    _check(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        # rouge_score takes (target, prediction): the order matters for precision/recall.
        scores = scorer.score(reference, prediction)
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: 100.0 * total / len(predictions) for key, total in totals.items()}


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of predictions equal to their reference after stripping outer whitespace."""
    _check(predictions, references)
    hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / len(predictions)


def mean_length(predictions: Sequence[str]) -> float:
    """Mean number of whitespace-separated words per prediction."""
    if not predictions:
        raise ValueError("no predictions to score")
    return float(np.mean([len(p.split()) for p in predictions]))


def text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """All text metrics for aligned prediction/reference strings.

    Returns ``bleu``, ``chrf``, ``rouge1``, ``rouge2``, ``rougeL``, ``exact_match`` (all 0–100)
    and ``gen_len`` (mean words per prediction).
    """
    _check(predictions, references)
    return {
        "bleu": bleu_score(predictions, references),
        "chrf": chrf_score(predictions, references),
        **rouge_scores(predictions, references),
        "exact_match": exact_match(predictions, references),
        "gen_len": mean_length(predictions),
    }


def _as_id_array(values: Any, pad_id: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 3:
        # Logits (no predict_with_generate): the best token per position.
        array = array.argmax(axis=-1)
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int64)
    return np.where(array < 0, pad_id, array)


def build_compute_metrics(tokenizer: Any, *, prefix: str = "") -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for ``Seq2SeqTrainer`` (best with ``predict_with_generate=True``).

    Accepts an ``EvalPrediction`` or a ``(predictions, labels)`` tuple. Tuple predictions
    (generated ids plus extra model outputs) keep their first element; logits are argmax-ed.
    ``-100`` (the label / padding sentinel, and any negative id) becomes the pad id in labels
    *and* predictions before decoding; decoded texts skip special tokens and are stripped.
    Returns :func:`text_metrics` plus ``gen_len_tokens`` (mean non-pad generated ids, special
    tokens included), every key prefixed with ``prefix`` (the Trainer adds ``eval_`` on top).
    """
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has no pad_token_id; set one before evaluation")

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        if hasattr(eval_prediction, "predictions"):
            predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        else:
            predictions, labels = eval_prediction
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        prediction_ids = _as_id_array(predictions, pad_id)
        label_ids = _as_id_array(labels, pad_id)
        decoded_predictions = [
            t.strip() for t in tokenizer.batch_decode(prediction_ids, skip_special_tokens=True)
        ]
        decoded_labels = [
            t.strip() for t in tokenizer.batch_decode(label_ids, skip_special_tokens=True)
        ]
        metrics = text_metrics(decoded_predictions, decoded_labels)
        metrics["gen_len_tokens"] = float(np.mean(np.sum(prediction_ids != pad_id, axis=-1)))
        return {f"{prefix}{key}": value for key, value in metrics.items()}

    return compute_metrics
