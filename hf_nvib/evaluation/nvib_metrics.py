"""NVIB / VAE evaluation statistics from plain tensors (no model knowledge).

Definitions:

* ``ce``: token-level cross-entropy in nats, ``Σ NLL / Σ tokens`` over the whole set;
  ``perplexity = exp(ce)``.
* ``kl_gaussian``, ``kl_dirichlet``, ``alpha_sum``: means over sequences of the per-sequence
  values.
* ``kept_vectors``: mean number of non-pruned latent vectors per sequence;
  ``kept_proportion = Σ kept / Σ valid`` (pooled over the set, so long sequences weigh more).
* ``active_units`` (Burda et al. 2016, "Importance weighted autoencoders"): a latent dimension
  ``d`` is active when ``Var_x(m_d(x)) > threshold`` (default 0.01). NVIB's posterior is a set
  of vectors, so the per-sentence statistic ``m(x) ∈ R^P`` is the **mean-pooled posterior mean**:
  the (optionally weighted) average of the per-slot means ``μ_i`` over the slots the caller
  selects with a mask. The variance over sentences uses the unbiased ``N − 1`` denominator
  (as in He et al. 2019's implementation). Pass the mask of *data* slots (drop the prior slot,
  whose mean is the same for every sentence but whose pooling weight depends on the length)
  and, to pool over the posterior mixture, the weights ``π`` (then ``m(x) = E_q[z|x]`` up to
  the prior component).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "NvibMetricAccumulator",
    "active_units",
    "pooled_latent_means",
    "reconstruction_metrics",
]


def reconstruction_metrics(total_nll: float, total_tokens: int) -> dict[str, float]:
    """Token-level cross-entropy (nats) and perplexity from a summed NLL and a token count."""
    if total_tokens <= 0:
        raise ValueError(f"total_tokens must be > 0, got {total_tokens}")
    ce = float(total_nll) / int(total_tokens)
    try:
        perplexity = math.exp(ce)
    except OverflowError:
        perplexity = math.inf
    return {"ce": ce, "perplexity": perplexity}


def pooled_latent_means(
    means: Tensor, mask: Tensor | None = None, weights: Tensor | None = None
) -> Tensor:
    """Per-sequence pooled latent mean ``m(x)``: (B, L, P) → (B, P) in float64.

    ``mask`` (B, L) selects the slots to pool (True/1 = use); ``weights`` (B, L), e.g. ``π``,
    make it a weighted mean (normalised over the selected slots). A sequence with no selected
    slot (or zero total weight) gives NaN, which :func:`active_units` rejects.
    """
    if means.dim() != 3:
        raise ValueError(f"means must be (B, L, P), got shape {tuple(means.shape)}")
    means = means.detach().to(torch.float64)
    w = torch.ones(means.shape[:2], dtype=torch.float64, device=means.device)
    if mask is not None:
        w = w * mask.detach().to(device=means.device, dtype=torch.float64)
    if weights is not None:
        w = w * weights.detach().to(device=means.device, dtype=torch.float64)
    # Zero masked means first so that -inf/NaN in padded slots cannot leak through 0 * inf.
    masked = torch.where(w.unsqueeze(-1) > 0, means, torch.zeros_like(means))
    return (masked * w.unsqueeze(-1)).sum(dim=1) / w.sum(dim=1, keepdim=True)


def _active_units_from_pooled(pooled: Tensor, threshold: float) -> int:
    if pooled.dim() != 2 or pooled.shape[0] < 2:
        raise ValueError(
            f"active units need pooled means of at least 2 sequences, got shape "
            f"{tuple(pooled.shape)}"
        )
    if not torch.isfinite(pooled).all():
        raise ValueError("non-finite pooled latent mean (a sequence with no selected slot?)")
    variance = pooled.var(dim=0, unbiased=True)
    return int((variance > threshold).sum().item())


def active_units(means: Sequence[Tensor], threshold: float = 0.01) -> int:
    """Number of latent dimensions whose pooled mean varies across sentences by > threshold.

    ``means``: one tensor per sentence, ``(n_i, P)`` posterior means of the slots to pool
    (already masked: no padding, no prior), or ``(P,)`` if already pooled. Each is
    mean-pooled to ``m(x) ∈ R^P``; the result counts ``d`` with ``Var_x(m_d(x)) > threshold``
    (unbiased variance over the sentences). Needs at least 2 sentences.
    """
    pooled = []
    for i, m in enumerate(means):
        m = m.detach().to(torch.float64)
        if m.dim() == 1:
            pooled.append(m)
        elif m.dim() == 2 and m.shape[0] > 0:
            pooled.append(m.mean(dim=0))
        else:
            raise ValueError(f"sentence {i}: expected (n_i > 0, P) or (P,), got {tuple(m.shape)}")
    if len({p.shape[0] for p in pooled}) > 1:
        raise ValueError("all sentences must have the same latent size P")
    if len(pooled) < 2:
        raise ValueError(f"active units need at least 2 sentences, got {len(pooled)}")
    return _active_units_from_pooled(torch.stack([p.cpu() for p in pooled]), threshold)


class NvibMetricAccumulator:
    """Accumulates per-batch NVIB statistics over an evaluation set; see the module docstring.

    Call :meth:`update` once per batch with whatever is available (every argument is optional)
    and :meth:`compute` at the end; only the metrics whose inputs were given are returned.
    Under DDP each process accumulates its shard: :meth:`merge` the others' accumulators (e.g.
    gathered with ``torch.distributed.all_gather_object``) before computing.
    """

    def __init__(self, au_threshold: float = 0.01) -> None:
        self.au_threshold = au_threshold
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.nll_sum = 0.0
        self.num_tokens = 0
        self.kl_gaussian_sum = 0.0
        self.kl_gaussian_count = 0
        self.kl_dirichlet_sum = 0.0
        self.kl_dirichlet_count = 0
        self.kept_sum = 0
        self.valid_sum = 0
        self.kept_count = 0
        self.alpha_sum_sum = 0.0
        self.alpha_sum_count = 0
        self.pooled_means: list[Tensor] = []
        self.skipped_sequences = 0

    @staticmethod
    def _per_sequence(values: Tensor | Sequence[float], name: str) -> Tensor:
        t = torch.as_tensor(values).detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        if t.numel() == 0:
            raise ValueError(f"{name} is empty")
        return t

    def update(
        self,
        *,
        ce_sum: float | Tensor | None = None,
        num_tokens: int | Tensor | None = None,
        kl_gaussian: Tensor | None = None,
        kl_dirichlet: Tensor | None = None,
        num_kept: Tensor | None = None,
        num_valid: Tensor | None = None,
        alpha_sum: Tensor | None = None,
        latent_means: Tensor | None = None,
        latent_mask: Tensor | None = None,
        latent_weights: Tensor | None = None,
    ) -> None:
        """Add one batch.

        Args:
            ce_sum: summed token NLL of the batch (nats), not a mean: the model's ``ce_loss``
                times its number of target tokens.
            num_tokens: number of target tokens behind ``ce_sum`` (labels != -100).
            kl_gaussian, kl_dirichlet, alpha_sum: (B,) per-sequence values.
            num_kept, num_valid: (B,) kept and existing latent slots per sequence.
            latent_means: (B, L, P) posterior means ``μ``; with ``latent_mask`` (B, L) of the
                data slots to pool and optional ``latent_weights`` (B, L) (e.g. ``π``).
                Sequences with no selected slot are skipped (counted in
                ``skipped_sequences``). For kappa = 1 without compaction, the data slots are
                ``torch.cat([zeros(B, 1), input_attention_mask], 1)`` (slot 0 is the prior).
        """
        if (ce_sum is None) != (num_tokens is None):
            raise ValueError("ce_sum and num_tokens must be given together")
        if ce_sum is not None:
            self.nll_sum += float(ce_sum)
            self.num_tokens += int(num_tokens)
        if kl_gaussian is not None:
            t = self._per_sequence(kl_gaussian, "kl_gaussian")
            self.kl_gaussian_sum += float(t.sum())
            self.kl_gaussian_count += t.numel()
        if kl_dirichlet is not None:
            t = self._per_sequence(kl_dirichlet, "kl_dirichlet")
            self.kl_dirichlet_sum += float(t.sum())
            self.kl_dirichlet_count += t.numel()
        if (num_kept is None) != (num_valid is None):
            raise ValueError("num_kept and num_valid must be given together")
        if num_kept is not None:
            kept = self._per_sequence(num_kept, "num_kept")
            valid = self._per_sequence(num_valid, "num_valid")
            if kept.shape != valid.shape:
                raise ValueError("num_kept and num_valid must have the same shape")
            self.kept_sum += int(kept.sum().round())
            self.valid_sum += int(valid.sum().round())
            self.kept_count += kept.numel()
        if alpha_sum is not None:
            t = self._per_sequence(alpha_sum, "alpha_sum")
            self.alpha_sum_sum += float(t.sum())
            self.alpha_sum_count += t.numel()
        if latent_means is not None:
            pooled = pooled_latent_means(latent_means, latent_mask, latent_weights).cpu()
            finite = torch.isfinite(pooled).all(dim=-1)
            # A sequence with no selected slot has no m(x): it is left out of active units.
            self.skipped_sequences += int((~finite).sum())
            self.pooled_means.append(pooled[finite])
        elif latent_mask is not None or latent_weights is not None:
            raise ValueError("latent_mask/latent_weights given without latent_means")

    def merge(self, other: NvibMetricAccumulator) -> None:
        """Add another accumulator's totals to this one (e.g. from another process)."""
        for name in (
            "nll_sum",
            "num_tokens",
            "kl_gaussian_sum",
            "kl_gaussian_count",
            "kl_dirichlet_sum",
            "kl_dirichlet_count",
            "kept_sum",
            "valid_sum",
            "kept_count",
            "alpha_sum_sum",
            "alpha_sum_count",
            "skipped_sequences",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.pooled_means.extend(other.pooled_means)

    def compute(self) -> dict[str, float]:
        """Averages over everything accumulated (keys only for the statistics provided)."""
        out: dict[str, float] = {}
        if self.num_tokens > 0:
            out.update(reconstruction_metrics(self.nll_sum, self.num_tokens))
        if self.kl_gaussian_count:
            out["kl_gaussian"] = self.kl_gaussian_sum / self.kl_gaussian_count
        if self.kl_dirichlet_count:
            out["kl_dirichlet"] = self.kl_dirichlet_sum / self.kl_dirichlet_count
        if self.kept_count:
            out["kept_vectors"] = self.kept_sum / self.kept_count
            out["kept_proportion"] = self.kept_sum / self.valid_sum if self.valid_sum else math.nan
        if self.alpha_sum_count:
            out["alpha_sum"] = self.alpha_sum_sum / self.alpha_sum_count
        if self.pooled_means:
            pooled = torch.cat(self.pooled_means)
            if pooled.shape[0] >= 2:
                out["active_units"] = float(_active_units_from_pooled(pooled, self.au_threshold))
        return out
