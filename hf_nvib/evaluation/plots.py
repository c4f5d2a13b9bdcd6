"""PNG plots of an NVIB run (matplotlib, Agg backend: no display needed).

Four views of the bottleneck: which vectors survive (π per token), where the token α's lie
against the pruning threshold and δ (what decides how much a threshold prunes), how
compression and the KL terms evolve during training (from ``trainer.state.log_history``), and
how the latent space is organised (PCA of per-sentence mean latent vectors, coloured by length).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

__all__ = ["plot_alpha_histogram", "plot_latent_pca", "plot_token_weights", "plot_training_curves"]

# (log key, label) drawn by plot_training_curves, one panel each; train and eval_ variants.
CURVES = (
    ("ce_loss", "cross-entropy"),
    ("kl_gaussian", "KL Gaussian"),
    ("kl_dirichlet", "KL Dirichlet"),
    ("kept_proportion", "kept proportion"),
    ("kl_gaussian_weight", "KL weights (annealing)"),
)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_token_weights(weights: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Bar chart of π over the slots (prior first) of a few sentences; pruned slots hatched.

    ``weights``: items of :func:`hf_nvib.runs.evaluate.token_weights` (tokens, pi, kept).
    """
    if not weights:
        raise ValueError("no sentences to plot")
    fig, axes = plt.subplots(len(weights), 1, figsize=(10, 2.4 * len(weights)), squeeze=False)
    for ax, item in zip(axes[:, 0], weights, strict=True):
        tokens, pi, kept = item["tokens"], item["pi"], item["kept"]
        n = min(len(tokens), len(pi))
        colours = [
            "tab:orange" if i == 0 else ("tab:blue" if kept[i] else "lightgrey") for i in range(n)
        ]
        bars = ax.bar(range(n), pi[:n], color=colours)
        for i, bar in enumerate(bars):
            if not kept[i]:
                bar.set_hatch("//")
        ax.set_xticks(range(n))
        ax.set_xticklabels(tokens[:n], rotation=60, fontsize=7, ha="right")
        num_kept = sum(bool(k) for k in kept[:n])
        ax.set_title(f"{num_kept}/{n} slots kept — {item['sentence'][:70]}", fontsize=9)
        ax.set_ylabel("π")
    return _save(fig, path)


def plot_training_curves(log_history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Training (and evaluation, dashed) curves of CE, KL terms, kept proportion, KL weights."""
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
    for ax, (key, label) in zip(axes, CURVES, strict=True):
        keys = [key, "kl_dirichlet_weight"] if key == "kl_gaussian_weight" else [key]
        drawn = False
        for k in keys:
            for prefix, style in (("", "-"), ("eval_", "--")):
                points = [
                    (e["step"], e[prefix + k])
                    for e in log_history
                    if prefix + k in e and "step" in e and math.isfinite(float(e[prefix + k]))
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    name = f"{'eval ' if prefix else 'train '}{k.replace('_weight', '')}"
                    ax.plot(xs, ys, style, marker=".", label=name)
                    drawn = True
        ax.set_title(label)
        ax.set_xlabel("step")
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_alpha_histogram(
    log_alpha: torch.Tensor, path: str | Path, *, threshold: float, delta: float | None = None
) -> Path:
    """Histogram of the token components' α (log axis), with the pruning threshold and δ."""
    values = torch.as_tensor(log_alpha, dtype=torch.float64).flatten()
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        raise ValueError("no finite log α to plot")
    log10 = (values / math.log(10.0)).tolist()
    pruned = float((values.exp() <= threshold).double().mean())
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.hist(log10, bins=60, color="tab:blue")
    if threshold > 0:
        label = f"prune threshold {threshold:g} ({pruned:.1%} of tokens at or below)"
        ax.axvline(math.log10(threshold), color="tab:red", ls="--", label=label)
    if delta is not None and delta > 0:
        ax.axvline(math.log10(delta), color="tab:orange", ls=":", label=f"δ = {delta:g}")
    ax.set_xlabel("log₁₀ α of a token component")
    ax.set_ylabel("token components")
    ax.set_title(f"α over {values.numel()} token components (prior excluded)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_latent_pca(
    pooled_means: torch.Tensor, lengths: Sequence[int], path: str | Path, *, title: str = ""
) -> Path:
    """2-D PCA (SVD of centred per-sentence latent means), points coloured by length."""
    x = torch.as_tensor(pooled_means, dtype=torch.float64)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"need (n >= 2, P) pooled means, got {tuple(x.shape)}")
    x = x - x.mean(dim=0, keepdim=True)
    _, s, v = torch.linalg.svd(x, full_matrices=False)
    coords = x @ v[:2].T if v.shape[0] >= 2 else torch.cat([x @ v[:1].T, torch.zeros(len(x), 1)], 1)
    explained = [*(s**2 / (s**2).sum()).tolist(), 0.0, 0.0]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sc = ax.scatter(coords[:, 0], coords[:, 1], c=list(lengths), cmap="viridis", s=14)
    fig.colorbar(sc, ax=ax, label="source length (tokens)")
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    ax.set_title(title or "PCA of mean latent vectors")
    return _save(fig, path)
