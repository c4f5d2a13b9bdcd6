"""`pipeline("nvib-text2text-generation")`: text in, generated text out, for NVIB seq2seq models.

transformers 5 removed its `text2text-generation` task (it raises before consulting the
registry), so this package registers its own task name for the encoder-decoder workflow.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoModelForSeq2SeqLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

TASK = "nvib-text2text-generation"


class NvibText2TextGenerationPipeline(Pipeline):
    """Tokenise, `generate` (any generation keyword works), decode; one dict per output sequence.

    Returns `[{"generated_text": ...}]` for one input (one entry per `num_return_sequences`) and
    a list of such lists for a list of inputs.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    _pipeline_calls_generate = True

    def _sanitize_parameters(
        self, truncation: bool | None = None, max_source_length: int | None = None, **generate
    ) -> tuple[dict, dict, dict]:
        preprocess: dict[str, Any] = {}
        if truncation is not None:
            preprocess["truncation"] = truncation
        if max_source_length is not None:
            preprocess["max_length"] = max_source_length
        return preprocess, generate, {}

    def preprocess(self, text: str, truncation: bool = True, max_length: int | None = None):
        if not isinstance(text, str):
            raise TypeError(
                f"{TASK} takes a string or a list of strings, got {type(text).__name__}"
            )
        return self.tokenizer(
            text, truncation=truncation, max_length=max_length, return_tensors="pt"
        )

    def _forward(self, model_inputs: dict, **generate_kwargs: Any) -> dict:
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        return {"output_ids": self.model.generate(**model_inputs, **generate_kwargs)}

    def postprocess(self, model_outputs: dict) -> list[dict[str, str]]:
        texts = self.tokenizer.batch_decode(model_outputs["output_ids"], skip_special_tokens=True)
        return [{"generated_text": text.strip()} for text in texts]


def register_pipeline() -> None:
    """Make `pipeline(TASK, model=..., tokenizer=...)` build the pipeline above."""
    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            TASK,
            pipeline_class=NvibText2TextGenerationPipeline,
            pt_model=AutoModelForSeq2SeqLM,
            type="text",
        )
