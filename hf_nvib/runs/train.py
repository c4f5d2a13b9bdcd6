"""One training run: data → model (plain or NVIB) → Trainer → a self-describing run directory.

The run directory holds everything needed to use, evaluate, sample from and publish the model:
``config.json`` + ``model.safetensors`` + tokenizer (``save_pretrained``), ``metrics.json``,
``trainer_state.json`` (log history), ``run_config.json`` (the command and every setting, with
paths scrubbed, plus the source-length histogram that ``hf-nvib sample`` draws lengths from),
``plots/*.png`` and a model card ``README.md``.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from hf_nvib.runs.config import RunConfig, default_output_dir

__all__ = ["RunConfig", "build_model", "train_run"]

# ---------------------------------------------------------------------------------------------
# data


def _data_kwargs(cfg: RunConfig, split: str) -> dict[str, Any]:
    """build_task_dataset keywords for a split of the user's data or the bundled corpus."""
    kwargs: dict[str, Any] = {}
    if cfg.train_file:
        files = {"train": cfg.train_file}
        if cfg.validation_file:
            files["validation"] = cfg.validation_file
        files["test"] = cfg.test_file or cfg.validation_file or cfg.train_file
        if "validation" not in files:
            files["validation"] = files["test"]
        kwargs["data_files"] = files
    elif cfg.dataset:
        kwargs["dataset_name"] = cfg.dataset
        kwargs["dataset_config"] = cfg.dataset_config
    for name in ("text_column", "source_column", "target_column"):
        if getattr(cfg, name) is not None:
            kwargs[name] = getattr(cfg, name)
    return kwargs


def _noise(cfg: RunConfig):
    from hf_nvib.data import NoiseConfig

    return NoiseConfig(
        mask_prob=cfg.mask_prob, delete_prob=cfg.delete_prob, infill_prob=cfg.infill_prob
    )


class _TrainEvalCollator:
    """Fresh denoising noise for training examples (text), plain padding for tokenised ones.

    Why: the Trainer uses one collator for train and eval; the validation set is pre-tokenised
    clean reconstruction pairs, the training set raw text noised anew every batch.
    """

    def __init__(self, denoising: Any, padding: Any) -> None:
        self.denoising, self.padding = denoising, padding

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if features and "input_ids" in features[0]:
            keep = ("input_ids", "attention_mask", "labels")
            return self.padding([{k: f[k] for k in keep if k in f} for f in features])
        return self.denoising(features)


# ---------------------------------------------------------------------------------------------
# model


def _small_bart(cfg: RunConfig, tokenizer: Any) -> Any:
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=cfg.d_model,
        encoder_layers=cfg.layers,
        decoder_layers=cfg.layers,
        encoder_attention_heads=cfg.heads,
        decoder_attention_heads=cfg.heads,
        encoder_ffn_dim=cfg.ffn_dim,
        decoder_ffn_dim=cfg.ffn_dim,
        max_position_embeddings=max(128, cfg.max_source_length, cfg.max_target_length + 1),
        dropout=0.0,  # under one epoch of data: no overfitting, faster copy learning
        # BART's 0.02 suits d_model ≈ 1024; at small widths it leaves W_q·W_kᵀ so close to zero
        # that cross-attention needs thousands of steps to find the copy alignment (measured:
        # a d_model-128 BART had not learnt to copy after 1,200 steps). 1/√d_model learns it in
        # a few hundred.
        init_std=cfg.d_model**-0.5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return BartForConditionalGeneration(config)


def build_model(cfg: RunConfig, train_texts: list[str]) -> tuple[Any, Any, str]:
    """(model, tokenizer, description). NVIB unless ``cfg.plain``."""
    import hf_nvib
    from hf_nvib.data import train_bpe_tokenizer
    from hf_nvib.runs.evaluate import CheckpointError, load_checkpoint

    nvib = cfg.nvib_options()
    if cfg.model is None:
        tokenizer = train_bpe_tokenizer(
            train_texts[: cfg.tokenizer_samples], vocab_size=cfg.vocab_size
        )
        plain = _small_bart(cfg, tokenizer)
        if cfg.plain:
            return plain, tokenizer, "small BART from scratch"
        config = hf_nvib.NvibBartConfig.from_plain(plain.config, **nvib)
        model = hf_nvib.NvibBartForConditionalGeneration(config)
        model.load_state_dict(plain.state_dict(), strict=False)
        return model, tokenizer, "small NVIB-BART from scratch"

    model, tokenizer = load_checkpoint(cfg.model)
    kind = model.config.model_type
    if cfg.plain:
        if kind.startswith("nvib_"):
            raise CheckpointError(
                f"--plain needs a plain BART/T5 checkpoint, but {cfg.model} is {kind}: drop "
                "--plain to fine-tune it with NVIB"
            )
        return model.train(), tokenizer, f"plain {kind} fine-tuned"
    if kind.startswith("nvib_"):
        for name, value in nvib.items():
            if name not in ("nvib_alpha_tau", "nvib_stdev_tau", "nvib_mu_tau", "nvib_kappa"):
                setattr(model.config, name, value)
        return model.train(), tokenizer, f"{kind} checkpoint fine-tuned"
    classes = {
        "bart": hf_nvib.NvibBartForConditionalGeneration,
        "t5": hf_nvib.NvibT5ForConditionalGeneration,
    }
    if kind not in classes:
        raise CheckpointError(
            f"{cfg.model} is a {kind!r} model: NVIB conversion supports bart and t5 checkpoints"
        )
    del model
    converted = classes[kind].from_pretrained(cfg.model, **nvib)
    return converted.train(), tokenizer, f"{kind} converted to NVIB at the identity"


