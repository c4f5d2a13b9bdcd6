"""Settings of one training run (``hf-nvib train`` flags), importable without torch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["NVIB_OPTION_FIELDS", "RunConfig", "default_output_dir"]

NVIB_OPTION_FIELDS = {
    "kappa": "nvib_kappa",
    "alpha_tau": "nvib_alpha_tau",
    "stdev_tau": "nvib_stdev_tau",
    "mu_tau": "nvib_mu_tau",
    "delta": "nvib_delta",
    "lambda_gaussian": "nvib_lambda_gaussian",
    "lambda_dirichlet": "nvib_lambda_dirichlet",
    "prune_threshold": "nvib_prune_threshold",
    "eval_attention": "nvib_eval_attention",
}


def default_output_dir(prefix: str = "runs") -> Path:
    return Path(prefix) / time.strftime("%Y%m%d-%H%M%S")


@dataclass
class RunConfig:
    """Every setting of ``hf-nvib train`` (the CLI flags are these names with dashes)."""

    # model
    model: str | None = None  # hub id / local dir (plain BART/T5 or NVIB); None: small BART
    plain: bool = False  # train the plain backbone (no NVIB): the baseline
    # data
    task: str = "denoise"
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    text_column: str | None = None
    source_column: str | None = None
    target_column: str | None = None
    max_train_samples: int | None = None
    max_source_length: int = 64
    max_target_length: int = 64
    mask_prob: float = 0.1
    delete_prob: float = 0.05
    infill_prob: float = 0.05
    # NVIB
    lambda_gaussian: float = 0.01
    lambda_dirichlet: float = 1.0
    kl_gaussian_schedule: str = "linear:0.1:0.5"
    kl_dirichlet_schedule: str = "linear:0.1:0.5"
    alpha_tau: float = 10.0
    stdev_tau: float = 0.0
    mu_tau: float = 1.0
    delta: float = 1.0
    kappa: int = 1
    prune_threshold: float = 0.1
    eval_attention: str = "denoising"
    # training
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float | None = None  # None: 2e-3 from scratch, 1e-4 from a checkpoint
    nvib_learning_rate: float | None = None  # None: learning_rate
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    seed: int = 0
    logging_steps: int | None = None  # None: steps / 20
    eval_steps: int | None = None  # None: steps / 5
    validation_samples: int = 128
    # evaluation after training
    final_eval: bool = True  # score the in-domain / out-of-domain sets and plot the latents
    eval_samples: int = 200
    eval_split: str = "test"
    ood_file: str | None = None
    num_beams: int = 1
    # embedded default model (no --model)
    vocab_size: int = 4000
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 512
    tokenizer_samples: int = 20000
    # output
    output_dir: str | None = None
    progress: bool = True
    card: bool = True
    command: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Raise ValueError with the offending flag for values argparse cannot check."""
        from hf_nvib.data import TASKS
        from hf_nvib.training import parse_schedule

        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        positive = (
            "steps",
            "batch_size",
            "max_source_length",
            "max_target_length",
            "vocab_size",
            "d_model",
            "layers",
            "heads",
            "ffn_dim",
            "kappa",
            "validation_samples",
            "eval_samples",
            "num_beams",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.d_model % self.heads:
            raise ValueError(
                f"--d-model ({self.d_model}) must be divisible by --heads ({self.heads})"
            )
        for name in ("learning_rate", "nvib_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        for flag in ("kl_gaussian_schedule", "kl_dirichlet_schedule"):
            try:
                parse_schedule(getattr(self, flag))
            except ValueError as err:
                raise ValueError(f"--{flag.replace('_', '-')}: {err}") from None
        if (self.train_file or self.dataset) is None and (self.validation_file or self.test_file):
            raise ValueError("--validation-file/--test-file need --train-file (or use --dataset)")
        if self.train_file and self.dataset:
            raise ValueError("pass either --train-file (local data) or --dataset (hub), not both")
        for name in ("train_file", "validation_file", "test_file", "ood_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise FileNotFoundError(
                    f"--{name.replace('_', '-')} {value}: file not found (pass an existing "
                    ".jsonl/.json/.csv/.parquet file)"
                )

    def nvib_options(self) -> dict[str, Any]:
        return {cfg_name: getattr(self, name) for name, cfg_name in NVIB_OPTION_FIELDS.items()}
