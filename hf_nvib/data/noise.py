"""BART-style text noise on whitespace-separated words.

Why words and not token ids: the noised string is tokenised afterwards by whatever tokenizer
the model uses, so one implementation serves BART, T5 and freshly trained BPE vocabularies;
only the mask token string differs (``tokenizer.mask_token`` or e.g. ``"<extra_id_0>"``).

Rates are fractions of the sentence's words. Counts are drawn with stochastic rounding
(``floor(rate*n)`` plus one with probability ``frac(rate*n)``) so the expected rate is exact
even for short sentences, and spans never overlap.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class NoiseConfig:
    """Noise rates (fractions of words) for the denoising task; all zero means identity.

    infill_prob: words covered by spans, each span replaced by ONE mask token (BART text
        infilling). Span lengths ~ Poisson(poisson_lambda); a length-0 span inserts a mask;
        poisson_lambda=0 means one-word spans.
    mask_prob: words replaced one-for-one by a mask token (BART token masking).
    delete_prob: words removed without trace (BART token deletion).
    """

    mask_prob: float = 0.1
    delete_prob: float = 0.1
    infill_prob: float = 0.1
    poisson_lambda: float = 3.0

    def __post_init__(self) -> None:
        for name in ("mask_prob", "delete_prob", "infill_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"NoiseConfig.{name} must be in [0, 1], got {value}.")
        total = self.mask_prob + self.delete_prob + self.infill_prob
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"NoiseConfig rates sum to {total:.3f} > 1: mask_prob + delete_prob + "
                "infill_prob is the fraction of words altered and cannot exceed 1."
            )
        if self.poisson_lambda < 0:
            raise ValueError(f"NoiseConfig.poisson_lambda must be >= 0, got {self.poisson_lambda}.")

    @property
    def is_identity(self) -> bool:
        return self.mask_prob == 0 and self.delete_prob == 0 and self.infill_prob == 0

    @classmethod
    def none(cls) -> NoiseConfig:
        """No noise: the denoising task becomes plain autoencoding."""
        return cls(mask_prob=0.0, delete_prob=0.0, infill_prob=0.0)


def _stochastic_round(x: float, rng: random.Random) -> int:
    base = math.floor(x)
    return base + (1 if rng.random() < x - base else 0)


def sample_poisson(lam: float, rng: random.Random) -> int:
    """Knuth's method; fine for the small λ used for span lengths."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _span_lengths(budget: int, lam: float, rng: random.Random) -> list[int]:
    """Poisson span lengths summing exactly to ``budget`` (last one trimmed), BART-style.

    λ = 0 degenerates to one-word spans (plain masking) instead of endless empty spans.
    """
    if lam <= 0:
        return [1] * budget
    lengths: list[int] = []
    covered = 0
    while covered < budget:
        length = min(sample_poisson(lam, rng), budget - covered)
        lengths.append(length)
        covered += length
        if len(lengths) > 10 * budget + 100:  # tiny λ: cap the run of empty spans
            lengths.append(budget - covered)
            break
    return lengths


def add_noise(text: str, cfg: NoiseConfig, rng: random.Random, mask_token: str = "<mask>") -> str:
    """Noise ``text`` (deterministic given ``rng``'s state); identity when ``cfg`` is zero."""
    words = text.split()
    if cfg.is_identity or not words:
        return text
    n = len(words)
    n_infill = min(_stochastic_round(cfg.infill_prob * n, rng), n)
    spans = _span_lengths(n_infill, cfg.poisson_lambda, rng) if n_infill else []
    n_infill = sum(spans)

    # Interleave the n - n_infill surviving words with the spans: choose which of the
    # (survivors + spans) slots are spans; spans thus never overlap and zero-length spans
    # become insertions.
    survivors = n - n_infill
    slots = survivors + len(spans)
    span_slots = set(rng.sample(range(slots), len(spans)))
    rng.shuffle(spans)

    n_mask = min(_stochastic_round(cfg.mask_prob * n, rng), survivors)
    n_delete = min(_stochastic_round(cfg.delete_prob * n, rng), survivors - n_mask)
    picked = rng.sample(range(survivors), n_mask + n_delete)
    masked, deleted = set(picked[:n_mask]), set(picked[n_mask:])

    out: list[str] = []
    word_i = survivor_i = 0
    span_iter = iter(spans)
    for slot in range(slots):
        if slot in span_slots:
            out.append(mask_token)
            word_i += next(span_iter)
            continue
        if survivor_i in masked:
            out.append(mask_token)
        elif survivor_i not in deleted:
            out.append(words[word_i])
        survivor_i += 1
        word_i += 1
    return " ".join(out)


def example_rng(seed: int, index: int, epoch: int = 0) -> random.Random:
    """Independent, process-stable RNG per (seed, epoch, example): string seeds hash via SHA-512,
    unaffected by PYTHONHASHSEED."""
    return random.Random(f"hf_nvib-noise:{seed}:{epoch}:{index}")
