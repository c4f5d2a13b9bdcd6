"""Shared fixtures of the test_models_* files: tiny checkpoints built once per module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tiny_models import batch, make_tiny_bart, make_tiny_t5
from transformers import (
    AutoTokenizer,
    BartForConditionalGeneration,
    PreTrainedModel,
    T5ForConditionalGeneration,
)
from transformers.utils import logging as hf_logging

import hf_nvib

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
# Tiny models: one thread avoids OpenMP oversubscription on the 2-core CI box (10x slower).
torch.set_num_threads(1)


@dataclass
class Backbone:
    name: str
    path: Path
    plain_class: type[PreTrainedModel]
    nvib_class: type[PreTrainedModel]

    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.path)

    def inputs(self) -> dict[str, torch.Tensor]:
        return batch(self.tokenizer())

    def plain(self, **kwargs) -> PreTrainedModel:
        return self.plain_class.from_pretrained(self.path, **kwargs).eval()

    def nvib(self, **kwargs) -> PreTrainedModel:
        return self.nvib_class.from_pretrained(self.path, **kwargs).eval()


@pytest.fixture(name="backbone", scope="module", params=["bart", "t5"])
def backbone_fixture(request, tmp_path_factory) -> Backbone:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "bart":
        return Backbone(
            "bart",
            make_tiny_bart(root),
            BartForConditionalGeneration,
            hf_nvib.NvibBartForConditionalGeneration,
        )
    return Backbone(
        "t5", make_tiny_t5(root), T5ForConditionalGeneration, hf_nvib.NvibT5ForConditionalGeneration
    )


def labels_from(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
