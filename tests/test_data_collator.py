"""DenoisingCollator: fresh noise per batch, deterministic stream, correct labels/padding."""

from __future__ import annotations

import pytest
import torch

from hf_nvib.data import DenoisingCollator, NoiseConfig, load_bundled, train_bpe_tokenizer


@pytest.fixture(scope="module")
def tok():
    rows = load_bundled("train", limit=2000)
    return train_bpe_tokenizer([r["en"] for r in rows], vocab_size=800)


@pytest.fixture(scope="module")
def features() -> list[dict[str, str]]:
    return [{"target": r["en"], "source": r["en"]} for r in load_bundled("validation", limit=8)]


def test_batch_shapes_labels_and_padding(tok, features):
    collate = DenoisingCollator(tok, noise=NoiseConfig(mask_prob=0.3, delete_prob=0, infill_prob=0))
    batch = collate(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["labels"].shape[0] == len(features)
    for i, f in enumerate(features):
        labels = batch["labels"][i]
        labels = labels[labels != -100].tolist()
        assert labels == tok(text_target=f["target"])["input_ids"]
    # padded label positions are -100, padded inputs are <pad> with mask 0
    assert (batch["labels"] == -100).any()
    pads = batch["attention_mask"] == 0
    assert (batch["input_ids"][pads] == tok.pad_token_id).all()
    n_mask = (batch["input_ids"] == tok.mask_token_id).sum().item()
    n_words = sum(len(f["target"].split()) for f in features)
    assert 0.2 < n_mask / n_words < 0.4


def test_fresh_noise_each_call_and_deterministic_stream(tok, features):
    noise = NoiseConfig(mask_prob=0.15, delete_prob=0.1, infill_prob=0.15)
    a = DenoisingCollator(tok, noise=noise, seed=7)
    b = DenoisingCollator(tok, noise=noise, seed=7)
    c = DenoisingCollator(tok, noise=noise, seed=8)
    first, second = a(features), a(features)
    assert not torch.equal(first["input_ids"], second["input_ids"])  # new epoch, new noise
    assert torch.equal(first["labels"], second["labels"])
    assert torch.equal(b(features)["input_ids"], first["input_ids"])
    assert torch.equal(b(features)["input_ids"], second["input_ids"])
    assert not torch.equal(c(features)["input_ids"], first["input_ids"])


def test_zero_noise_reproduces_target(tok, features):
    batch = DenoisingCollator(tok, noise=NoiseConfig.none(), max_source_length=512)(features)
    for i in range(len(features)):
        ids = batch["input_ids"][i][batch["attention_mask"][i] == 1]
        labels = batch["labels"][i][batch["labels"][i] != -100]
        assert torch.equal(ids, labels)


def test_truncation_and_missing_column(tok, features):
    batch = DenoisingCollator(tok, max_source_length=8, max_target_length=6)(features)
    assert batch["input_ids"].shape[1] <= 8 and batch["labels"].shape[1] <= 6
    with pytest.raises(ValueError, match=r"needs a 'text' text field.*remove_unused_columns"):
        DenoisingCollator(tok, text_column="text")(features)
