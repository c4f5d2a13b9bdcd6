"""Task datasets: bundled corpus, local jsonl/csv/parquet/txt with custom columns, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_nvib.data import (
    NoiseConfig,
    build_task_dataset,
    load_bundled,
    tokenize_dataset,
    train_bpe_tokenizer,
)


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf_datasets"


PAIRS = [
    {"src_text": "Hello world.", "tgt_text": "Hola mundo.", "extra": 1},
    {"src_text": "Good morning.", "tgt_text": "Buenos días.", "extra": 2},
    {"src_text": "", "tgt_text": "vacío", "extra": 3},  # dropped: empty side
    {"src_text": "Thank you.", "tgt_text": "Gracias.", "extra": 4},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_bundled_translate_and_denoise():
    ds = build_task_dataset("translate", "validation", limit=50)
    ref = load_bundled("validation", limit=50)
    assert ds.column_names == ["source", "target"]
    assert len(ds) == 50
    assert ds["source"] == [r["en"] for r in ref]
    assert ds["target"] == [r["es"] for r in ref]

    den = build_task_dataset("denoise", "validation", limit=300, seed=0)
    assert den["target"] == [r["en"] for r in load_bundled("validation", limit=300)]
    n_changed = sum(s != t for s, t in zip(den["source"], den["target"], strict=True))
    assert n_changed > 250
    assert sum("<mask>" in s for s in den["source"]) > 250
    # deterministic per seed, different across seeds
    assert build_task_dataset("denoise", "validation", limit=300, seed=0)["source"] == den["source"]
    other = build_task_dataset("denoise", "validation", limit=300, seed=1)["source"]
    assert sum(a != b for a, b in zip(other, den["source"], strict=True)) > 250
    # per-example RNG: a prefix of the data noises identically whatever the limit
    assert build_task_dataset("denoise", "validation", limit=20)["source"] == den["source"][:20]
    # noise=None / zero noise leaves source == target (for on-the-fly noising)
    for noise in (None, NoiseConfig.none()):
        clean = build_task_dataset("denoise", "validation", limit=20, noise=noise)
        assert clean["source"] == clean["target"]
    es = build_task_dataset("denoise", "test", limit=5, text_column="es", noise=None)
    assert es["target"] == [r["es"] for r in load_bundled("test", limit=5)]


def test_jsonl_custom_columns(tmp_path, cache):
    path = _write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    ds = build_task_dataset(
        "translate",
        data_files=path,
        source_column="src_text",
        target_column="tgt_text",
        cache_dir=cache,
    )
    assert ds["source"] == ["Hello world.", "Good morning.", "Thank you."]
    assert ds["target"] == ["Hola mundo.", "Buenos días.", "Gracias."]
    den = build_task_dataset(
        "denoise", data_files=str(path), text_column="tgt_text", noise=None, cache_dir=cache
    )
    assert den["target"] == ["Hola mundo.", "Buenos días.", "vacío", "Gracias."]
    one = build_task_dataset(
        "translate",
        data_files=[path],
        source_column="src_text",
        target_column="tgt_text",
        limit=1,
        cache_dir=cache,
    )
    assert len(one) == 1


def test_csv_tsv_parquet_txt_and_split_mapping(tmp_path, cache):
    import pandas as pd

    frame = pd.DataFrame({"sentence": ["One two three.", "Four five six."], "x": [1, 2]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    frame.to_parquet(tmp_path / "d.parquet")
    (tmp_path / "d.txt").write_text("One two three.\n\nFour five six.\n", "utf-8")
    for name in ("d.csv", "d.tsv", "d.parquet"):
        ds = build_task_dataset(
            "denoise",
            data_files=tmp_path / name,
            text_column="sentence",
            noise=None,
            cache_dir=cache,
        )
        assert ds["target"] == ["One two three.", "Four five six."], name
    txt = build_task_dataset("denoise", data_files=tmp_path / "d.txt", cache_dir=cache)
    assert txt["target"] == ["One two three.", "Four five six."]  # default column "text"

    _write_jsonl(tmp_path / "val.jsonl", [{"source": "a b", "target": "c d"}])
    files = {"train": str(tmp_path / "d.csv"), "validation": str(tmp_path / "val.jsonl")}
    val = build_task_dataset("translate", "validation", data_files=files, cache_dir=cache)
    assert val[0] == {"source": "a b", "target": "c d"}  # default columns source/target
    with pytest.raises(ValueError, match=r"Split 'test' not in data_files.*train, validation"):
        build_task_dataset("translate", "test", data_files=files, cache_dir=cache)


def test_nested_translation_column(tmp_path, cache):
    rows = [
        {"translation": {"en": "Yes.", "es": "Sí."}},
        {"translation": {"en": "No.", "es": "No."}},
    ]
    path = _write_jsonl(tmp_path / "wmt.jsonl", rows)
    ds = build_task_dataset(
        "translate",
        data_files=path,
        source_column="translation.en",
        target_column="translation.es",
        cache_dir=cache,
    )
    assert ds["source"] == ["Yes.", "No."] and ds["target"] == ["Sí.", "No."]
    with pytest.raises(ValueError, match="does not hold dicts with key 'fr'"):
        build_task_dataset(
            "translate",
            data_files=path,
            source_column="translation.fr",
            target_column="translation.es",
            cache_dir=cache,
        )


def test_missing_column_lists_available(tmp_path, cache):
    path = _write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    with pytest.raises(ValueError) as err:
        build_task_dataset(
            "translate",
            data_files=path,
            source_column="english",
            target_column="tgt_text",
            cache_dir=cache,
        )
    msg = str(err.value)
    assert "'english'" in msg and "source_column" in msg
    assert "available columns: src_text, tgt_text, extra" in msg
    with pytest.raises(ValueError, match=r"Column 'text' \(text_column\) not found"):
        build_task_dataset("denoise", data_files=path, cache_dir=cache)
    with pytest.raises(ValueError, match=r"Column 'target' \(target_column\).*available"):
        build_task_dataset("translate", data_files=path, source_column="src_text", cache_dir=cache)


def test_file_errors(tmp_path, cache):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=r"Data file not found: .*nope\.jsonl"):
        build_task_dataset("translate", data_files=missing, cache_dir=cache)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.jsonl is empty"):
        build_task_dataset("translate", data_files=empty, cache_dir=cache)
    blank = _write_jsonl(tmp_path / "blank.jsonl", [{"text": " "}, {"text": None}])
    with pytest.raises(ValueError, match="No usable rows"):
        build_task_dataset("denoise", data_files=blank, cache_dir=cache)
    with pytest.raises(ValueError, match="is a directory"):
        build_task_dataset("denoise", data_files=tmp_path, cache_dir=cache)
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    with pytest.raises(ValueError, match=r"Cannot tell the format.*\.csv"):
        build_task_dataset("denoise", data_files=odd, cache_dir=cache)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match=r"Could not read .*broken\.jsonl as json"):
        build_task_dataset("denoise", data_files=broken, cache_dir=cache)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown task 'summarize'.*'denoise', 'translate'"):
        build_task_dataset("summarize")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        build_task_dataset("denoise", data_files="a.jsonl", dataset_name="x/y")
    with pytest.raises(ValueError, match="text_column is for task='denoise'"):
        build_task_dataset("translate", "test", text_column="en")
    with pytest.raises(ValueError, match="single text column"):
        build_task_dataset("denoise", "test", source_column="en")
    with pytest.raises(ValueError, match="Unknown split"):
        build_task_dataset("translate", "holdout")


def test_tokenize_dataset_truncates_and_labels():
    ds = build_task_dataset("translate", "validation", limit=64)
    tok = train_bpe_tokenizer([*ds["source"], *ds["target"]], vocab_size=400, min_frequency=1)
    enc = tokenize_dataset(ds, tok, max_source_length=16, max_target_length=12)
    assert set(enc.column_names) == {"input_ids", "attention_mask", "labels"}
    assert max(len(x) for x in enc["input_ids"]) == 16
    assert max(len(x) for x in enc["labels"]) == 12
    row = enc[0]
    assert row["input_ids"][0] == tok.bos_token_id
    assert row["labels"][-1] == tok.eos_token_id
    short = next(i for i, s in enumerate(ds["target"]) if len(tok(s)["input_ids"]) <= 12)
    assert tok.decode(enc[short]["labels"], skip_special_tokens=True) == ds["target"][short]
    kept = tokenize_dataset(ds, tok, 16, 12, keep_text=True)
    assert {"source", "target"} <= set(kept.column_names)
    with pytest.raises(ValueError, match="needs a 'source' column"):
        tokenize_dataset(ds.rename_column("source", "src"), tok)
