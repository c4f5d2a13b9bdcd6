"""`hf-nvib` end to end on a tiny configuration: train → evaluate → sample → interpolate,
help texts, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tiny_models import make_tiny_bart

from hf_nvib.cli import build_parser, main

pytestmark = pytest.mark.xdist_group("cli")

TINY = [
    "--steps",
    "3",
    "--d-model",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--ffn-dim",
    "64",
    "--vocab-size",
    "300",
    "--tokenizer-samples",
    "400",
    "--max-train-samples",
    "100",
    "--validation-samples",
    "4",
    "--eval-samples",
    "6",
    "--batch-size",
    "4",
    "--max-source-length",
    "24",
    "--max-target-length",
    "24",
    "--no-progress",
]


def _numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, float | int) and not isinstance(tree, bool):
        yield tree


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--output-dir", str(out)]) == 0
    return out


def test_train_writes_a_complete_run_directory(run_dir):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "metrics.json",
        "run_config.json",
        "trainer_state.json",
        "README.md",
        "plots/training_curves.png",
        "plots/latent_pca.png",
        "plots/token_weights.png",
        "plots/alpha_histogram.png",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "nvib" and metrics["train"]["steps"] == 3
    for set_name in ("in_domain", "out_of_domain"):
        m = metrics["eval"][set_name]
        for key in (
            "bleu",
            "chrf",
            "rougeL",
            "exact_match",
            "ce",
            "perplexity",
            "kl_gaussian",
            "kl_dirichlet",
            "kept_vectors",
            "kept_proportion",
            "alpha_sum",
        ):
            assert key in m, key
        assert 0.0 < m["kept_proportion"] <= 1.0 and m["num_sentences"] == 6
    assert all(math.isfinite(x) for x in _numbers(metrics))
    config = json.loads((run_dir / "run_config.json").read_text())
    assert config["command"].startswith("hf-nvib train --steps 3")
    assert config["steps"] == 3 and config["source_length_histogram"]
    text = (run_dir / "run_config.json").read_text() + (run_dir / "README.md").read_text()
    assert str(run_dir.parent) not in text  # no absolute paths
    assert json.loads((run_dir / "config.json").read_text())["model_type"] == "nvib_bart"


def test_evaluate_prints_a_table_and_writes_json(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run_dir), "--limit", "5", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "in_domain" in printed and "out_of_domain" in printed and "kept %" in printed
    results = json.loads(out.read_text())
    assert set(results) == {"in_domain", "out_of_domain"}
    assert results["in_domain"]["num_sentences"] == 5
    assert all(math.isfinite(x) for x in _numbers(results))


def test_evaluate_prune_threshold_sweep(run_dir, tmp_path, capsys):
    out = tmp_path / "sweep.json"
    argv = ["evaluate", str(run_dir), "--limit", "4", "--no-ood", "--output", str(out)]
    assert main([*argv, "--prune-threshold", "0", "1e30"]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {f"{run_dir} @0", f"{run_dir} @1e+30"}
    kept = {k: v["in_domain"]["kept_proportion"] for k, v in results.items()}
    assert kept[f"{run_dir} @0"] == 1.0
    # Only the prior survives a huge threshold: one slot of (tokens + 1) per sentence.
    assert 0 < kept[f"{run_dir} @1e+30"] < 0.2
    assert _error([*argv, "--prune-threshold", "-1"], capsys).endswith("got [-1.0]")


def test_token_alphas_account_for_the_kept_vectors(run_dir):
    """The histogram's α's are exactly the token slots the kept count is made of."""
    from hf_nvib.runs.evaluate import evaluate_model, evaluation_sets, load_checkpoint

    model, tokenizer = load_checkpoint(str(run_dir))
    data = evaluation_sets("denoise", limit=6, ood=False)["in_domain"]
    first = evaluate_model(model, tokenizer, data, batch_size=4, max_source_length=24)
    log_alpha = first.token_log_alpha
    assert log_alpha is not None and log_alpha.numel() == sum(first.lengths)
    threshold = float(log_alpha.exp().median())  # prune about half of the tokens
    model.config.nvib_prune_threshold = threshold
    second = evaluate_model(model, tokenizer, data, batch_size=4, max_source_length=24)
    n = len(second.lengths)
    kept_tokens = int((log_alpha.exp() > threshold).sum())
    assert 0 < kept_tokens < log_alpha.numel()
    # kept slots = kept tokens + one prior per sentence
    assert second.metrics["kept_vectors"] * n == pytest.approx(kept_tokens + n)
    assert torch.equal(second.token_log_alpha, log_alpha)  # pruning does not move α


def test_sample_is_deterministic(run_dir, tmp_path, capsys):
    outs = []
    for i in range(2):
        path = tmp_path / f"s{i}.json"
        args = [
            "sample",
            str(run_dir),
            "--num-samples",
            "3",
            "--seed",
            "7",
            "--max-new-tokens",
            "6",
            "--output",
            str(path),
        ]
        assert main(args) == 0
        outs.append(json.loads(path.read_text()))
    assert outs[0] == outs[1] and len(outs[0]) == 3
    assert "[2] (N=" in capsys.readouterr().out


def test_interpolate_prints_the_path(run_dir, capsys):
    args = [
        "interpolate",
        str(run_dir),
        "In the beginning.",
        "Jesus wept.",
        "--steps",
        "3",
        "--max-new-tokens",
        "6",
    ]
    assert main(args) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("τ=")]
    assert [ln[:6] for ln in lines] == ["τ=0.00", "τ=0.50", "τ=1.00"]


@pytest.mark.parametrize(
    "command", ["train", "evaluate", "sample", "interpolate", "demo", "push", None]
)
def test_help_of_every_command(command, capsys):
    argv = [command, "--help"] if command else ["--help"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: hf-nvib" in text
    expected = {
        "train": "--kl-gaussian-schedule",
        "evaluate": "--ood-file",
        "sample": "--num-samples",
        "push": "repo_id",
        "interpolate": "--steps",
        "demo": "--quick",
        None: "demo",
    }
    assert expected[command] in text


def test_every_subcommand_is_wired():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"train", "evaluate", "sample", "interpolate", "demo"} <= set(sub.choices)


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    # progress bars of checkpoint loading may precede it; the error itself is one line
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert "Traceback" not in err and len(errors) == 1 and errors[0].startswith("hf-nvib ")
    return errors[0]


def test_errors_are_one_line_with_exit_2(tmp_path, capsys):
    err = _error(["evaluate", str(tmp_path / "missing")], capsys)
    assert "model directory not found" in err and "missing" in err
    err = _error(["train", "--kl-gaussian-schedule", "wobbly:1"], capsys)
    assert "--kl-gaussian-schedule" in err and "unknown KL schedule kind" in err
    err = _error(["train", "--train-file", str(tmp_path / "nope.jsonl")], capsys)
    assert "--train-file" in err and "file not found" in err
    err = _error(["train", "--steps", "0"], capsys)
    assert "--steps must be >= 1" in err
    err = _error(["train", "--d-model", "30", "--heads", "4"], capsys)
    assert "divisible" in err


def test_incompatible_checkpoints(tmp_path, capsys):
    plain = make_tiny_bart(tmp_path)
    err = _error(["sample", str(plain), "--length", "3"], capsys)
    assert "needs an NVIB checkpoint" in err and "hf-nvib train" in err
    err = _error(["sample", str(plain)], capsys)
    assert "--length" in err
    err = _error(["interpolate", str(plain), "a", "b", "--steps", "1"], capsys)
    assert "--steps must be >= 2" in err
    (tmp_path / "empty").mkdir()
    err = _error(["evaluate", str(tmp_path / "empty")], capsys)
    assert "config.json" in err


def test_usage_errors_exit_2_on_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--steps", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--steps" in err and "--help" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
