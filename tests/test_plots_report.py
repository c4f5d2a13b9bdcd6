"""Plots write valid PNGs from plain data; the comparison table picks the right rows."""

from __future__ import annotations

import pytest
import torch

from hf_nvib.evaluation.plots import (
    plot_alpha_histogram,
    plot_latent_pca,
    plot_token_weights,
    plot_training_curves,
)
from hf_nvib.evaluation.report import comparison
from hf_nvib.runs.evaluate import format_table

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_write_pngs(tmp_path):
    weights = [
        {
            "sentence": "a b",
            "tokens": ["<prior>", "a", "b"],
            "pi": [0.1, 0.9, 0.0],
            "kept": [True, True, False],
        },
    ]
    history = [
        {
            "step": 1,
            "ce_loss": 3.0,
            "kl_gaussian": 40.0,
            "kept_proportion": 1.0,
            "kl_gaussian_weight": 0.0,
            "kl_dirichlet_weight": 0.0,
        },
        {"step": 2, "eval_ce_loss": 2.5, "eval_kept_proportion": 0.8},
    ]
    paths = [
        plot_token_weights(weights, tmp_path / "w.png"),
        plot_training_curves(history, tmp_path / "c.png"),
        plot_latent_pca(torch.randn(20, 8), list(range(20)), tmp_path / "p.png"),
        plot_alpha_histogram(torch.randn(200), tmp_path / "a.png", threshold=0.1, delta=0.25),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 1000


def test_comparison_rows_and_table():
    nvib = {"eval": {"in_domain": {"bleu": 40.0, "kept_proportion": 0.6}}}
    plain = {"eval": {"in_domain": {"bleu": 50.0, "kept_proportion": 1.0}}}
    rows = comparison(nvib, plain)
    assert list(rows) == ["plain in_domain", "NVIB in_domain"]
    table = format_table(rows, markdown=True)
    assert "| NVIB in_domain | 40.00 |" in table and "60.0%" in table


def test_alpha_histogram_needs_finite_values(tmp_path):
    with pytest.raises(ValueError, match="no finite log α"):
        plot_alpha_histogram(torch.tensor([float("-inf"), float("nan")]), tmp_path / "a.png",
                             threshold=0.1)  # fmt: skip
