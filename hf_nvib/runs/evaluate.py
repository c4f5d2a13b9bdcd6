"""Evaluate a checkpoint (NVIB or plain) on text pairs: generation metrics and NVIB statistics.

Why one loop for both kinds of model: the demo compares NVIB with its plain twin, so the same
batches, the same greedy decoding and the same CE computation must score both. A plain model's
"latent" is its encoder output: every vector is kept (kept proportion 1), no KL.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset

from hf_nvib.data import build_task_dataset, load_out_of_domain
from hf_nvib.evaluation.metrics import text_metrics
from hf_nvib.evaluation.nvib_metrics import NvibMetricAccumulator, pooled_latent_means
from hf_nvib.evaluation.sampling import nvib_layer
from hf_nvib.models.outputs import NvibEncoderOutput

__all__ = [
    "CheckpointError",
    "SetEvaluation",
    "evaluate_checkpoint",
    "evaluate_model",
    "evaluation_sets",
    "format_table",
    "load_checkpoint",
    "token_weights",
]

# Columns of the printed/report tables: (metrics key, header, format).
TABLE_COLUMNS = (
    ("bleu", "BLEU", "{:.2f}"),
    ("chrf", "chrF", "{:.2f}"),
    ("rougeL", "ROUGE-L", "{:.2f}"),
    ("exact_match", "EM %", "{:.1f}"),
    ("ce", "CE", "{:.3f}"),
    ("perplexity", "PPL", "{:.2f}"),
    ("kl_gaussian", "KL_G", "{:.3f}"),
    ("kl_dirichlet", "KL_D", "{:.3f}"),
    ("kept_vectors", "kept", "{:.1f}"),
    ("kept_proportion", "kept %", "{:.1%}"),
    ("alpha_sum", "Σα", "{:.3g}"),
    ("active_units", "AU", "{:.0f}"),
)


class CheckpointError(ValueError):
    """A model directory or hub id that cannot be used (missing, not seq2seq, not BART/T5)."""


def load_checkpoint(path_or_id: str, *, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a plain or NVIB seq2seq checkpoint, in eval mode."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    import hf_nvib  # noqa: F401  (registers nvib_bart / nvib_t5 with the Auto classes)

    local = Path(path_or_id).expanduser()
    looks_local = str(path_or_id).startswith((".", "/", "~")) or str(path_or_id).count("/") > 1
    if looks_local and not local.exists():
        raise CheckpointError(
            f"model directory not found: {path_or_id} (pass an existing checkpoint directory, "
            "e.g. a run directory of `hf-nvib train`, or a hub id)"
        )
    if local.exists() and not (local / "config.json").is_file():
        raise CheckpointError(
            f"{path_or_id} has no config.json: point --model at a directory written by "
            "save_pretrained (e.g. a run directory of `hf-nvib train`)"
        )
    try:
        config = AutoConfig.from_pretrained(str(path_or_id))
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot load a model config from {path_or_id!r} ({str(err).splitlines()[0]}): "
            "pass an existing local checkpoint directory, or a hub id that is cached (offline)"
        ) from None
    if config.model_type not in ("bart", "t5", "nvib_bart", "nvib_t5", "mbart", "marian"):
        raise CheckpointError(
            f"{path_or_id} is a {config.model_type!r} model: hf-nvib handles BART and T5 "
            "encoder-decoders (plain or NVIB)"
        )
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(str(path_or_id))
        tokenizer = AutoTokenizer.from_pretrained(str(path_or_id))
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot load {path_or_id!r} ({str(err).splitlines()[0]}): check that it holds "
            "the weights and the tokenizer files"
        ) from None
    if device:
        model.to(device)
    return model.eval(), tokenizer


@dataclass
class SetEvaluation:
    """Metrics of one evaluation set plus what the plots and report need."""

    metrics: dict[str, float]
    examples: list[dict[str, str]] = field(default_factory=list)
    pooled_means: torch.Tensor | None = None  # (n, P) mean latent vector per sentence
    lengths: list[int] = field(default_factory=list)  # source tokens per sentence
    # log α of every token component (prior excluded); NVIB with κ = 1 and no compaction only
    token_log_alpha: torch.Tensor | None = None


def _data_slot_mask(enc: Any, input_mask: torch.Tensor, kappa: int) -> torch.Tensor:
    """Slots to pool for active units: kept token slots (no prior) or, plain, the tokens."""
    if isinstance(enc, NvibEncoderOutput):
        mask = enc.attention_mask.clone().bool()
        mask[:, :kappa] = False
        return mask
    return input_mask.bool()


@torch.no_grad()
def evaluate_model(
    model: Any,
    tokenizer: Any,
    data: Dataset,
    *,
    batch_size: int = 32,
    max_source_length: int = 128,
    max_target_length: int = 128,
    num_beams: int = 1,
    num_examples: int = 5,
) -> SetEvaluation:
    """Score ``data`` (columns ``source``, ``target``): CE on the references, then greedy/beam
    generation against them, plus NVIB statistics when the model has an NVIB layer."""
    if len(data) == 0:
        raise ValueError("the evaluation set is empty")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    layer = nvib_layer(model)
    kappa = int(layer.kappa) if layer is not None else 1
    # Learned position tables (BART) cap the lengths the model can read or write.
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions:
        max_source_length = min(max_source_length, max_positions)
        max_target_length = min(max_target_length, max_positions - 1)
    acc = NvibMetricAccumulator()
    predictions: list[str] = []
    pooled: list[torch.Tensor] = []
    lengths: list[int] = []
    token_log_alpha: list[torch.Tensor] = []
    one_slot_per_token = (
        layer is not None and kappa == 1 and not getattr(model.config, "nvib_compact", False)
    )
    sources, targets = list(data["source"]), list(data["target"])
    try:
        for start in range(0, len(sources), batch_size):
            src, tgt = sources[start : start + batch_size], targets[start : start + batch_size]
            batch = tokenizer(
                src,
                text_target=tgt,
                max_length=max_source_length,
                truncation=True,
                padding=True,
                return_tensors="pt",
            ).to(device)
            labels = batch["labels"]
            if max_target_length < labels.shape[1]:
                labels = labels[:, :max_target_length]
            labels = labels.masked_fill(labels == tokenizer.pad_token_id, -100)
            mask = batch["attention_mask"]
            enc = model.get_encoder()(
                input_ids=batch["input_ids"], attention_mask=mask, return_dict=True
            )
            out = model(encoder_outputs=enc, attention_mask=mask, labels=labels)
            logits = out.logits.float()
            nll = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            tokens = int((labels != -100).sum())
            slots = _data_slot_mask(enc, mask, kappa)
            means = enc.mu if isinstance(enc, NvibEncoderOutput) else enc.last_hidden_state
            if isinstance(enc, NvibEncoderOutput):
                acc.update(
                    ce_sum=nll,
                    num_tokens=tokens,
                    kl_gaussian=enc.kl_gaussian,
                    kl_dirichlet=enc.kl_dirichlet,
                    num_kept=enc.num_kept,
                    num_valid=enc.num_valid,
                    alpha_sum=enc.alpha_sum,
                    latent_means=means,
                    latent_mask=slots,
                )
                gen_mask = enc.attention_mask
                if one_slot_per_token:  # slots: the prior, then one per input token
                    token_alpha = enc.log_alpha[:, 1:][mask.bool()]
                    token_log_alpha.append(token_alpha.float().cpu())
            else:
                n = mask.sum(-1)
                acc.update(
                    ce_sum=nll,
                    num_tokens=tokens,
                    num_kept=n,
                    num_valid=n,
                    latent_means=means,
                    latent_mask=slots,
                )
                gen_mask = mask
            pooled.append(pooled_latent_means(means, slots).float().cpu())
            lengths.extend(mask.sum(-1).tolist())
            ids = model.generate(
                encoder_outputs=enc,
                attention_mask=gen_mask,
                max_new_tokens=max_target_length,
                num_beams=num_beams,
                do_sample=False,
            )
            predictions.extend(
                t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)
            )
    finally:
        model.train(was_training)
    metrics = text_metrics(predictions, [t.strip() for t in targets])
    metrics.update(acc.compute())
    metrics["num_sentences"] = float(len(sources))
    examples = [
        {"source": s, "reference": t, "prediction": p}
        for s, t, p in zip(sources[:num_examples], targets, predictions, strict=False)
    ]
    log_alpha = torch.cat(token_log_alpha) if token_log_alpha else None
    return SetEvaluation(metrics, examples, torch.cat(pooled), lengths, log_alpha)


def evaluation_sets(
    task: str = "denoise",
    *,
    split: str = "test",
    limit: int | None = 200,
    data_files: Any = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    text_column: str | None = None,
    source_column: str | None = None,
    target_column: str | None = None,
    ood: bool = True,
    ood_file: str | None = None,
) -> dict[str, Dataset]:
    """In-domain (and, for denoising, out-of-domain) evaluation sets.

    Denoising is scored as *reconstruction*: the clean sentence in, the same sentence out
    (``noise=None``), which is what the bottleneck has to preserve. The out-of-domain set is
    the bundled fortunes (or one sentence per line of ``ood_file``); translation has no
    out-of-domain references, so it gets none.
    """
    sets: dict[str, Dataset] = {}
    cols = {
        "text_column": text_column,
        "source_column": source_column,
        "target_column": target_column,
    }
    cols = {k: v for k, v in cols.items() if v is not None}
    sets["in_domain"] = build_task_dataset(
        task,
        split,
        data_files=data_files,
        dataset_name=dataset_name,
        dataset_config=dataset_config,
        limit=limit,
        noise=None,
        **cols,
    )
    if ood and task == "denoise":
        if ood_file is not None:
            path = Path(ood_file)
            if not path.is_file():
                raise FileNotFoundError(
                    f"out-of-domain file not found: {ood_file} (pass a text file, one sentence "
                    "per line)"
                )
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
            lines = [ln for ln in lines if ln]
        else:
            lines = load_out_of_domain()
        if limit is not None:
            lines = lines[:limit]
        sets["out_of_domain"] = Dataset.from_dict({"source": lines, "target": lines})
    return sets


def evaluate_checkpoint(
    model_path: str,
    *,
    task: str = "denoise",
    sets: dict[str, Dataset] | None = None,
    output_file: str | Path | None = None,
    batch_size: int = 32,
    max_source_length: int = 128,
    max_target_length: int = 128,
    num_beams: int = 1,
    **set_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """Load ``model_path``, score it on ``sets`` (default: :func:`evaluation_sets`), optionally
    write the metrics as JSON; returns ``{set name: metrics}``."""
    model, tokenizer = load_checkpoint(model_path)
    if sets is None:
        sets = evaluation_sets(task, **set_kwargs)
    results = {
        name: evaluate_model(
            model,
            tokenizer,
            data,
            batch_size=batch_size,
            max_source_length=max_source_length,
            max_target_length=max_target_length,
            num_beams=num_beams,
        ).metrics
        for name, data in sets.items()
    }
    if output_file is not None:
        Path(output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(output_file).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def format_table(rows: dict[str, dict[str, float]], *, markdown: bool = False) -> str:
    """Side-by-side table: one row per (model/set) name, the columns of ``TABLE_COLUMNS``
    that at least one row has."""
    cols = [c for c in TABLE_COLUMNS if any(c[0] in r for r in rows.values())]
    header = ["", *(h for _, h, _ in cols)]
    body = [[name, *(_cell(r.get(k), f) for k, _, f in cols)] for name, r in rows.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    fmt_row = lambda row: "  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True))  # noqa: E731
    return "\n".join([fmt_row(header), *(fmt_row(r) for r in body)])


@torch.no_grad()
def token_weights(
    model: Any, tokenizer: Any, sentences: list[str], *, max_source_length: int = 128
) -> list[dict[str, Any]]:
    """Per sentence: tokens (prior first), π and log α per slot, and which slots are kept.

    For the π/α plot; needs an NVIB model with κ = 1 and no compaction (one slot per token).
    """
    layer = nvib_layer(model)
    if layer is None:
        raise ValueError("token weights need an NVIB model")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for sentence in sentences:
            batch = tokenizer(
                [sentence], return_tensors="pt", truncation=True, max_length=max_source_length
            ).to(device)
            enc = model.get_encoder()(**batch, return_dict=True)
            ids = batch["input_ids"][0].tolist()
            # Decoded one by one: byte-level BPE token strings are unreadable ("âĢľ" for “).
            pieces = (tokenizer.decode([i]) for i in ids)
            tokens = ["<prior>", *(p.replace(" ", "▁") or "∅" for p in pieces)]
            out.append(
                {
                    "sentence": sentence,
                    "tokens": tokens,
                    "pi": enc.log_pi[0].float().exp().cpu().tolist(),
                    "log_alpha": enc.log_alpha[0].float().cpu().tolist(),
                    "kept": enc.attention_mask[0].bool().cpu().tolist(),
                }
            )
    finally:
        model.train(was_training)
    return out
