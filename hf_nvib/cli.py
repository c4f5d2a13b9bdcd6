"""The `hf-nvib` command line: each subcommand is a thin call into the package.

Errors the user can fix (bad flag values, missing files, incompatible checkpoints) end with exit
status 2 and one line on stderr naming the problem and the fix; set ``HF_NVIB_DEBUG=1`` to get
the traceback instead. Heavy imports (torch, transformers) happen inside the subcommands so that
``--help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any

from hf_nvib import __version__

EXIT_USAGE = 2

TRAIN_HELP: dict[str, str] = {
    "model": "hub id or local dir of a plain BART/T5 (converted to NVIB at the identity) or of "
    "an NVIB checkpoint; default: a small BART built from a config, with a BPE tokenizer "
    "trained on the training text",
    "plain": "train the plain backbone without NVIB (a baseline)",
    "task": "denoise (reconstruct noised text) or translate (source → target columns)",
    "train_file": "local training data (.jsonl/.json/.csv/.parquet); default: bundled corpus",
    "validation_file": "local validation data (same format)",
    "test_file": "local test data for the final evaluation (default: validation file)",
    "dataset": "a datasets name (load_dataset) instead of local files",
    "dataset_config": "configuration name of --dataset",
    "text_column": "text column for denoise (bundled default: en)",
    "source_column": "source column for translate (bundled default: en)",
    "target_column": "target column for translate (bundled default: es)",
    "max_train_samples": "use at most this many training examples",
    "max_source_length": "truncate sources to this many tokens",
    "max_target_length": "truncate targets (and generation) to this many tokens",
    "mask_prob": "denoise: fraction of words replaced by <mask>",
    "delete_prob": "denoise: fraction of words deleted",
    "infill_prob": "denoise: fraction of words in spans replaced by one <mask>",
    "lambda_gaussian": "λ_G, weight of the Gaussian KL",
    "lambda_dirichlet": "λ_D, weight of the Dirichlet KL",
    "kl_gaussian_schedule": "annealing of λ_G: constant[:v] | linear:start:end[:v] | "
    "cosine:start:end[:v] | cyclical:cycles:ratio[:shape][:v] (fractions of the steps)",
    "kl_dirichlet_schedule": "annealing of λ_D (same forms)",
    "alpha_tau": "identity-init offset of log α (10: the prior slot is ~e⁻¹⁰ of a token)",
    "stdev_tau": "identity-init standard deviation scale (0: no noise at conversion)",
    "mu_tau": "identity-init mean scale",
    "delta": "δ, pseudo-count per token component in the Dirichlet prior",
    "kappa": "samples per component",
    "prune_threshold": "α at or below which a component is pruned at inference",
    "eval_attention": "inference cross-attention: denoising (closed form) or mean",
    "steps": "optimizer steps",
    "batch_size": "examples per step",
    "learning_rate": "peak learning rate (default: 2e-3 from scratch, 1e-4 from a checkpoint)",
    "nvib_learning_rate": "peak learning rate of the NVIB layer's projections, which start at the "
    "identity and must move further than the pretrained weights (default: --learning-rate)",
    "warmup_ratio": "fraction of steps of linear warm-up",
    "weight_decay": "AdamW weight decay",
    "seed": "random seed",
    "logging_steps": "log every N steps (default: steps/20)",
    "eval_steps": "evaluate the validation loss every N steps (default: steps/5)",
    "validation_samples": "validation examples for the periodic evaluation",
    "final_eval": "evaluate on the in-domain and out-of-domain sets after training",
    "eval_samples": "examples per final evaluation set (in-domain and out-of-domain)",
    "eval_split": "split of the final in-domain evaluation",
    "ood_file": "out-of-domain sentences, one per line (default: bundled fortunes)",
    "num_beams": "beams for evaluation generation (1: greedy)",
    "vocab_size": "BPE vocabulary of the default model",
    "d_model": "width of the default model",
    "layers": "encoder and decoder layers of the default model",
    "heads": "attention heads of the default model",
    "ffn_dim": "feed-forward width of the default model",
    "tokenizer_samples": "texts used to train the default model's tokenizer",
    "output_dir": "run directory (default: runs/<timestamp>)",
    "progress": "show progress bars",
    "card": "write a model card README.md",
}


class CliError(Exception):
    """A user-fixable problem: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """One-line usage errors (no usage dump), exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _field_type(f: dataclasses.Field) -> type:
    hints = typing.get_type_hints(_run_config_class())
    hint = hints[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _run_config_class() -> type:
    from hf_nvib.runs.config import RunConfig

    return RunConfig


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_nvib.runs.config import RunConfig

    choices = {"task": ("denoise", "translate"), "eval_attention": ("denoising", "mean")}
    for f in dataclasses.fields(RunConfig):
        if f.name == "command":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _field_type(f)
        default = f.default
        help_text = TRAIN_HELP.get(f.name, "")
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
            continue
        shown = "" if default is None else " (default: %(default)s)"
        parser.add_argument(
            flag,
            type=kind,
            default=default,
            choices=choices.get(f.name),
            metavar=f.name.upper() if f.name not in choices else None,
            help=help_text + shown,
        )


def _train_config(args: argparse.Namespace, argv: list[str]) -> Any:
    from hf_nvib.runs.config import RunConfig

    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if f.name != "command"
    }
    return RunConfig(**values, command=["hf-nvib", *argv])


def _cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from hf_nvib.runs.train import train_run

    run_dir = train_run(_train_config(args, argv))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _print_eval_table({f"{run_dir.name} {k}": v for k, v in metrics["eval"].items()})
    print(f"Run directory: {run_dir}")
    return 0


def _print_eval_table(rows: dict[str, dict[str, float]]) -> None:
    from hf_nvib.runs.evaluate import format_table

    print(format_table(rows))


def _cmd_evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    from hf_nvib.runs.evaluate import evaluate_model, evaluation_sets, load_checkpoint

    for f in (args.test_file, args.ood_file):
        if f is not None and not Path(f).is_file():
            raise CliError(f"file not found: {f} (pass an existing data file)")
    data_kwargs: dict[str, Any] = {}
    if args.test_file:
        data_kwargs["data_files"] = {args.split: args.test_file}
    elif args.dataset:
        data_kwargs.update(dataset_name=args.dataset, dataset_config=args.dataset_config)
    for name in ("text_column", "source_column", "target_column"):
        if getattr(args, name):
            data_kwargs[name] = getattr(args, name)
    sets = evaluation_sets(
        args.task,
        split=args.split,
        limit=args.limit,
        ood=args.ood,
        ood_file=args.ood_file,
        **data_kwargs,
    )
    thresholds = args.prune_threshold or [None]
    if any(t is not None and not t >= 0 for t in thresholds):
        raise CliError(f"--prune-threshold values must be >= 0, got {thresholds}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for path in args.models:
        model, tokenizer = load_checkpoint(path)
        for threshold in thresholds:
            key = path
            if threshold is not None:
                if not hasattr(model.config, "nvib_prune_threshold"):
                    raise CliError(f"--prune-threshold needs NVIB models; {path} is a plain model")
                model.config.nvib_prune_threshold = threshold
                key = f"{path} @{threshold:g}"
            results[key] = {
                name: evaluate_model(
                    model,
                    tokenizer,
                    data,
                    batch_size=args.batch_size,
                    max_source_length=args.max_source_length,
                    max_target_length=args.max_target_length,
                    num_beams=args.num_beams,
                ).metrics
                for name, data in sets.items()
            }
    rows = {f"{Path(m).name} {s}": v for m, per_set in results.items() for s, v in per_set.items()}
    _print_eval_table(rows)
    output = args.output
    if output is None and len(args.models) == 1 and Path(args.models[0]).is_dir():
        output = Path(args.models[0]) / "eval_results.json"
    if output is not None:
        data = results[args.models[0]] if list(results) == args.models[:1] else results
        Path(output).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"Metrics written to {output}")
    return 0


def _length_histogram(model_path: str, length: int | None) -> dict[str, int]:
    if length is not None:
        if length < 1:
            raise CliError(f"--length must be >= 1, got {length}")
        return {str(length): 1}
    run_config = Path(model_path) / "run_config.json"
    if run_config.is_file():
        histogram = json.loads(run_config.read_text()).get("source_length_histogram")
        if histogram:
            return histogram
    raise CliError(
        f"no source-length histogram in {run_config} (the model was not trained with "
        "`hf-nvib train`): pass --length N to fix the number of latent components"
    )


def _cmd_sample(args: argparse.Namespace, argv: list[str]) -> int:
    from hf_nvib.evaluation.sampling import sample_from_prior
    from hf_nvib.runs.evaluate import load_checkpoint

    if args.num_samples < 1:
        raise CliError(f"--num-samples must be >= 1, got {args.num_samples}")
    histogram = _length_histogram(args.model, args.length)
    model, tokenizer = load_checkpoint(args.model)
    samples = sample_from_prior(
        model,
        tokenizer,
        histogram,
        num_samples=args.num_samples,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
    )
    for i, s in enumerate(samples):
        print(f"[{i}] (N={s.length}) {s.text}")
    if args.output:
        Path(args.output).write_text(
            json.dumps([dataclasses.asdict(s) for s in samples], indent=2, ensure_ascii=False)
        )
    return 0


def _cmd_interpolate(args: argparse.Namespace, argv: list[str]) -> int:
    from hf_nvib.evaluation.interpolation import interpolate
    from hf_nvib.runs.evaluate import load_checkpoint

    if args.steps < 2:
        raise CliError(f"--steps must be >= 2 (the two endpoints), got {args.steps}")
    model, tokenizer = load_checkpoint(args.model)
    path = interpolate(
        model,
        tokenizer,
        args.sentence_a,
        args.sentence_b,
        steps=args.steps,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
    )
    for step in path:
        print(f"τ={step.tau:.2f} ({step.num_components:3d} components)  {step.text}")
    if args.output:
        Path(args.output).write_text(
            json.dumps([dataclasses.asdict(s) for s in path], indent=2, ensure_ascii=False)
        )
    return 0


def _cmd_demo(args: argparse.Namespace, argv: list[str]) -> int:
    from hf_nvib.runs.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        model=args.model,
        output_dir=args.output_dir,
        steps=args.steps,
        pretrain_steps=args.pretrain_steps,
        quick=args.quick,
        seed=args.seed,
        progress=args.progress,
    )
    report = run_demo(cfg)
    print(f"Report: {report}")
    return 0


def _cmd_push(args: argparse.Namespace, argv: list[str]) -> int:
    from hf_nvib.hub.cli_push import run_push

    return run_push(args)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless it is None/False or the help already states one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False) or "default:" in text or "%(default)" in text:
            return text
        return super()._get_help_string(action)


def _add_eval_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        choices=("denoise", "translate"),
        default="denoise",
        help="denoise: reconstruction of clean text; translate: source → target",
    )
    p.add_argument("--split", default="test", help="split of the in-domain set (default: test)")
    p.add_argument("--test-file", help="local in-domain data instead of the bundled corpus")
    p.add_argument("--dataset", help="a datasets name instead of the bundled corpus")
    p.add_argument("--dataset-config", help="configuration of --dataset")
    p.add_argument("--text-column", help="text column (denoise)")
    p.add_argument("--source-column", help="source column (translate)")
    p.add_argument("--target-column", help="target column (translate)")
    p.add_argument("--limit", type=int, default=200, help="examples per set")
    p.add_argument(
        "--ood",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also evaluate the out-of-domain set (denoise only)",
    )
    p.add_argument("--ood-file", help="out-of-domain sentences, one per line (default: fortunes)")
    p.add_argument("--batch-size", type=int, default=32, help="examples per forward")
    p.add_argument("--max-source-length", type=int, default=128, help="truncate sources")
    p.add_argument(
        "--max-target-length", type=int, default=128, help="truncate references and generation"
    )
    p.add_argument("--num-beams", type=int, default=1, help="1: greedy decoding")
    p.add_argument("--output", help="JSON file for the metrics (default: MODEL/eval_results.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hf-nvib",
        description="NVIB (nonparametric variational information bottleneck) for BART and T5: "
        "train, evaluate, sample from the prior, interpolate, and run the offline demo.",
        epilog="Run `hf-nvib COMMAND --help` for the options of a command. "
        "Start with `hf-nvib demo`.",
    )
    parser.add_argument("--version", action="version", version=f"hf-nvib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fmt = _DefaultsFormatter

    p = sub.add_parser(
        "train",
        help="fine-tune (or train) a model with NVIB",
        description="Train a BART/T5 with NVIB (or --plain) and write a run "
        "directory: checkpoint, tokenizer, metrics.json, plots, README.md model "
        "card, run_config.json. With no flags: a small BART on the bundled corpus.",
    )
    _add_train_arguments(p)

    p = sub.add_parser(
        "evaluate",
        help="BLEU/chrF/ROUGE/EM + CE, KL, kept vectors of checkpoints",
        formatter_class=fmt,
        description="Evaluate one or more checkpoints (plain or NVIB) on the "
        "in-domain and out-of-domain sets; prints a table, writes JSON.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="run directory or hub id")
    _add_eval_data_arguments(p)
    p.add_argument(
        "--prune-threshold",
        type=float,
        nargs="+",
        default=None,
        metavar="T",
        help="NVIB models: evaluate with these pruning thresholds on α (one row each: the "
        "compression/quality curve); default: the threshold saved with the model",
    )

    p = sub.add_parser(
        "sample",
        help="generate from the NVIB prior",
        formatter_class=fmt,
        description="Draw latent mixtures from the prior (length from the "
        "training length histogram, components from N(prior_mu, prior_var), "
        "π ~ Dir(α₀, δ…δ)) and decode them.",
    )
    p.add_argument("model", metavar="MODEL", help="NVIB run directory")
    p.add_argument("--num-samples", type=int, default=5, help="sentences to sample")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed: same output)")
    p.add_argument(
        "--length",
        type=int,
        default=None,
        help="fixed number of latent components (default: drawn from the run's "
        "source-length histogram)",
    )
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest decoded output")
    p.add_argument("--num-beams", type=int, default=1, help="1: greedy decoding")
    p.add_argument("--output", help="also write the samples to this JSON file")

    p = sub.add_parser(
        "interpolate",
        help="decode a path between two sentences",
        formatter_class=fmt,
        description="Re-weight the union of the two sentences' mixture "
        "components (π_A·(1−τ), π_B·τ, one shared prior slot) and decode each τ.",
    )
    p.add_argument("model", metavar="MODEL", help="NVIB run directory")
    p.add_argument("sentence_a", metavar="SENTENCE_A")
    p.add_argument("sentence_b", metavar="SENTENCE_B")
    p.add_argument("--steps", type=int, default=5, help="number of τ values, endpoints included")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest decoded output")
    p.add_argument("--num-beams", type=int, default=1, help="1: greedy decoding")
    p.add_argument("--output", help="also write the path to this JSON file")

    p = sub.add_parser(
        "demo",
        help="the offline end-to-end demo (report.md with plots)",
        formatter_class=fmt,
        description="Pretrain (or take --model) a plain BART, convert it to NVIB "
        "at the identity and check the equivalence, fine-tune NVIB and plain "
        "twins, evaluate in/out of domain, sample, interpolate, write report.md.",
    )
    p.add_argument(
        "--model",
        default=None,
        help="plain BART/T5 to start from (default: pretrain a small BART on the bundled corpus)",
    )
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument(
        "--steps", type=int, default=None, help="fine-tuning steps (default: 800, quick: 4)"
    )
    p.add_argument(
        "--pretrain-steps",
        type=int,
        default=None,
        help="pretraining steps of the default small BART (default: 1200, quick: 4)",
    )
    p.add_argument("--quick", action="store_true", help="tiny configuration (seconds), for tests")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed: same output)")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show progress bars"
    )

    try:
        from hf_nvib.hub.cli_push import add_push_arguments
    except ImportError:
        pass
    else:
        p = sub.add_parser(
            "push",
            help="push a run directory to the Hugging Face Hub",
            description="Upload a run directory (checkpoint, card, plots) to the Hub.",
        )
        add_push_arguments(p)
    return parser


HANDLERS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "sample": _cmd_sample,
    "interpolate": _cmd_interpolate,
    "demo": _cmd_demo,
    "push": _cmd_push,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return HANDLERS[args.command](args, argv)
    except KeyboardInterrupt:
        print(f"hf-nvib {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("HF_NVIB_DEBUG") or not _user_error(err):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"hf-nvib {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _user_error(err: Exception) -> bool:
    """Problems with the user's input (not bugs): shown as one line."""
    return isinstance(err, CliError | ValueError | FileNotFoundError | NotADirectoryError | OSError)


if __name__ == "__main__":
    sys.exit(main())
