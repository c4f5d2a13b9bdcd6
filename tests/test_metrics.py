"""Text metrics, local evaluate modules and NVIB/VAE statistics on hand-computed numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hf_nvib.evaluation import (
    METRIC_MODULES,
    NvibMetricAccumulator,
    active_units,
    bleu_score,
    build_compute_metrics,
    chrf_score,
    exact_match,
    metric_module_path,
    pooled_latent_means,
    reconstruction_metrics,
    rouge_scores,
    text_metrics,
)

# --------------------------------------------------------------------------- text metrics


def test_exact_match_strips_and_counts() -> None:
    preds = ["a b", " c ", "d", "A b"]
    refs = ["a b", "c", "e", "a b"]
    assert exact_match(preds, refs) == pytest.approx(50.0)


def test_bleu_identical_is_100() -> None:
    sents = ["the cat sat on the mat", "a quick brown fox jumps over it"]
    assert bleu_score(sents, sents) == pytest.approx(100.0)


def test_bleu_hand_computed_with_brevity_penalty() -> None:
    # hyp "the cat sat on mat" (5 words) vs ref "the cat sat on the mat" (6 words):
    #   1-grams 5/5, 2-grams 3/4 ("on mat" misses), 3-grams 2/3, 4-grams 1/2.
    # BLEU = BP * exp(mean log p_n), BP = exp(1 - r/c) = exp(1 - 6/5).
    expected = 100 * math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert expected == pytest.approx(57.89, abs=0.01)
    assert bleu_score(["the cat sat on mat"], ["the cat sat on the mat"]) == pytest.approx(
        expected, abs=1e-9
    )


def test_bleu_is_corpus_level() -> None:
    # Counts are pooled before the geometric mean: add "hello world" / "hello world"
    # (1-grams 2/2, 2-grams 1/1, no 3/4-grams): totals 7/7, 4/5, 2/3, 1/2; c = 7, r = 8.
    expected = 100 * math.exp(1 - 8 / 7) * (1 * 4 / 5 * 2 / 3 * 1 / 2) ** 0.25
    got = bleu_score(
        ["the cat sat on mat", "hello world"], ["the cat sat on the mat", "hello world"]
    )
    assert got == pytest.approx(expected, abs=1e-9)


def test_rouge_hand_computed() -> None:
    # "the cat sat" vs "the cat ate fish": unigram overlap 2, P = 2/3, R = 2/4 → F = 4/7;
    # bigrams: "the cat" only, P = 1/2, R = 1/3 → F = 2/5; LCS "the cat" → F = 4/7.
    scores = rouge_scores(["the cat sat"], ["the cat ate fish"])
    assert scores["rouge1"] == pytest.approx(100 * 4 / 7)
    assert scores["rouge2"] == pytest.approx(40.0)
    assert scores["rougeL"] == pytest.approx(100 * 4 / 7)
    # Aggregated as the mean over pairs: an identical pair scores 100.
    mean = rouge_scores(["the cat sat", "x y"], ["the cat ate fish", "x y"])
    assert mean["rouge1"] == pytest.approx((100 * 4 / 7 + 100) / 2)


def test_chrf_identical_and_disjoint() -> None:
    assert chrf_score(["hello world"], ["hello world"]) == pytest.approx(100.0)
    assert chrf_score(["abc"], ["xyz"]) == pytest.approx(0.0)


def test_text_metrics_keys_and_values() -> None:
    preds = ["the cat sat on the mat", "one two three"]
    refs = ["the cat sat on the mat", "one two four"]
    m = text_metrics(preds, refs)
    assert set(m) == {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "gen_len"}
    assert m["exact_match"] == pytest.approx(50.0)
    assert m["gen_len"] == pytest.approx(4.5)
    # rouge1: (1 + 2/3) / 2 → 83.33; rouge2: (1 + 1/2) / 2 → 75.
    assert m["rouge1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert m["rouge2"] == pytest.approx(75.0)


def test_text_metrics_input_errors() -> None:
    with pytest.raises(ValueError, match="references"):
        text_metrics(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no predictions"):
        text_metrics([], [])


# ------------------------------------------------------------------ compute_metrics


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat", "on", "mat", "dog"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def test_build_compute_metrics_handles_tuples_and_minus_100() -> None:
    from transformers import EvalPrediction

    tokenizer = _tiny_tokenizer()
    # ids: <pad>=0 <s>=1 </s>=2 the=4 cat=5 sat=6 on=7 mat=8 dog=9
    generated = np.array(
        [
            [2, 1, 4, 5, 6, 2, -100, -100],  # "the cat sat", padded by Trainer with -100
            [2, 1, 4, 9, 2, 0, 0, -100],  # "the dog"
        ]
    )
    labels = np.array([[4, 5, 6, 2, -100], [4, 5, 2, -100, -100]])  # "the cat sat", "the cat"
    extra = np.zeros((2, 3, 4), dtype=np.float32)  # another model output riding along
    fn = build_compute_metrics(tokenizer, prefix="gen_")
    metrics = fn(EvalPrediction(predictions=(generated, extra), label_ids=labels))
    expected = text_metrics(["the cat sat", "the dog"], ["the cat sat", "the cat"])
    assert metrics["gen_exact_match"] == pytest.approx(50.0)
    for key, value in expected.items():
        assert metrics[f"gen_{key}"] == pytest.approx(value)
    # Non-pad ids per row: 6 and 5 (special tokens count, -100 and pad do not).
    assert metrics["gen_gen_len_tokens"] == pytest.approx(5.5)
    # A plain (predictions, labels) tuple with array predictions works too.
    assert build_compute_metrics(tokenizer)((generated, labels))["exact_match"] == 50.0


# ------------------------------------------------------------- local evaluate modules


def test_metric_module_path() -> None:
    for name in METRIC_MODULES:
        path = metric_module_path(name)
        assert os.path.isfile(os.path.join(path, f"{name}.py"))
    assert metric_module_path("bleu") == metric_module_path("nvib_bleu")
    with pytest.raises(ValueError, match="unknown metric module"):
        metric_module_path("meteor")


_LOAD_SCRIPT = """
import json, sys
import evaluate
from hf_nvib.evaluation import metric_module_path
preds, refs = json.loads(sys.argv[1])
out = {}
for name in ("nvib_bleu", "nvib_chrf", "nvib_rouge", "nvib_exact_match"):
    module = evaluate.load(metric_module_path(name), keep_in_memory=True)
    out.update(module.compute(predictions=preds, references=refs))
