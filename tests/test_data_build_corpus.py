"""scripts/build_corpus.py: cleaning rules, alignment filter, and a byte-exact rebuild."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from hf_nvib.data.corpus import BIBLE_PATH, OUT_OF_DOMAIN_PATH

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_corpus.py"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("build_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clean_verse_strips_markup(build):
    raw = (
        '<title type="x">Heading</title><w savlm="strong:H0430">God</w><w savlm="x">created'
        '</w> <q marker="">“Let <transChange type="added">there</transChange> be '
        'light,”</q> <note type="f">[1:3 a footnote]</note><div eID="g1" type="x-p"/>'
        'Moses,and <l level="1"/>more [NU omits] text .'
    )
    assert build.clean_verse(raw) == "God created “Let there be light,” Moses, and more text."
    assert build.clean_verse("bornSon llamabaSísara") == "born Son llamaba Sísara"


def test_normalise_book(build):
    assert build.normalise_book("I Samuel") == "1 Samuel"
    assert build.normalise_book("III John") == "3 John"
    assert build.normalise_book("Revelation of John") == "Revelation"
    assert build.normalise_book("Isaiah") == "Isaiah"


def test_filter_drops_shifted_run_and_extreme_ratio(build):
    # 10 verses of varied lengths; the Spanish of verses 5-10 is shifted by one verse.
    lengths = [40, 120, 60, 200, 30, 150, 80, 220, 50, 170]
    en = ["e" * n for n in lengths]
    es = ["s" * n for n in lengths]
    es[4:10] = es[3:9]
    pairs = [
        {"id": f"Book 1:{i + 1}", "en": e, "es": s}
        for i, (e, s) in enumerate(zip(en, es, strict=True))
    ]
    # chapter 2 is aligned except verse 4, whose Spanish is 5x shorter (merged verse)
    for i, n in enumerate(lengths):
        pairs.append(
            {"id": f"Book 2:{i + 1}", "en": "x" * n, "es": "y" * (n // 5 if i == 3 else n)}
        )
    kept = {p["id"] for p in build.filter_misaligned(pairs)}
    assert {"Book 1:1", "Book 1:2", "Book 1:3"} <= kept
    assert not {"Book 1:6", "Book 1:7", "Book 1:8", "Book 1:9", "Book 1:10"} & kept
    assert {p for p in kept if p.startswith("Book 2:")} == {f"Book 2:{i}" for i in range(1, 11)} - {
        "Book 2:4"
    }


def test_assign_splits_is_seeded(build):
    pairs = [{"id": str(i)} for i in range(5000)]
    build.assign_splits(pairs)
    first = [p["split"] for p in pairs]
    build.assign_splits(pairs)
    assert first == [p["split"] for p in pairs]
    assert first.count("validation") == 1000 and first.count("test") == 1000


def test_clean_fortune(build):
    assert build.clean_fortune("Look afar and see the end from the beginning.\n") == (
        "Look afar and see the end from the beginning."
    )
    assert (
        build.clean_fortune("A short quip that is long enough.\n\t\t-- Some Author\n")
        == "A short quip that is long enough."
    )
    assert build.clean_fortune("Q: Why?\nA: Because it is long enough to pass.") is None
    assert build.clean_fortune("short.") is None
    assert build.clean_fortune("See http://example.com for the meaning of life.") is None


def _modules_installed() -> bool:
    if shutil.which("diatheke") is None:
        return False
    out = subprocess.run(
        ["diatheke", "-b", "system", "-k", "modulelist"], capture_output=True, text=True
    ).stdout
    fortunes = Path("/usr/share/games/fortunes")
    return (
        "engWEB2015eb" in out
        and "spaRV1909eb" in out
        and all((fortunes / n).exists() for n in ("fortunes", "wisdom", "platitudes"))
    )


@pytest.mark.skipif(
    not _modules_installed(), reason="needs Debian diatheke, sword-text-*, fortunes"
)
def test_rebuild_is_byte_identical(build, tmp_path):
    build.main(["--out-dir", str(tmp_path)])
    for shipped in (BIBLE_PATH, OUT_OF_DOMAIN_PATH):
        rebuilt = tmp_path / shipped.name
        assert (
            hashlib.sha256(rebuilt.read_bytes()).hexdigest()
            == hashlib.sha256(shipped.read_bytes()).hexdigest()
        ), shipped.name
