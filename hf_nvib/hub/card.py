"""Model cards for NVIB checkpoints: card data from a run directory, rendered from a template.

Follows sentence-transformers' pattern: a `ModelCardData` subclass holds both the YAML metadata
(library, tags, base model, datasets, `model-index`) and template-only context (hyper-parameters,
schedule, results, plots), and `ModelCard.from_template` renders `model_cards/*.md` (jinja).
Everything that reaches the card goes through `scrub` first: no tokens, no local paths.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_nvib.hub.scrub import known_secrets, scrub_text, scrub_value

TEMPLATE_NAME = "nvib_model_card.md"
LIBRARY_NAME = "hf-nvib"
PIPELINE_TAG = "text2text-generation"
BASE_TAGS = ("nvib", "variational-bottleneck", "text2text-generation")
RUN_CONFIG_NAMES = ("run_config.json", "training_args.json")
PLOTS_DIR_IN_REPO = "plots"
# Training settings shown in the card when a run config has them (others are left out: noise).
TRAINING_KEYS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "warmup_ratio", "lr_scheduler_type",
    "weight_decay", "optim", "seed", "fp16", "bf16", "label_smoothing_factor",
)  # fmt: skip
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def template_dir() -> Path:
    """The card templates: `hf_nvib/hub/model_cards` links to the repository's `model_cards/`
    and is copied into wheels as package data."""
    directory = Path(__file__).resolve().parent / "model_cards"
    if not (directory / TEMPLATE_NAME).is_file():
        raise FileNotFoundError(
            f"model card template {TEMPLATE_NAME} not found in {directory.name}/: reinstall hf-nvib"
        )
    return directory


def template_path(name: str = TEMPLATE_NAME) -> Path:
    return template_dir() / name


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (possibly nested) metrics dict, keys joined with '/'."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, prefix=f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = value
    return flat


def _looks_like_hub_id(value: Any) -> bool:
    """A Hub repo id, not a local path (local paths must never be published)."""
    return (
        isinstance(value, str)
        and bool(_HUB_ID_RE.match(value))
        and not value.startswith((".", "/", "~"))
        and not Path(value).exists()
    )


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


class NvibModelCardData(ModelCardData):
    """Card metadata (YAML) plus template-only context for an NVIB checkpoint.

    The template-only attributes are removed from the YAML in `_to_dict` and handed to the
    template by `template_context`.
    """

    TEMPLATE_ONLY = (
        "repo_id", "title", "model_summary", "architecture", "model_type", "model_size",
        "nvib_hparams", "training", "results", "plots", "remote_code",
    )  # fmt: skip

    def __init__(
        self,
        *,
        repo_id: str = "<namespace>/<model>",
        title: str | None = None,
        model_summary: str = "",
        architecture: str = "",
        model_type: str = "",
        model_size: Mapping[str, Any] | None = None,
        nvib_hparams: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
        results: Mapping[str, float] | None = None,
        plots: Mapping[str, str] | None = None,
        remote_code: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("library_name", LIBRARY_NAME)
        kwargs.setdefault("pipeline_tag", PIPELINE_TAG)
        kwargs["tags"] = list(dict.fromkeys([*BASE_TAGS, *(kwargs.get("tags") or [])]))
        super().__init__(**kwargs)
        self.repo_id = repo_id
        self.title = title or repo_id.split("/")[-1]
        self.model_summary = model_summary
        self.architecture = architecture
        self.model_type = model_type
        self.model_size = dict(model_size or {})
        self.nvib_hparams = dict(nvib_hparams or {})
        self.training = dict(training or {})
        self.results = dict(results or {})
        self.plots = dict(plots or {})
        self.remote_code = remote_code

    def _to_dict(self, data_dict: dict[str, Any]) -> None:
        for key in self.TEMPLATE_ONLY:
            data_dict.pop(key, None)
        super()._to_dict(data_dict)

    def template_context(self) -> dict[str, Any]:
        """Values for the jinja template (formatted for tables)."""
        context = {key: getattr(self, key) for key in self.TEMPLATE_ONLY}
        for key in ("nvib_hparams", "training", "results", "model_size"):
            context[key] = {k: _format(v) for k, v in context[key].items()}
        datasets = self.datasets
        context["datasets"] = [datasets] if isinstance(datasets, str) else list(datasets or [])
        context["base_model"] = self.base_model
        return context

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        repo_id: str,
        metrics: Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None,
        trainer_state: Mapping[str, Any] | None = None,
        plots: Mapping[str, str] | None = None,
        base_model: str | None = None,
        datasets: str | Iterable[str] | None = None,
        remote_code: bool = False,
        secrets: Iterable[str] = (),
        **card_kwargs: Any,
    ) -> NvibModelCardData:
        """Card data from a model config dict and optional run artefacts (all scrubbed)."""
        secrets = known_secrets(secrets)
        config = scrub_value(dict(config), secrets)
        run_config = scrub_value(dict(run_config or {}), secrets)
        trainer_state = dict(trainer_state or {})

        base_model = base_model or next(
            (
                run_config[k]
                for k in ("base_model", "model_name_or_path", "pretrained_model")
                if _looks_like_hub_id(run_config.get(k))
            ),
            None,
        )
        if datasets is None:
            datasets = next(
                (
                    run_config[k]
                    for k in ("datasets", "dataset", "dataset_name")
                    if run_config.get(k)
                ),
                None,
            )
        if isinstance(datasets, str):
            datasets = [datasets]
        datasets = [scrub_text(str(d), secrets) for d in datasets or []]

        nvib = {k: v for k, v in config.items() if k.startswith("nvib_")}
        size_keys = ("d_model", "encoder_layers", "decoder_layers", "num_layers",
                     "num_decoder_layers", "vocab_size")  # fmt: skip
        model_size = {k: config[k] for k in size_keys if k in config}

        training = {k: run_config[k] for k in TRAINING_KEYS if k in run_config}
        for key, value in run_config.items():  # KL annealing schedules, whatever their shape
            if "kl" in key.lower() and key not in training:
                training[key] = value
        if trainer_state.get("global_step"):
            training["global_step"] = trainer_state["global_step"]

        results = flatten_metrics(metrics or {})
        eval_results = None
        finite = {k: v for k, v in results.items() if math.isfinite(v)}
        if finite:
            dataset_name = datasets[0] if datasets else "custom"
            eval_results = [
                EvalResult(
                    task_type=PIPELINE_TAG,
                    dataset_type=dataset_name,
                    dataset_name=dataset_name,
                    metric_type=name,
                    metric_name=name,
                    metric_value=value,
                )
                for name, value in finite.items()
            ]
        architectures = config.get("architectures") or [""]
        model_type = config.get("model_type", "")
        summary = (
            f"A `{model_type}` sequence-to-sequence model with an NVIB bottleneck between "
            "encoder and decoder."
        )
        return cls(
            repo_id=repo_id,
            model_name=repo_id.split("/")[-1],
            model_summary=summary,
            architecture=architectures[0],
            model_type=model_type,
            model_size=model_size,
            nvib_hparams=nvib,
            training=training,
            results=results,
            plots=dict(plots or {}),
            remote_code=remote_code,
            base_model=base_model,
            datasets=datasets or None,
            eval_results=eval_results,
            **card_kwargs,
        )

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, repo_id: str, **kwargs: Any) -> NvibModelCardData:
        """Card data from a run directory: `config.json` (required), `metrics.json`,
        `run_config.json`/`training_args.json`, `trainer_state.json`, `*.png` plots."""
        run_dir = Path(run_dir)
        config_path = run_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{run_dir.name}: config.json is missing (not a saved model)")
        run_config: dict[str, Any] = {}
        for name in RUN_CONFIG_NAMES:
            run_config = {**_read_json(run_dir / name), **run_config}
        kwargs.setdefault(
            "plots", {name: f"{PLOTS_DIR_IN_REPO}/{name}" for name in find_plots(run_dir)}
        )
        return cls.from_config(
            _read_json(config_path),
            repo_id=repo_id,
            metrics=_read_json(run_dir / "metrics.json"),
            run_config=run_config,
            trainer_state=_read_json(run_dir / "trainer_state.json"),
            **kwargs,
        )


def find_plots(run_dir: Path) -> dict[str, Path]:
    """`*.png` in the run directory and its `plots/` folder, by file name."""
    found: dict[str, Path] = {}
    for folder in (run_dir, run_dir / "plots"):
        if folder.is_dir():
            for path in sorted(folder.glob("*.png")):
                found.setdefault(path.name, path)
    return found


def render_model_card(
    card_data: NvibModelCardData,
    *,
    template: str | Path | None = None,
    secrets: Iterable[str] = (),
) -> ModelCard:
    """Render the card; the final text is scrubbed again (defence in depth)."""
    card = ModelCard.from_template(
        card_data,
        template_path=str(template or template_path()),
        **card_data.template_context(),
    )
    text = scrub_text(str(card), known_secrets(secrets))
    return ModelCard(text)


def render_run_card(run_dir: str | Path, repo_id: str, **kwargs: Any) -> ModelCard:
    """Convenience: `render_model_card(NvibModelCardData.from_run_dir(...))`."""
    secrets = kwargs.pop("secrets", ())
    data = NvibModelCardData.from_run_dir(run_dir, repo_id=repo_id, secrets=secrets, **kwargs)
    return render_model_card(data, secrets=secrets)