print(json.dumps(out))
"""


def test_evaluate_load_offline_matches_text_metrics(tmp_path) -> None:
    preds = ["the cat sat on mat", "hello there world", "x"]
    refs = ["the cat sat on the mat", "hello world", "x"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, json.dumps([preds, refs])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = text_metrics(preds, refs)
    expected.pop("gen_len")
    assert loaded == pytest.approx(expected)
    # evaluate copied the module scripts under the given HF_HOME, not anywhere shared.
    assert any((tmp_path / "hf_home").rglob("nvib_bleu.py"))


# ----------------------------------------------------------------- NVIB / VAE metrics


def test_reconstruction_metrics() -> None:
    m = reconstruction_metrics(total_nll=5 * math.log(10), total_tokens=5)
    assert m["ce"] == pytest.approx(math.log(10))
    assert m["perplexity"] == pytest.approx(10.0)
    assert reconstruction_metrics(1e6, 1)["perplexity"] == math.inf
    with pytest.raises(ValueError):
        reconstruction_metrics(1.0, 0)


def test_active_units_exactly_three_dims_vary() -> None:
    # 4 sentences, P = 5. Per-sentence pooled means (mean over each sentence's slots):
    #   dims 0, 1, 2 vary a lot: unbiased var of [0, 1, 0, 1] = 1/3, of [0, 2, 0, 2] = 4/3.
    #   dim 3 varies a little: [0, .1, 0, .1] → var = 4 * 0.05² / 3 = 0.00333 < 0.01.
    #   dim 4 is constant.
    pooled = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0, 7.0],
            [1.0, 2.0, -1.0, 0.1, 7.0],
            [0.0, 0.0, 0.0, 0.0, 7.0],
            [1.0, 2.0, -1.0, 0.1, 7.0],
        ]
    )
    # Give each sentence a different number of slots that average to its pooled mean:
    # slots m ± d, and slot-level spread must not count (only the pooled mean does).
    sentences = []
    for i, m in enumerate(pooled):
        d = torch.full_like(m, 5.0)
        slots = [m - d, m + d] + [m] * i
        sentences.append(torch.stack(slots))
    assert active_units(sentences) == 3
    assert active_units(sentences, threshold=0.003) == 4
    assert active_units(sentences, threshold=0.4) == 1  # only dim 1 (var 4/3)
    assert active_units(list(pooled)) == 3  # already pooled (P,) inputs


def test_active_units_errors() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        active_units([torch.zeros(3, 4)])
    with pytest.raises(ValueError, match="same latent size"):
        active_units([torch.zeros(3, 4), torch.zeros(3, 5)])
    with pytest.raises(ValueError, match="sentence 1"):
        active_units([torch.zeros(3, 4), torch.zeros(0, 4)])


def test_pooled_latent_means_mask_and_weights() -> None:
    means = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [3.0, 4.0], [float("-inf"), 0.0]]])
    mask = torch.tensor([[0, 1, 1, 0]])
    assert pooled_latent_means(means, mask).tolist() == [[2.0, 2.0]]
    weights = torch.tensor([[0.5, 0.3, 0.1, 0.1]])  # renormalised over the mask: 3/4, 1/4
    assert pooled_latent_means(means, mask, weights)[0].tolist() == pytest.approx([1.5, 1.0])


def _batch1() -> dict:
    means = torch.tensor(
        [
            [[9.0, 9.0], [1.0, 0.0], [3.0, 0.0]],  # pooled over slots 1, 2: (2, 0)
            [[9.0, 9.0], [0.0, 0.0], [float("nan"), 5.0]],  # slot 1 only: (0, 0)
        ]
    )
    return {
        "ce_sum": torch.tensor(6.0),
        "num_tokens": 4,
        "kl_gaussian": torch.tensor([1.0, 3.0]),
        "kl_dirichlet": torch.tensor([2.0, 2.0]),
        "num_kept": torch.tensor([3, 2]),
        "num_valid": torch.tensor([4, 4]),
        "alpha_sum": torch.tensor([10.0, 20.0]),
        "latent_means": means,
        "latent_mask": torch.tensor([[False, True, True], [False, True, False]]),
    }


def _batch2() -> dict:
    return {
        "ce_sum": 2.0,
        "num_tokens": torch.tensor(4),
        "kl_gaussian": torch.tensor([5.0]),
        "kl_dirichlet": torch.tensor([8.0]),
        "num_kept": torch.tensor([1]),
        "num_valid": torch.tensor([2]),
        "alpha_sum": torch.tensor([30.0]),
        # pooled over slots 1, 2: (2, 0.02)
        "latent_means": torch.tensor([[[9.0, 9.0], [4.0, 0.01], [0.0, 0.03]]]),
        "latent_mask": torch.tensor([[0, 1, 1]]),
    }


# ce = 8 / 8; KL_G (1 + 3 + 5) / 3; KL_D (2 + 2 + 8) / 3; kept (3 + 2 + 1) / 3 sequences,
# kept proportion 6 / 10; alpha (10 + 20 + 30) / 3. Pooled means (2, 0), (0, 0), (2, 0.02):
# dim 0 var = ((2/3)² · 2 + (4/3)²) / 2 = 4/3 > 0.01; dim 1 var = 1.33e-4 → AU = 1.
EXPECTED = {
    "ce": 1.0,
    "perplexity": math.e,
    "kl_gaussian": 3.0,
    "kl_dirichlet": 4.0,
    "kept_vectors": 2.0,
    "kept_proportion": 0.6,
    "alpha_sum": 20.0,
    "active_units": 1.0,
}


def test_accumulator_hand_numbers() -> None:
    acc = NvibMetricAccumulator()
    acc.update(**_batch1())
    acc.update(**_batch2())
    assert acc.compute() == pytest.approx(EXPECTED)
    acc.reset()
    assert acc.compute() == {}


def test_accumulator_merge_equals_single_pass() -> None:
    a, b = NvibMetricAccumulator(), NvibMetricAccumulator()
    a.update(**_batch1())
    b.update(**_batch2())
    a.merge(b)
    assert a.compute() == pytest.approx(EXPECTED)


def test_accumulator_partial_inputs_and_skips() -> None:
    acc = NvibMetricAccumulator()
    acc.update(kl_gaussian=torch.tensor([2.0, 4.0]))
    assert acc.compute() == {"kl_gaussian": 3.0}
    acc.update(
        latent_means=torch.ones(2, 2, 3), latent_mask=torch.tensor([[1, 1], [0, 0]])
    )  # second sequence has no selected slot: skipped, and 1 sequence gives no AU yet
    assert acc.skipped_sequences == 1
    assert "active_units" not in acc.compute()
    with pytest.raises(ValueError, match="together"):
        acc.update(ce_sum=1.0)
    with pytest.raises(ValueError, match="together"):
        acc.update(num_kept=torch.tensor([1]))
    with pytest.raises(ValueError, match="without latent_means"):
        acc.update(latent_mask=torch.ones(1, 2))
