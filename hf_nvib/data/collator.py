"""On-the-fly denoising collator: fresh noise every time an example is batched.

Why: static noise (fixed at dataset build time) lets a model memorise the corruption of each
example; re-noising per batch gives a new corruption every epoch, as in BART pre-training.
Use with ``Seq2SeqTrainingArguments(remove_unused_columns=False)`` so the text column reaches
the collator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from .noise import NoiseConfig, add_noise


@dataclass
class DenoisingCollator:
    """Noise ``features[i][text_column]``, tokenise source/target, pad via DataCollatorForSeq2Seq.

    The RNG stream is seeded by ``seed`` (and the DataLoader worker id, so workers differ)
    and advances with every batch: deterministic for a given batch order, fresh each epoch.
    """

    tokenizer: PreTrainedTokenizerBase
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    max_source_length: int = 128
    max_target_length: int = 128
    seed: int = 0
    text_column: str = "target"
    mask_token: str | None = None
    model: Any = None
    label_pad_token_id: int = -100
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"
    _rngs: dict[int, random.Random] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mask_token is None:
            self.mask_token = self.tokenizer.mask_token or "<mask>"
        self._pad = DataCollatorForSeq2Seq(
            self.tokenizer,
            model=self.model,
            label_pad_token_id=self.label_pad_token_id,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors=self.return_tensors,
        )

    def _rng(self) -> random.Random:
        try:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
        except ImportError:  # pragma: no cover - torch is a hard dependency
            info = None
        worker = info.id if info is not None else -1
        if worker not in self._rngs:
            self._rngs[worker] = random.Random(f"hf_nvib-collator:{self.seed}:{worker}")
        return self._rngs[worker]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if features and self.text_column not in features[0]:
            raise ValueError(
                f"DenoisingCollator needs a {self.text_column!r} text field; got "
                f"{', '.join(features[0])}. Build the data with build_task_dataset(..., "
                "noise=None) and train with remove_unused_columns=False."
            )
        rng = self._rng()
        clean = [str(f[self.text_column]) for f in features]
        noised = [add_noise(t, self.noise, rng, self.mask_token or "<mask>") for t in clean]
        enc = self.tokenizer(noised, max_length=self.max_source_length, truncation=True)
        labels = self.tokenizer(
            text_target=clean, max_length=self.max_target_length, truncation=True
        )["input_ids"]
        rows = [
            {"input_ids": ids, "attention_mask": mask, "labels": lab}
            for ids, mask, lab in zip(enc["input_ids"], enc["attention_mask"], labels, strict=True)
        ]
        return self._pad(rows)
