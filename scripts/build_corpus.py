#!/usr/bin/env python3
"""Rebuild the corpora shipped in ``hf_nvib/data/corpus/`` from Debian packages.

Why a script: the shipped files are derived data; anyone must be able to regenerate them
byte-for-byte from public-domain / BSD sources without network access beyond Debian apt.

Requirements (Debian bookworm)::

    apt-get install sword-text-web sword-text-sparv diatheke fortunes-min fortunes

Usage::

    python scripts/build_corpus.py            # writes into hf_nvib/data/corpus/
    python scripts/build_corpus.py --out-dir /tmp/corpus

Outputs:

* ``bible_en_es.jsonl.gz`` -- verse-aligned World English Bible (``engWEB2015eb``) and
  Reina-Valera 1909 (``spaRV1909eb``) pairs, one JSON object per line with ``id``
  ("Book chapter:verse"), ``en``, ``es``, ``split``; canonical book order.
* ``fortunes_en.txt`` -- short one-line English fortunes for out-of-domain evaluation.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

EN_MODULE = "engWEB2015eb"
ES_MODULE = "spaRV1909eb"
# Old and New Testament are queried separately: a single Gen–Rev range would pull in the
# deuterocanon of the WEB module, which the Reina-Valera 1909 does not have.
RANGES = ("Gen 1:1 - Mal 4:6", "Matt 1:1 - Rev 22:21")
# Alignment filter (see filter_misaligned): |log(len_en / len_es)| thresholds.
WINDOW = 3
SHIFT_MIN_COST = 0.3
SHIFT_MARGIN = 0.1
MAX_LOG_RATIO = 0.8
SPLIT_SEED = 1909
NUM_VALIDATION = 1000
NUM_TEST = 1000

FORTUNE_DIR = Path("/usr/share/games/fortunes")
# fortunes-min ships "fortunes"; the others come from the "fortunes" package. Files with
# offensive, ethnic or dated topical humour are deliberately left out.
FORTUNE_FILES = ("fortunes", "wisdom", "platitudes", "science", "education", "work")
FORTUNE_SEED = 1991
NUM_FORTUNES = 400
FORTUNE_MIN_CHARS = 25
FORTUNE_MAX_CHARS = 140

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "hf_nvib" / "data" / "corpus"

_KEY = re.compile(r"^(.*?)((?:I{1,3} )?[A-Z][A-Za-z]+(?: [A-Za-z]+)*) (\d+):(\d+): (.*)$")
_ROMAN = {"I ": "1 ", "II ": "2 ", "III ": "3 "}
_BOOK_RENAMES = {"Revelation of John": "Revelation"}
# Elements whose *content* is not verse text: headings, notes, speaker labels.
_DROP_ELEMENTS = re.compile(
    r"<(title|note|speaker)\b[^>]*?(?<!/)>.*?</\1>|<(?:title|note|speaker)\b[^>]*/>", re.S
)
# Structural tags separate words; inline tags (w, q, transChange, seg, name...) do not.
_BREAK_TAGS = re.compile(r"</?(?:l|lb|lg|div|p|milestone|chapter|item|list)\b[^>]*>")
_ANY_TAG = re.compile(r"<[^>]*>")
# After the last verse of a book the WEB appends back matter (a glossary) on the same line.
_BOOK_END = re.compile(r'<div\b[^>]*\beID="[^"]*"[^>]*type="book"[^>]*/>')
_PSALM_TITLE = re.compile(r'<title\b[^>]*type="psalm"[^>]*>(.*?)</title>', re.S)
# RV 1909 appends the traditional subscriptions to the epistles ("Escrita de Roma ...").
_COLOPHON = re.compile(r"(Amén\.)\s+[^.]*?\b(?:[Ee]scrita|[Ee]nviada)\b.*$")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?’”)])")


def run_diatheke(module: str, key: str) -> str:
    """Raw (OSIS) output of one range query; notes are off by default in diatheke."""
    if shutil.which("diatheke") is None:
        sys.exit("diatheke not found: apt-get install diatheke sword-text-web sword-text-sparv")
    proc = subprocess.run(
        ["diatheke", "-b", module, "-k", key], capture_output=True, text=True, check=True
    )
    if not proc.stdout.strip() or proc.stdout.strip() == f"({module})":
        sys.exit(f"module {module} returned nothing: is its sword-text-* package installed?")
    return proc.stdout


def clean_verse(raw: str) -> str:
    """Strip OSIS markup, headings and footnotes; normalise whitespace."""
    text = raw.replace("</w><w", "</w> <w")  # WEB glues some words: "God</w><w>created"
    text = _DROP_ELEMENTS.sub(" ", text)
    text = _BREAK_TAGS.sub(" ", text)
    text = _ANY_TAG.sub("", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # bracketed editorial/footnote remarks
    text = text.replace("\u00a0", " ")
    # Both modules glue a few words together ("Moses,and", "bornSon", "llamabaSísara").
    text = re.sub(r"([,;:])(?=[^\W\d_])", r"\1 ", text)
    text = re.sub(r"(?<=[a-zà-ÿ])(?=[A-ZÁÉÍÓÑÚ])", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def normalise_book(name: str) -> str:
    for roman, arabic in _ROMAN.items():
        if name.startswith(roman):
            name = arabic + name[len(roman) :]
            break
    return _BOOK_RENAMES.get(name, name)


def parse_module(module: str) -> dict[str, str]:
    """Map "Book c:v" -> cleaned text, in canonical order (dicts keep insertion order)."""
    verses: dict[str, str] = {}
    for key in RANGES:
        for line in run_diatheke(module, key).splitlines():
            if not line.strip() or line.strip() == f"({module})":
                continue
            m = _KEY.match(line)
            if m is None:
                raise RuntimeError(f"{module}: cannot parse line {line[:80]!r}")
            ref = f"{normalise_book(m.group(2))} {m.group(3)}:{m.group(4)}"
            text = clean_verse(_BOOK_END.split(m.group(5))[0])
            # group(1) holds pre-verse material (headings, paragraph markers), dropped except
            # canonical psalm superscriptions: the RV 1909 prints them inside verse 1, so the
            # English side needs them too to stay aligned. diatheke repeats stale headings
            # before later verses, hence only verse 1.
            title = _PSALM_TITLE.search(m.group(1))
            if title and ref.startswith("Psalms ") and ref.endswith(":1"):
                text = f"{clean_verse(title.group(1))} {text}".strip()
            verses[ref] = text
    return verses


def align(en: dict[str, str], es: dict[str, str]) -> list[dict[str, str]]:
    """Pair verses sharing a reference; drop empty verses (merged/omitted in one version)."""
    pairs = []
    for ref, en_text in en.items():
        es_text = _COLOPHON.sub(r"\1", es.get(ref, ""))
        if en_text and es_text:
            pairs.append({"id": ref, "en": en_text, "es": es_text})
    return pairs


def _log_ratio(a: str, b: str) -> float:
    return abs(math.log(len(a) / len(b)))


def filter_misaligned(pairs: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop verse pairs whose texts do not correspond.

    The WEB module uses NRSVA versification and the RV 1909 KJV, so a few chapters
    (e.g. Numbers 13, 1 Samuel 24, Jonah 2) are offset by a verse, and some verses are merged
    in one version. Character-length ratios expose both: a pair is dropped when, within a
    window of +-WINDOW verses of its chapter, pairing each Spanish verse with the previous
    or next English verse fits clearly better than the same reference, or when its own
    length ratio is extreme.
    """
    chapters: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        chapters.setdefault(p["id"].rsplit(":", 1)[0], []).append(i)
    drop: set[int] = set()
    for idx in chapters.values():
        n = len(idx)
        en = [pairs[i]["en"] for i in idx]
        es = [pairs[i]["es"] for i in idx]

        def cost(shift: int, lo: int, hi: int, en=en, es=es, n=n) -> float:
            vals = [_log_ratio(en[j + shift], es[j]) for j in range(lo, hi) if 0 <= j + shift < n]
            return sum(vals) / len(vals) if vals else math.inf

        for k in range(n):
            lo, hi = max(0, k - WINDOW), min(n, k + WINDOW + 1)
            same = cost(0, lo, hi)
            shifted = min(cost(-1, lo, hi), cost(1, lo, hi))
            if same > SHIFT_MIN_COST and same > shifted + SHIFT_MARGIN:
                drop.add(idx[k])
            if _log_ratio(en[k], es[k]) > MAX_LOG_RATIO:
                drop.add(idx[k])
    return [p for i, p in enumerate(pairs) if i not in drop]