# ---------------------------------------------------------------------------------------------
# the run


def _log(msg: str) -> None:
    print(f"[hf-nvib] {msg}", flush=True)


def _source_lengths(tokenizer: Any, texts: list[str], max_length: int) -> list[int]:
    enc = tokenizer(texts[:5000], truncation=True, max_length=max_length)
    return [len(ids) for ids in enc["input_ids"]]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )


def _run_config(cfg: RunConfig, histogram: dict[str, int], description: str) -> dict[str, Any]:
    from hf_nvib import __version__
    from hf_nvib.hub.scrub import scrub_value

    settings = asdict(cfg)
    command = settings.pop("command") or ["hf-nvib", "train"]
    data = {
        "command": shlex.join(command),
        "hf_nvib_version": __version__,
        "torch_version": torch.__version__,
        "model_description": description,
        **settings,
        "source_length_histogram": histogram,
    }
    if cfg.model and not Path(cfg.model).exists():
        data["base_model"] = cfg.model
    if not cfg.train_file and not cfg.dataset:
        data["datasets"] = ["bundled: World English Bible / Reina-Valera 1909 (hf_nvib)"]
    elif cfg.dataset:
        data["datasets"] = [cfg.dataset]
    return scrub_value(data)


def _write_card(run_dir: Path) -> str:
    """Model card README.md via hf_nvib.hub when available, else a minimal one."""
    try:
        from hf_nvib.hub.card import render_run_card

        card = render_run_card(run_dir, repo_id=f"<namespace>/{run_dir.name}")
        (run_dir / "README.md").write_text(str(card), encoding="utf-8")
        return "hf_nvib.hub"
    except Exception as err:  # a card must never lose a finished run
        metrics = json.loads((run_dir / "metrics.json").read_text())
        lines = [
            f"# {run_dir.name}",
            "",
            "NVIB model trained with `hf-nvib train`.",
            "",
            f"(model card template unavailable: {type(err).__name__})",
            "",
            "## Metrics",
            "",
            "```json",
            json.dumps(metrics.get("eval", {}), indent=2),
            "```",
            "",
        ]
        (run_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")
        return "fallback"


def train_run(cfg: RunConfig) -> Path:
    """Train per ``cfg``, evaluate, plot, write the run directory; return its path."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments
    from transformers.utils import logging as hf_logging

    from hf_nvib.data import DenoisingCollator, build_task_dataset, tokenize_dataset
    from hf_nvib.evaluation.plots import (
        plot_alpha_histogram,
        plot_latent_pca,
        plot_token_weights,
        plot_training_curves,
    )
    from hf_nvib.evaluation.sampling import LengthDistribution, nvib_layer
    from hf_nvib.runs.evaluate import evaluate_model, evaluation_sets, token_weights
    from hf_nvib.training import NvibKLCallback, NvibSeq2SeqTrainer, parse_schedule

    cfg.validate()
    hf_logging.set_verbosity_error()
    run_dir = Path(cfg.output_dir) if cfg.output_dir else default_output_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()

    # data: raw text pairs (noise added per batch for denoising)
    data_kwargs = _data_kwargs(cfg, "train")
    train_text = build_task_dataset(
        cfg.task, "train", limit=cfg.max_train_samples, noise=None, seed=cfg.seed, **data_kwargs
    )
    tokenizer_texts = list(train_text["target"])
    if cfg.task == "translate":
        tokenizer_texts += list(train_text["source"])
    model, tokenizer, description = build_model(cfg, tokenizer_texts)
    is_nvib = nvib_layer(model) is not None
    _log(f"model: {description} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params)")

    validation = build_task_dataset(
        cfg.task, "validation", limit=cfg.validation_samples, noise=None, **data_kwargs
    )
    validation_tok = tokenize_dataset(
        validation, tokenizer, cfg.max_source_length, cfg.max_target_length
    )
    padding = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    if cfg.task == "denoise":
        train_data = train_text
        collator: Any = _TrainEvalCollator(
            DenoisingCollator(
                tokenizer,
                noise=_noise(cfg),
                max_source_length=cfg.max_source_length,
                max_target_length=cfg.max_target_length,
                seed=cfg.seed,
            ),
            padding,
        )
    else:
        train_data = tokenize_dataset(
            train_text, tokenizer, cfg.max_source_length, cfg.max_target_length
        )
        collator = padding

    lengths = _source_lengths(tokenizer, list(train_text["source"]), cfg.max_source_length)
    histogram = LengthDistribution.from_lengths(lengths).to_json()

    lr = cfg.learning_rate or (2e-3 if cfg.model is None else 1e-4)
    args = Seq2SeqTrainingArguments(
        output_dir=str(run_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=lr,
        warmup_steps=int(cfg.warmup_ratio * cfg.steps),
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=cfg.logging_steps or max(cfg.steps // 20, 1),
        eval_strategy="steps",
        eval_steps=cfg.eval_steps or max(cfg.steps // 5, 1),
        prediction_loss_only=True,
        save_strategy="no",
        report_to=[],
        seed=cfg.seed,
        remove_unused_columns=False,
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    common = {
        "model": model,
        "args": args,
        "train_dataset": train_data,
        "eval_dataset": validation_tok,
        "data_collator": collator,
        "processing_class": tokenizer,
    }
    if is_nvib:
        callback = NvibKLCallback(
            parse_schedule(cfg.kl_gaussian_schedule), parse_schedule(cfg.kl_dirichlet_schedule)
        )
        trainer = NvibSeq2SeqTrainer(
            **common, callbacks=[callback], nvib_learning_rate=cfg.nvib_learning_rate
        )
    else:
        trainer = Seq2SeqTrainer(**common)
    _log(f"training {cfg.steps} steps (batch {cfg.batch_size}, lr {lr:g}) → {run_dir}")
    train_output = trainer.train()
    train_seconds = time.time() - start

    model.eval()
    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    trainer.state.save_to_json(str(run_dir / "trainer_state.json"))
    for leftover in ("training_args.bin",):
        (run_dir / leftover).unlink(missing_ok=True)

    # evaluation on the in-domain test split and the out-of-domain set
    sets = (
        evaluation_sets(
            cfg.task,
            split=cfg.eval_split,
            limit=cfg.eval_samples,
            ood_file=cfg.ood_file,
            **data_kwargs,
        )
        if cfg.final_eval
        else {}
    )
    evaluations = {
        name: evaluate_model(
            model,
            tokenizer,
            data,
            batch_size=cfg.batch_size,
            max_source_length=cfg.max_source_length,
            max_target_length=cfg.max_target_length,
            num_beams=cfg.num_beams,
        )
        for name, data in sets.items()
    }
    metrics = {
        "model": "nvib" if is_nvib else "plain",
        "train": {
            "steps": int(trainer.state.global_step),
            "train_loss": float(train_output.training_loss),
            "train_seconds": round(train_seconds, 1),
        },
        "eval": {name: ev.metrics for name, ev in evaluations.items()},
    }
    _write_json(run_dir / "metrics.json", metrics)
    _write_json(run_dir / "examples.json", {n: ev.examples for n, ev in evaluations.items()})
    _write_json(run_dir / "run_config.json", _run_config(cfg, histogram, description))

    # plots
    plots = run_dir / "plots"
    plot_training_curves(trainer.state.log_history, plots / "training_curves.png")
    in_domain = evaluations.get("in_domain")
    if in_domain is not None and in_domain.pooled_means is not None and len(in_domain.lengths) >= 2:
        finite = torch.isfinite(in_domain.pooled_means).all(-1)
        lens = [n for n, ok in zip(in_domain.lengths, finite.tolist(), strict=True) if ok]
        if int(finite.sum()) >= 2:
            plot_latent_pca(
                in_domain.pooled_means[finite],
                lens,
                plots / "latent_pca.png",
                title=f"PCA of mean latent vectors ({'NVIB' if is_nvib else 'plain'})",
            )
    if in_domain is not None and in_domain.token_log_alpha is not None:
        plot_alpha_histogram(
            in_domain.token_log_alpha,
            plots / "alpha_histogram.png",
            threshold=model.config.nvib_prune_threshold,
            delta=model.config.nvib_delta,
        )
    nvib_plain_slots = is_nvib and model.config.nvib_kappa == 1 and not model.config.nvib_compact
    if in_domain is not None and nvib_plain_slots:
        sentences = [e["source"] for e in in_domain.examples[:3]]
        weights = token_weights(
            model, tokenizer, sentences, max_source_length=cfg.max_source_length
        )
        _write_json(run_dir / "token_weights.json", weights)
        plot_token_weights(weights, plots / "token_weights.png")

    if cfg.card:
        _write_card(run_dir)
    _log(f"done in {time.time() - start:.0f}s; run directory: {run_dir}")
    return run_dir


def command_line() -> list[str]:
    """The command as typed (program name reduced to ``hf-nvib``)."""
    return ["hf-nvib", *sys.argv[1:]]


def finite_metrics(metrics: dict[str, Any]) -> bool:
    """True when every number in a (nested) metrics dict is finite."""
    for value in metrics.values():
        if isinstance(value, dict):
            if not finite_metrics(value):
                return False
        elif isinstance(value, float) and not math.isfinite(value):
            return False
    return True
