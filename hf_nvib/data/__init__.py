"""Data: bundled EN↔ES corpus, BART-style noise, task datasets, tokenizers, collator."""

from .collator import DenoisingCollator
from .corpus import (
    BIBLE_PATH,
    CORPUS_DIR,
    OUT_OF_DOMAIN_PATH,
    SPLIT_SIZES,
    SPLITS,
    load_bundled,
    load_out_of_domain,
)
from .datasets import TASKS, build_task_dataset, tokenize_dataset
from .noise import NoiseConfig, add_noise, example_rng
from .tokenizer import BART_SPECIAL_TOKENS, resolve_tokenizer, train_bpe_tokenizer

__all__ = [
    "BART_SPECIAL_TOKENS",
    "BIBLE_PATH",
    "CORPUS_DIR",
    "OUT_OF_DOMAIN_PATH",
    "SPLITS",
    "SPLIT_SIZES",
    "TASKS",
    "DenoisingCollator",
    "NoiseConfig",
    "add_noise",
    "build_task_dataset",
    "example_rng",
    "load_bundled",
    "load_out_of_domain",
    "resolve_tokenizer",
    "tokenize_dataset",
    "train_bpe_tokenizer",
]