def assign_splits(pairs: list[dict[str, str]]) -> None:
    """Seeded random verse-level split: NUM_VALIDATION / NUM_TEST held out, rest train."""
    order = list(range(len(pairs)))
    random.Random(SPLIT_SEED).shuffle(order)
    for rank, idx in enumerate(order):
        if rank < NUM_VALIDATION:
            split = "validation"
        elif rank < NUM_VALIDATION + NUM_TEST:
            split = "test"
        else:
            split = "train"
        pairs[idx]["split"] = split


def write_jsonl_gz(path: Path, rows: list[dict[str, str]]) -> None:
    """mtime=0 and a fixed filename in the header keep the archive byte-reproducible."""
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(payload)


def read_fortunes(name: str) -> list[str]:
    path = FORTUNE_DIR / name
    if not path.exists():
        sys.exit(f"{path} missing: apt-get install fortunes-min fortunes")
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.split("\n%\n")


def clean_fortune(block: str) -> str | None:
    """Keep short prose fortunes: no dialogue, lists, attributions, verse or ASCII art."""
    lines = [ln for ln in block.strip("%\n").splitlines() if ln.strip()]
    if not lines or len(lines) > 3:
        return None
    if any(re.match(r"^\s*(--|-- |~)", ln) for ln in lines[1:]):
        lines = [ln for ln in lines if not re.match(r"^\s*(--|~)", ln)]  # drop attribution
    if any(re.match(r"^\s*([A-Za-z]+:|\d+[.)]|[-*] )", ln) for ln in lines):
        return None  # "Q:", "A:", speaker labels, lists
    text = re.sub(r"\s+", " ", " ".join(ln.strip() for ln in lines)).strip()
    if not (FORTUNE_MIN_CHARS <= len(text) <= FORTUNE_MAX_CHARS):
        return None
    if not text.isascii() or re.search(r"[<>{}\[\]|_\\/#@=^`~]|http|www\.", text):
        return None
    if text[-1] not in ".!?\"'" or not text[0].isupper():
        return None
    return text


