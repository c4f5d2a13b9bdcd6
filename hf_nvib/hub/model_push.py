"""`model.push_to_hub` and `Trainer` pushes that publish the NVIB model card.

transformers' own `push_to_hub` writes a generic card (`library_name: transformers`) and the
Trainer writes its own summary; these helpers route both through `hf_nvib.hub.card` instead
(`hf_nvib.models.hub_mixin.NvibPushToHubMixin` and `NvibSeq2SeqTrainer.create_model_card`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hf_nvib.hub.card import NvibModelCardData, _read_json, find_plots, render_model_card
from hf_nvib.hub.push import PushResult, push_run


def push_model(
    model: Any,
    repo_id: str,
    *,
    tokenizer: Any = None,
    metrics: dict[str, Any] | None = None,
    run_config: dict[str, Any] | None = None,
    commit_message: str | None = None,
    max_shard_size: int | str | None = "50GB",
    **push_kwargs: Any,
) -> PushResult:
    """Save `model` (+ tokenizer, metrics) to a temporary run dir and `push_run` it."""
    with tempfile.TemporaryDirectory(prefix="hf_nvib_push_") as tmp:
        run_dir = Path(tmp)
        # safetensors: the v5 default and only format
        model.save_pretrained(run_dir, max_shard_size=max_shard_size)
        if tokenizer is not None:
            tokenizer.save_pretrained(run_dir)
        if metrics:
            (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if run_config:
            (run_dir / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str))
        return push_run(
            run_dir,
            repo_id,
            commit_message=commit_message or "Upload NVIB model with hf-nvib",
            **push_kwargs,
        )


def push_model_to_hub(
    model: Any,
    repo_id: str,
    *,
    tags: list[str] | str | None = None,
    card_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """`NvibPushToHubMixin.push_to_hub`: transformers' keywords (`commit_message`,
    `commit_description`, `private`, `token`, `revision`, `create_pr`, `max_shard_size`,
    `tags`) plus `push_model`'s; returns the `CommitInfo`, as transformers does."""
    card_kwargs = dict(card_kwargs or {})
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    tags += [t for t in getattr(model, "model_tags", None) or [] if t not in tags]
    if tags:
        card_kwargs["tags"] = [*card_kwargs.get("tags", []), *tags]
    return push_model(model, repo_id, card_kwargs=card_kwargs, **kwargs).commit_info


def _unwrap(model: Any) -> Any:
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def write_trainer_model_card(
    trainer: Any,
    *,
    repo_id: str | None = None,
    metrics: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Path:
    """Write the NVIB card as `<output_dir>/README.md` (call from `Trainer.create_model_card`).

    Metrics: `metrics` if given, else `<output_dir>/metrics.json`, else the last eval log entry.
    """
    out = Path(trainer.args.output_dir)
    if metrics is None:
        metrics = _read_json(out / "metrics.json")
    if not metrics:
        evals = [e for e in trainer.state.log_history if any(k.startswith("eval_") for k in e)]
        metrics = dict(evals[-1]) if evals else {}
    repo_id = (
        repo_id or getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id or out.name
    )
    plots = {name: str(path.relative_to(out)) for name, path in find_plots(out).items()}
    for key in ("model_name", "language", "license", "tags", "finetuned_from", "tasks",
                "dataset_tags", "dataset", "dataset_args"):  # fmt: skip
        value = kwargs.pop(key, None)  # Trainer.create_model_card keywords
        if key == "finetuned_from" and value:
            kwargs.setdefault("base_model", value)
        elif key in ("language", "license", "tags") and value:
            kwargs.setdefault(key, value)
        elif key == "dataset" and value:
            kwargs.setdefault("datasets", value)
    card_data = NvibModelCardData.from_config(
        _unwrap(trainer.model).config.to_dict(),
        repo_id=repo_id,
        metrics=metrics,
        run_config=trainer.args.to_dict(),
        trainer_state={"global_step": trainer.state.global_step},
        plots=plots,
        **kwargs,
    )
    path = out / "README.md"
    render_model_card(card_data).save(path)
    return path
