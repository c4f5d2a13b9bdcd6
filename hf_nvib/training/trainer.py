"""A Seq2SeqTrainer that logs the NVIB loss parts next to the loss.

Why a subclass and not a callback: `on_log` runs after `log_history` and the reporting
integrations have seen the logs, so extra keys must be merged inside `Trainer.log`. Why a
forward hook: `Seq2SeqTrainer.prediction_step` with `predict_with_generate` calls the model
directly (not `compute_loss`), so the only place every labelled forward passes through is the
model itself.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn
from transformers import Seq2SeqTrainer

from hf_nvib.training.callback import find_nvib_model

# Output fields of an NVIB model forward with labels that are averaged into the logs.
LOGGED_FIELDS = ("ce_loss", "kl_gaussian", "kl_dirichlet", "kept_proportion", "alpha_sum")
# Model buffers holding the annealing weights; logged as used by the forwards, not as they are at
# log time (the callback may already have set the next step's weights by then).
WEIGHT_BUFFERS = ("kl_gaussian_weight", "kl_dirichlet_weight")


class _RunningMeans:
    """Sums and counts of scalar outputs per field, reset after each report."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, name: str, value: torch.Tensor) -> None:
        self.sums[name] += float(value.detach().float().mean())
        self.counts[name] += 1

    def pop_means(self, reduce_across_processes) -> dict[str, float]:
        """Means over everything added since the last call, averaged over processes."""
        names = sorted(set(LOGGED_FIELDS) | set(WEIGHT_BUFFERS) | set(self.sums))
        totals = torch.tensor(
            [[self.sums.get(n, 0.0), float(self.counts.get(n, 0))] for n in names],
            dtype=torch.float64,
        )
        totals = reduce_across_processes(totals)
        self.sums.clear()
        self.counts.clear()
        return {
            name: float(total / count)
            for name, (total, count) in zip(names, totals.tolist(), strict=True)
            if count > 0
        }


class NvibSeq2SeqTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose train and eval logs carry CE, KL_G, KL_D, KL weights, kept proportion.

    Accepts the same arguments as `Seq2SeqTrainer`. The model (possibly wrapped by PEFT) must
    contain an NVIB model, i.e. a module with `set_kl_weights`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._nvib_stats = {"train": _RunningMeans(), "eval": _RunningMeans()}
        self._nvib_hook = find_nvib_model(self.model).register_forward_hook(
            self._record_nvib_outputs
        )

    def _record_nvib_outputs(self, module: nn.Module, _inputs: Any, outputs: Any) -> None:
        """Collect the loss parts of every labelled forward (generate steps carry no ce_loss)."""
        if getattr(outputs, "ce_loss", None) is None:
            return
        stats = self._nvib_stats["train" if module.training else "eval"]
        for name in LOGGED_FIELDS:
            value = getattr(outputs, name, None)
            if value is not None:
                stats.add(name, value)
        for name in WEIGHT_BUFFERS:
            stats.add(name, getattr(module, name))

    def _reduce(self, totals: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes <= 1:
            return totals
        reduced = self.accelerator.reduce(totals.to(self.accelerator.device), reduction="sum")
        return reduced.cpu()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Merge the training means into the periodic training log (the one carrying `loss`)."""
        if "loss" in logs and not any(key.startswith("eval_") for key in logs):
            logs.update(self._nvib_stats["train"].pop_means(self._reduce))
        super().log(logs, start_time)

    def evaluation_loop(self, *args: Any, **kwargs: Any):
        """Add the NVIB means of this evaluation pass to its metrics, with the metric prefix."""
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        self._nvib_stats["eval"].pop_means(lambda t: t)  # drop anything left from elsewhere
        output = super().evaluation_loop(*args, **kwargs)
        for name, value in self._nvib_stats["eval"].pop_means(self._reduce).items():
            output.metrics[f"{prefix}_{name}"] = value
        return output
