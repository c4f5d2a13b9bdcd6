"""BART-style word noise: determinism, identity, rates and span lengths."""

from __future__ import annotations

import random
import statistics

import pytest

from hf_nvib.data.corpus import load_bundled
from hf_nvib.data.noise import (
    NoiseConfig,
    _span_lengths,
    add_noise,
    example_rng,
    sample_poisson,
)

M = "<mask>"


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return [r["en"] for r in load_bundled("train", limit=3000)]


def _is_subsequence(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(any(w == x for x in it) for w in part)


def test_deterministic_under_seed(sentences):
    cfg = NoiseConfig(mask_prob=0.1, delete_prob=0.1, infill_prob=0.2)
    a = [add_noise(s, cfg, random.Random(3)) for s in sentences[:200]]
    b = [add_noise(s, cfg, random.Random(3)) for s in sentences[:200]]
    c = [add_noise(s, cfg, random.Random(4)) for s in sentences[:200]]
    assert a == b
    assert sum(x != y for x, y in zip(a, c, strict=True)) > 150
    assert add_noise(sentences[0], cfg, example_rng(0, 5)) == add_noise(
        sentences[0], cfg, example_rng(0, 5)
    )
    assert example_rng(0, 5).random() != example_rng(0, 6).random()
    assert example_rng(0, 5, epoch=1).random() != example_rng(0, 5, epoch=0).random()


def test_zero_noise_is_identity(sentences):
    cfg = NoiseConfig.none()
    assert cfg.is_identity
    rng = random.Random(0)
    for s in [*sentences[:100], "  odd   spacing\tkept ", ""]:
        assert add_noise(s, cfg, rng) == s
    assert add_noise("", NoiseConfig(), rng) == ""


def test_token_masking_rate(sentences):
    cfg = NoiseConfig(mask_prob=0.2, delete_prob=0.0, infill_prob=0.0)
    rng = random.Random(0)
    n_words = n_masks = 0
    for s in sentences:
        words = s.split()
        out = add_noise(s, cfg, rng).split()
        assert len(out) == len(words)  # one-for-one replacement
        assert all(o in (w, M) for o, w in zip(out, words, strict=True))
        n_words += len(words)
        n_masks += out.count(M)
    assert abs(n_masks / n_words - 0.2) < 0.01


def test_deletion_rate_keeps_order(sentences):
    cfg = NoiseConfig(mask_prob=0.0, delete_prob=0.15, infill_prob=0.0)
    rng = random.Random(1)
    kept = total = 0
    for s in sentences:
        words = s.split()
        out = add_noise(s, cfg, rng).split()
        assert M not in out
        assert _is_subsequence(out, words)
        kept += len(out)
        total += len(words)
    assert abs(1 - kept / total - 0.15) < 0.01


def test_span_infilling_rate_and_span_mean(sentences):
    cfg = NoiseConfig(mask_prob=0.0, delete_prob=0.0, infill_prob=0.3, poisson_lambda=3.0)
    rng = random.Random(2)
    covered = total = spans = 0
    for s in sentences:
        words = s.split()
        out = add_noise(s, cfg, rng).split()
        survivors = [w for w in out if w != M]
        assert _is_subsequence(survivors, words)
        covered += len(words) - len(survivors)
        total += len(words)
        spans += out.count(M)
    assert abs(covered / total - 0.3) < 0.01
    # every span becomes one mask; trimming the last span per sentence lowers the mean a bit
    assert 2.3 < covered / spans < 3.2


def test_span_lengths_are_poisson():
    rng = random.Random(0)
    draws = [sample_poisson(3.0, rng) for _ in range(20000)]
    assert abs(statistics.fmean(draws) - 3.0) < 0.06
    assert abs(statistics.pvariance(draws) - 3.0) < 0.15
    assert abs(draws.count(0) / len(draws) - 0.0498) < 0.006  # P(0) = e^-3
    lengths = _span_lengths(30000, 3.0, rng)
    assert sum(lengths) == 30000
    assert abs(statistics.fmean(lengths) - 3.0) < 0.06
    assert sample_poisson(0.0, rng) == 0
    assert _span_lengths(5, 0.0, rng) == [1, 1, 1, 1, 1]


def test_zero_length_spans_insert_masks():
    cfg = NoiseConfig(mask_prob=0.0, delete_prob=0.0, infill_prob=0.5, poisson_lambda=0.3)
    rng = random.Random(0)
    text = " ".join(f"w{i}" for i in range(40))
    outs = [add_noise(text, cfg, rng).split() for _ in range(200)]
    # with λ=0.3 most spans are empty: more masks than words removed
    masks = sum(o.count(M) for o in outs)
    removed = sum(40 - (len(o) - o.count(M)) for o in outs)
    assert removed == 200 * 20
    assert masks > removed


def test_combined_noise_and_custom_mask_token(sentences):
    cfg = NoiseConfig(mask_prob=0.1, delete_prob=0.1, infill_prob=0.1)
    rng = random.Random(5)
    ratio = []
    for s in sentences[:500]:
        out = add_noise(s, cfg, rng, mask_token="<extra_id_0>")
        assert "<mask>" not in out
        ratio.append(len(out.split()) / len(s.split()))
    # masking keeps length, deletion removes 10%, infilling replaces 10% of words by
    # roughly half as many masks (spans are short in short sentences)
    assert 0.83 < statistics.fmean(ratio) < 0.89


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_prob": 1.5}, "mask_prob must be in"),
        ({"delete_prob": -0.1}, "delete_prob must be in"),
        ({"mask_prob": 0.5, "delete_prob": 0.4, "infill_prob": 0.3}, "sum to 1.200"),
        ({"poisson_lambda": -1.0}, "poisson_lambda"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NoiseConfig(**kwargs)
