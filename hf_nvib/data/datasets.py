"""Task datasets (``source`` → ``target`` text pairs) from the bundled corpus or user data.

Why one entry point: the CLI, examples and benchmarks all need the same pairs, the same
column checks and the same error messages, whatever the data's origin (bundled corpus,
local json/jsonl/csv/parquet/txt files or a Hub dataset).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, load_dataset
from transformers import PreTrainedTokenizerBase

from .corpus import load_bundled
from .noise import NoiseConfig, add_noise, example_rng

TASKS = ("denoise", "translate")
Task = Literal["denoise", "translate"]
_DEFAULT_NOISE = NoiseConfig()

#: File suffix → ``datasets`` builder name.
_BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
}
# Defaults when the user names no column: bundled corpus / user data.
_BUNDLED_DEFAULTS = {"source": "en", "target": "es", "text": "en"}
_USER_DEFAULTS = {"source": "source", "target": "target", "text": "text"}

DataFiles = str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, Any]


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: expected one of {', '.join(map(repr, TASKS))}.")


def _as_paths(files: Any) -> list[Path]:
    if isinstance(files, str | os.PathLike):
        return [Path(files)]
    return [Path(f) for f in files]


def _builder_for(paths: list[Path]) -> str:
    suffixes = set()
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in {".gz", ".bz2", ".xz", ".zst"}:  # data.jsonl.gz → .jsonl
            suffix = Path(path.stem).suffix.lower()
        if suffix not in _BUILDERS:
            raise ValueError(
                f"Cannot tell the format of {path} from its suffix {path.suffix!r}: use one of "
                f"{', '.join(sorted(_BUILDERS))} (optionally compressed)."
            )
        suffixes.add(_BUILDERS[suffix])
    if len(suffixes) > 1:
        raise ValueError(f"data_files mix formats ({', '.join(sorted(suffixes))}); use one format.")
    return suffixes.pop()


def _check_files(paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(
                f"Data file not found: {path}. Pass an existing local .jsonl/.json/.csv/.parquet/"
                "/.txt file, or a Hub dataset with dataset_name=..."
            )
        if path.is_dir():
            raise ValueError(f"Data path {path} is a directory; pass the data file(s) inside it.")
        if not os.access(path, os.R_OK):
            raise ValueError(f"Data file {path} is not readable (check its permissions).")
        if path.stat().st_size == 0:
            raise ValueError(f"Data file {path} is empty: it needs at least one example row.")


def _load_files(data_files: DataFiles, split: str, cache_dir: str | None) -> Dataset:
    """Single file/list → that data whatever ``split`` is; a mapping → its ``split`` entry."""
    if isinstance(data_files, Mapping):
        if split not in data_files:
            raise ValueError(
                f"Split {split!r} not in data_files; available splits: "
                f"{', '.join(map(str, data_files))}. Pass split=... or add a {split!r} entry."
            )
        files: Any = data_files[split]
    else:
        files = data_files
    paths = _as_paths(files)
    if not paths:
        raise ValueError("data_files is empty: pass at least one file path.")
    _check_files(paths)
    builder = _builder_for(paths)
    kwargs: dict[str, Any] = {}
    if builder == "csv" and all(p.suffix.lower() == ".tsv" for p in paths):
        kwargs["sep"] = "\t"
    try:
        ds = load_dataset(
            builder,
            data_files=[str(p) for p in paths],
            split="train",
            cache_dir=cache_dir,
            **kwargs,
        )
    except Exception as err:  # datasets wraps parser errors in several exception types
        raise ValueError(
            f"Could not read {', '.join(map(str, paths))} as {builder}: {err}. Check the file "
            "format (jsonl: one JSON object per line; csv: a header row)."
        ) from err
    if len(ds) == 0:
        raise ValueError(f"Data file(s) {', '.join(map(str, paths))} contain no rows.")
    return ds


def _column(ds: Dataset, name: str, role: str, origin: str) -> list[Any]:
    """Values of column ``name``; ``a.b`` reaches into dict columns (e.g. ``translation.en``)."""
    base, _, key = name.partition(".")
    available = ", ".join(ds.column_names)
    if base not in ds.column_names:
        raise ValueError(
            f"Column {name!r} ({role}) not found in {origin}; available columns: {available}. "
            f"Pass {role}=<one of them>."
        )
    values = ds[base]
    if not key:
        return list(values)
    if not all(isinstance(v, Mapping) and key in v for v in values):
        raise ValueError(
            f"Column {base!r} in {origin} does not hold dicts with key {key!r} for {role}={name!r}."
        )
    return [v[key] for v in values]


def _clean_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def build_task_dataset(
    task: Task,
    split: str = "train",
    *,
    data_files: DataFiles | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    source_column: str | None = None,
    target_column: str | None = None,
    text_column: str | None = None,
    limit: int | None = None,
    noise: NoiseConfig | None = _DEFAULT_NOISE,
    seed: int = 0,
    mask_token: str = "<mask>",
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """A ``datasets.Dataset`` with string columns ``source`` and ``target``.

    Data come from ``data_files`` (local files), ``dataset_name`` (``load_dataset`` on the Hub
    or a local dataset script/dir) or, when neither is given, the bundled EN↔ES corpus.
    ``denoise``: target = text, source = ``add_noise(text)`` with a per-example RNG derived
    from ``seed`` (static noise); ``noise=None`` leaves source == target for on-the-fly noise
    with :class:`~hf_nvib.data.collator.DenoisingCollator`. ``translate``: source → target
    columns (bundled default EN → ES). Rows with a missing/blank side are dropped.
    ``cache_dir`` goes to ``load_dataset`` (default: ``HF_DATASETS_CACHE``).
    """
    _check_task(task)
    if data_files is not None and dataset_name is not None:
        raise ValueError("Pass either data_files (local files) or dataset_name (Hub), not both.")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}.")

    cache = None if cache_dir is None else str(cache_dir)
    defaults = _USER_DEFAULTS
    if data_files is not None:
        ds = _load_files(data_files, split, cache)
        origin = f"data_files {data_files}"
    elif dataset_name is not None:
        ds = load_dataset(dataset_name, dataset_config, split=split, cache_dir=cache)
        origin = f"dataset {dataset_name!r} (split {split!r})"
    else:
        ds = Dataset.from_list(load_bundled(split))
        origin, defaults = f"the bundled corpus (split {split!r})", _BUNDLED_DEFAULTS
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))

    if task == "translate":
        if text_column is not None:
            raise ValueError(
                "text_column is for task='denoise'; for 'translate' pass source_column and "
                "target_column."
            )
        sources = _column(ds, source_column or defaults["source"], "source_column", origin)
        targets = _column(ds, target_column or defaults["target"], "target_column", origin)
    else:
        if source_column is not None or target_column is not None:
            raise ValueError(
                "task='denoise' reads a single text column: pass text_column=..., not "
                "source_column/target_column."
            )
        targets = _column(ds, text_column or defaults["text"], "text_column", origin)
        sources = targets

    pairs = [
        (s, t)
        for s, t in (
            (_clean_text(s), _clean_text(t)) for s, t in zip(sources, targets, strict=True)
        )
        if s is not None and t is not None
    ]
    if not pairs:
        raise ValueError(f"No usable rows in {origin}: every example has an empty text field.")
    src = [s for s, _ in pairs]
    tgt = [t for _, t in pairs]
    if task == "denoise" and noise is not None and not noise.is_identity:
        src = [add_noise(t, noise, example_rng(seed, i), mask_token) for i, t in enumerate(tgt)]
    return Dataset.from_dict({"source": src, "target": tgt})


def tokenize_dataset(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int = 128,
    max_target_length: int = 128,
    *,
    keep_text: bool = False,
) -> Dataset:
    """Add ``input_ids``/``attention_mask``/``labels`` (truncated); drops the text columns
    unless ``keep_text`` (they would break ``DataCollatorForSeq2Seq``)."""
    for col in ("source", "target"):
        if col not in ds.column_names:
            raise ValueError(
                f"tokenize_dataset needs a {col!r} column (from build_task_dataset); "
                f"got {', '.join(ds.column_names)}."
            )

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        enc = tokenizer(batch["source"], max_length=max_source_length, truncation=True)
        labels = tokenizer(
            text_target=batch["target"], max_length=max_target_length, truncation=True
        )
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": labels["input_ids"],
        }

    remove = [] if keep_text else ["source", "target"]
    return ds.map(encode, batched=True, remove_columns=remove, desc="Tokenizing")
