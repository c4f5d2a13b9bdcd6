"""A Seq2SeqTrainer that logs the NVIB loss parts next to the loss.

Why a subclass and not a callback: `on_log` runs after `log_history` and the reporting
integrations have seen the logs, so extra keys must be merged inside `Trainer.log`. Why a
forward hook: `Seq2SeqTrainer.prediction_step` with `predict_with_generate` calls the model
directly (not `compute_loss`), so the only place every labelled forward passes through is the
model itself.

Hub pushes (`push_to_hub=True`, `trainer.push_to_hub()`) publish the NVIB model card and never
`training_args.bin` or pickle weights: `create_model_card`, `_push_from_checkpoint` and
`push_to_hub` are overridden for that, otherwise following transformers' flow.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import HubStrategy, SaveStrategy
from transformers.utils import PushInProgress
from transformers.utils.hub import hf_api

from hf_nvib.training.callback import find_nvib_model

# Files copied from a checkpoint into output_dir before a checkpoint push (safetensors only).
CHECKPOINT_MODEL_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "adapter_config.json",
    "adapter_model.safetensors",
)  # fmt: skip

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


def nvib_layer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of every NVIB layer in ``model``."""
    from hf_nvib.nvib import NvibLayer

    return [
        p
        for module in model.modules()
        if isinstance(module, NvibLayer)
        for p in module.parameters()
        if p.requires_grad
    ]


def separate_parameter_groups(
    optimizer: torch.optim.Optimizer, params: list[nn.Parameter], *, lr: float
) -> None:
    """Move ``params`` out of their groups into copies of those groups with learning rate ``lr``.

    Must run before the LR scheduler is built (it records each group's initial LR) and before
    the first step (optimizer state is keyed by parameter, groups are not).
    """
    chosen = {id(p) for p in params}
    new_groups = []
    for group in optimizer.param_groups:
        moved = [p for p in group["params"] if id(p) in chosen]
        if moved:
            group["params"] = [p for p in group["params"] if id(p) not in chosen]
            new_groups.append({**group, "params": moved, "lr": lr})
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
    for group in new_groups:
        optimizer.add_param_group(group)


class NvibSeq2SeqTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose train and eval logs carry CE, KL_G, KL_D, KL weights, kept proportion.

    Accepts the same arguments as `Seq2SeqTrainer`, plus ``nvib_learning_rate``: a learning rate
    for the NVIB layer's own parameters (μ, log σ², log α projections), which start at the
    identity and must travel further than the pretrained weights (None: ``args.learning_rate``).
    It follows the same schedule. The model (possibly wrapped by PEFT) must contain an NVIB
    model, i.e. a module with `set_kl_weights`.
    """

    def __init__(self, *args: Any, nvib_learning_rate: float | None = None, **kwargs: Any) -> None:
        if nvib_learning_rate is not None and not nvib_learning_rate > 0:
            raise ValueError(f"nvib_learning_rate must be > 0, got {nvib_learning_rate}")
        self.nvib_learning_rate = nvib_learning_rate
        self._nvib_split_optimizer: torch.optim.Optimizer | None = None
        super().__init__(*args, **kwargs)
        self._nvib_stats = {"train": _RunningMeans(), "eval": _RunningMeans()}
        self._nvib_hook = find_nvib_model(self.model).register_forward_hook(
            self._record_nvib_outputs
        )

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Trainer's optimizer, with the NVIB layer's parameters in groups of their own LR."""
        given = self.optimizer
        optimizer = super().create_optimizer(model)
        unwrapped = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it in train()
        if self.nvib_learning_rate is None or unwrapped is self._nvib_split_optimizer:
            return optimizer  # e.g. a second train() reuses the optimizer already split
        if given is not None:
            raise ValueError(
                "nvib_learning_rate cannot be applied to an optimizer passed through "
                "`optimizers=`: give its NVIB parameters their own group instead"
            )
        nvib = find_nvib_model(self.model if model is None else model)
        separate_parameter_groups(
            optimizer, nvib_layer_parameters(nvib), lr=self.nvib_learning_rate
        )
        self._nvib_split_optimizer = optimizer
        return optimizer

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

    # -- Hub ----------------------------------------------------------------------------------
    def create_model_card(self, **kwargs: Any) -> None:
        """The NVIB card (library `hf-nvib`, NVIB hyper-parameters, eval metrics) as README.md;
        takes `Trainer.create_model_card`'s keywords."""
        if not self.is_world_process_zero():
            return
        from hf_nvib.hub.model_push import write_trainer_model_card

        write_trainer_model_card(self, **kwargs)

    def _upload(
        self,
        folder: str | Path,
        message: str,
        *,
        path_in_repo: str | None = None,
        keep_pickles: bool = False,
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
    ) -> Any:
        from hf_nvib.hub.push import folder_operations

        return hf_api().create_commit(
            repo_id=self.hub_model_id,
            operations=folder_operations(
                folder, path_in_repo=path_in_repo, keep_pickles=keep_pickles
            ),
            commit_message=message,
            token=token if token is not None else self.args.hub_token,
            revision=revision if revision is not None else self.args.hub_revision,
            run_as_future=not blocking,
        )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """As transformers': model files + tokenizer + card from `output_dir`, in the background."""
        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        busy = self.push_in_progress is not None and not self.push_in_progress.is_done()
        if busy and not self.args.hub_always_push:
            return
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        checkpoint, output_dir = Path(checkpoint_folder), Path(self.args.output_dir)
        names = list(CHECKPOINT_MODEL_FILES)
        index = checkpoint / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names += [index.name, *sorted(set(weight_map.values()))]
        for name in names:
            if (checkpoint / name).is_file():
                shutil.copy(checkpoint / name, output_dir / name)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        self.create_model_card(model_name=self._hub_model_name())
        if self.args.save_strategy == SaveStrategy.STEPS:
            message = f"Training in progress, step {self.state.global_step}"
        else:
            message = f"Training in progress, epoch {int(self.state.epoch or 0)}"
        jobs = [self._upload(output_dir, message, blocking=False)]
        if self.args.hub_strategy in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            in_repo = (
                "last-checkpoint"
                if self.args.hub_strategy == HubStrategy.CHECKPOINT
                else checkpoint.name
            )  # resuming needs the optimizer state: keep pickles, but not training_args.bin
            jobs.append(
                self._upload(
                    checkpoint,
                    f"{message}, checkpoint",
                    path_in_repo=in_repo,
                    keep_pickles=True,
                    blocking=False,
                )
            )
        if busy:
            self.push_in_progress.jobs.extend(jobs)
        else:
            self.push_in_progress = PushInProgress(jobs)

    def _hub_model_name(self) -> str:
        if self.args.hub_model_id is None:
            return Path(self.args.output_dir).name
        return self.args.hub_model_id.split("/")[-1]

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """As transformers': save, write the (NVIB) card, wait for checkpoint pushes, upload
        `output_dir` (without `training_args.bin`, pickles, `checkpoint-*`)."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        model_name = kwargs.pop("model_name", None)
        if model_name is None and self.args.should_save:
            model_name = self._hub_model_name()
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        model_tags = getattr(self.model, "model_tags", None)
        if model_tags:
            tags = kwargs.get("tags") or []
            tags = [tags] if isinstance(tags, str) else list(tags)
            kwargs["tags"] = tags + [t for t in model_tags if t not in tags]
        self.create_model_card(model_name=model_name, **kwargs)
        self._finish_current_push()
        return self._upload(
            self.args.output_dir,
            commit_message or "End of training",
            blocking=blocking,
            token=token,
            revision=revision,
        )
