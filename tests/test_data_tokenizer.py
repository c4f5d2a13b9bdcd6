"""Byte-level BPE trained from scratch: speed, BART special tokens, offline round trip."""

from __future__ import annotations

import time

import pytest
import torch
from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

from hf_nvib.data import load_bundled, resolve_tokenizer, train_bpe_tokenizer

SPANISH = "¿Dónde está el niño? Él comió piñas, ñandú y acción: «ÁÉÍÓÚÜ» — ¡sí!"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rows = load_bundled("train", limit=8000)
    return [r[lang] for r in rows for lang in ("en", "es")]


@pytest.fixture(scope="module")
def tok(texts):
    return train_bpe_tokenizer(texts, vocab_size=2000)


def test_trains_fast_to_requested_size(texts):
    start = time.perf_counter()
    tokenizer = train_bpe_tokenizer(texts, vocab_size=2000)
    assert time.perf_counter() - start < 10.0
    assert len(tokenizer) == 2000


def test_bart_special_tokens(tok):
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id] == [0, 1, 2]
    assert [tok.unk_token_id, tok.mask_token_id] == [3, 4]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    ids = tok("Jesus wept.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    # <mask> absorbs the space before it, like BART's tokenizer
    assert tok.convert_ids_to_tokens(tok("the <mask> wept")["input_ids"])[1:3] == ["the", "<mask>"]
    batch = tok(["a", "a b c d"], padding=True)
    assert batch["input_ids"][0][-1] == 1 and batch["attention_mask"][0][-1] == 0


def test_spanish_accents_round_trip(tok):
    ids = tok(SPANISH)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == SPANISH
    # the corpus is mostly learned: a Spanish verse needs far fewer tokens than bytes
    verse = "Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito"
    assert len(tok(verse)["input_ids"]) < len(verse.encode("utf-8")) / 2.5


def test_save_and_autotokenizer_round_trip_offline(tok, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == len(tok)
    assert loaded.mask_token == "<mask>" and loaded.mask_token_id == 4
    assert loaded.pad_token_id == 1 and loaded.bos_token_id == 0 and loaded.eos_token_id == 2
    for text in (SPANISH, "In the beginning, God created the heavens and the earth."):
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
        assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text
    assert resolve_tokenizer(str(tmp_path))("hola")["input_ids"] == tok("hola")["input_ids"]


def test_tiny_bart_consumes_it(tok):
    config = BartConfig(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = BartForConditionalGeneration(config)
    enc = tok(["Jesus wept."], text_target=["Y lloró Jesús."], return_tensors="pt")
    out = model(**enc)
    assert torch.isfinite(out.loss)
    assert out.logits.shape == (1, enc["labels"].shape[1], len(tok))


def test_errors():
    with pytest.raises(ValueError, match="too small"):
        train_bpe_tokenizer(["a b c"], vocab_size=100)
    with pytest.raises(ValueError, match="no non-empty texts"):
        train_bpe_tokenizer(["", "  "], vocab_size=300)
    with pytest.raises(ValueError, match=r"model_name_or_path.*or texts"):
        resolve_tokenizer()
    fresh = resolve_tokenizer(texts=["hola mundo"] * 5, vocab_size=300)
    assert fresh.mask_token_id == 4
