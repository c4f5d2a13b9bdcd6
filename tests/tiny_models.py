"""Tiny random plain BART/T5 checkpoints with a word-level tokenizer, built locally (no Hub).

Other test files reuse these: ``make_tiny_bart(tmp_path) -> Path`` writes a checkpoint directory
that ``from_pretrained`` (NVIB or plain classes) and ``AutoTokenizer`` can read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

WORDS = tuple(
    " ".join(
        [
            "the a cat dog bird sat ran flew on under over mat log tree red blue green big",
            "small quick slow fox jumps lazy river house car road sun moon star night day",
            "rain snow walks sings eats sleeps and or but not very too",
        ]
    ).split(" ")
)

SENTENCES = [
    "the cat sat on the mat",
    "a quick red fox jumps over the lazy dog",
    "the bird flew over the tree",
    "a small blue car",
    "the sun and the moon",
    "big dog sleeps under a green tree and the cat sings",
    "rain",
    "the lazy fox walks on the road at night",
]

BART_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, as BART's
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0..2, as T5's


def _tokenizer(specials: list[str], *, bos: str | None, eos: str) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS])}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    single = f"{bos} $A {eos}" if bos else f"$A {eos}"
    pair = f"{bos} $A {eos} $B {eos}" if bos else f"$A {eos} $B {eos}"
    special_ids = [(t, vocab[t]) for t in (bos, eos) if t]
    backend.post_processor = TemplateProcessing(
        single=single, pair=pair, special_tokens=special_ids
    )
    kwargs: dict[str, Any] = {"pad_token": "<pad>", "eos_token": eos, "unk_token": "<unk>"}
    if bos:
        kwargs["bos_token"] = bos
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


def tiny_bart_tokenizer() -> PreTrainedTokenizerFast:
    return _tokenizer(BART_SPECIALS, bos="<s>", eos="</s>")


def tiny_t5_tokenizer() -> PreTrainedTokenizerFast:
    return _tokenizer(T5_SPECIALS, bos=None, eos="</s>")


def tiny_bart_config(**overrides: Any) -> BartConfig:
    """2+2 layers, d_model 32, 4 heads (head dim 8); larger init std for non-flat logits."""
    values: dict[str, Any] = {
        "vocab_size": len(BART_SPECIALS) + len(WORDS),
        "d_model": 32,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 64,
        "init_std": 0.2,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "decoder_start_token_id": 2,
        "forced_eos_token_id": None,
    }
    values.update(overrides)
    return BartConfig(**values)


def tiny_t5_config(**overrides: Any) -> T5Config:
    values: dict[str, Any] = {
        "vocab_size": len(T5_SPECIALS) + len(WORDS),
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 16,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }
    values.update(overrides)
    return T5Config(**values)


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_bart(
    tmp_path: Path, name: str = "tiny-bart", seed: int = 0, **overrides: Any
) -> Path:
    """Save a random tiny ``BartForConditionalGeneration`` + tokenizer; return the directory."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BartForConditionalGeneration(tiny_bart_config(**overrides))
    return _save(model, tiny_bart_tokenizer(), Path(tmp_path) / name)


def make_tiny_t5(tmp_path: Path, name: str = "tiny-t5", seed: int = 1, **overrides: Any) -> Path:
    """Save a random tiny ``T5ForConditionalGeneration`` + tokenizer; return the directory."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(tiny_t5_config(**overrides))
    return _save(model, tiny_t5_tokenizer(), Path(tmp_path) / name)


def batch(tokenizer: PreTrainedTokenizerFast, sentences: list[str] | None = None) -> dict:
    """Padded encoder inputs (with attention_mask) for ``sentences`` (default: all)."""
    return dict(tokenizer(sentences or SENTENCES, return_tensors="pt", padding=True))