def build_fortunes() -> list[str]:
    seen: set[str] = set()
    cands: list[str] = []
    for name in FORTUNE_FILES:
        for block in read_fortunes(name):
            text = clean_fortune(block)
            if text is not None and text.lower() not in seen:
                seen.add(text.lower())
                cands.append(text)
    random.Random(FORTUNE_SEED).shuffle(cands)
    return cands[:NUM_FORTUNES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--skip-fortunes", action="store_true")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    en, es = parse_module(EN_MODULE), parse_module(ES_MODULE)
    aligned = align(en, es)
    pairs = filter_misaligned(aligned)
    assign_splits(pairs)
    bible = args.out_dir / "bible_en_es.jsonl.gz"
    write_jsonl_gz(bible, pairs)
    counts = Counter(p["split"] for p in pairs)
    print(
        f"{EN_MODULE}: {len(en)} verses, {ES_MODULE}: {len(es)} verses, {len(aligned)} "
        f"aligned, {len(aligned) - len(pairs)} dropped as misaligned, {len(pairs)} pairs "
        f"{dict(counts)} -> {bible} ({bible.stat().st_size / 1e6:.2f} MB)"
    )

    if not args.skip_fortunes:
        fortunes = build_fortunes()
        out = args.out_dir / "fortunes_en.txt"
        out.write_text("".join(f + "\n" for f in fortunes), encoding="utf-8")
        print(f"fortunes: {len(fortunes)} lines -> {out}")


if __name__ == "__main__":
    main()
