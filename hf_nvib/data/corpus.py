"""Bundled corpora: verse-aligned EN↔ES Bible pairs and an out-of-domain English test set.

Why bundled: examples, tests and quick experiments must run offline with no download. The
files are rebuilt by ``scripts/build_corpus.py`` (provenance in ``corpus/README.md``).
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
BIBLE_PATH = CORPUS_DIR / "bible_en_es.jsonl.gz"
OUT_OF_DOMAIN_PATH = CORPUS_DIR / "fortunes_en.txt"

SPLITS = ("train", "validation", "test")
#: Pairs per split of the shipped file (seeded verse-level split, see corpus/README.md).
SPLIT_SIZES = {"train": 28938, "validation": 1000, "test": 1000}
_SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation"}


def normalize_split(split: str) -> str:
    """Map common aliases ("dev", "valid", "val") to the canonical split name."""
    name = _SPLIT_ALIASES.get(split, split)
    if name not in SPLITS:
        raise ValueError(
            f"Unknown split {split!r} for the bundled corpus: expected one of {', '.join(SPLITS)}."
        )
    return name


@lru_cache(maxsize=1)
def _read_bible() -> tuple[tuple[str, str, str, str], ...]:
    if not BIBLE_PATH.exists():
        raise FileNotFoundError(
            f"Bundled corpus missing at {BIBLE_PATH}; reinstall hf_nvib or rebuild it with "
            "`python scripts/build_corpus.py`."
        )
    with gzip.open(BIBLE_PATH, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return tuple((r["id"], r["en"], r["es"], r["split"]) for r in rows)


def load_bundled(split: str = "train", *, limit: int | None = None) -> list[dict[str, str]]:
    """Rows ``{"id", "en", "es"}`` of one split, in canonical (book) order."""
    name = normalize_split(split)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}.")
    out: list[dict[str, str]] = []
    for ref, en, es, row_split in _read_bible():
        if row_split != name:
            continue
        if limit is not None and len(out) >= limit:
            break
        out.append({"id": ref, "en": en, "es": es})
    return out


def load_out_of_domain(*, limit: int | None = None) -> list[str]:
    """Short one-line English fortunes (BSD fortune database): out-of-domain test sentences."""
    lines = [ln for ln in OUT_OF_DOMAIN_PATH.read_text(encoding="utf-8").splitlines() if ln]
    return lines if limit is None else lines[:limit]
