"""The NVIB step of every NVIB encoder: backbone states → NVIB layer → :class:`NvibEncoderOutput`.

Mixed in before the backbone's encoder class (``BartEncoder``, ``T5Stack``), whose ``forward``
produces the final hidden states. Run-time options are read from the model's config at every
call, so ``model.config.nvib_prune_threshold = 0.3`` (or ``nvib_compact``, ``nvib_delta``,
``nvib_kappa``, ``nvib_eval_attention``) takes effect on the next forward. T5 builds its encoder
on a copy of the config, so the encoder keeps a reference to the model's own config object.
"""

from __future__ import annotations

from typing import Any

import torch

from hf_nvib.models.cross_attention import build_encoder_output, latent_mask_or_ones
from hf_nvib.models.outputs import NvibEncoderOutput
from hf_nvib.nvib import NvibLayer

# NvibLayer attribute -> config field, applied before every forward.
RUNTIME_OPTIONS = {
    "kappa": "nvib_kappa",
    "delta": "nvib_delta",
    "prune_threshold": "nvib_prune_threshold",
    "compact": "nvib_compact",
}


def uses_eval_form(module: torch.nn.Module, config: Any) -> bool:
    """Closed-form denoising attention in eval mode unless the config asks for the mean form."""
    return not module.training and config.nvib_eval_attention == "denoising"


class NvibEncoderMixin:
    """Adds ``self.nvib`` and runs it on the backbone encoder's final hidden states."""

    def init_nvib(self, options: Any) -> None:
        """Build the layer; ``options`` is the model's config (read again at every forward)."""
        self.nvib_options = options
        self.nvib_logit_scale = options.nvib_logit_scale
        self.nvib = NvibLayer(
            options.d_model, logit_scale=self.nvib_logit_scale, **options.nvib_layer_kwargs()
        )

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> NvibEncoderOutput | tuple:
        """``attention_mask=None`` means every token is real (as in the plain backbone)."""
        return_dict = kwargs.pop("return_dict", None)
        if attention_mask is not None and attention_mask.dim() != 2:
            raise ValueError(
                "NVIB encoders need a 2-D (batch, seq) attention_mask, "
                f"got {attention_mask.dim()}-D"
            )
        base = super().forward(  # type: ignore[misc]
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        for attribute, field in RUNTIME_OPTIONS.items():
            setattr(self.nvib, attribute, getattr(self.nvib_options, field))
        states = base.last_hidden_state
        out = build_encoder_output(
            self.nvib(states, latent_mask_or_ones(attention_mask, states)),
            base.hidden_states,
            base.attentions,
            scale=self.nvib_logit_scale,
            eval_form=uses_eval_form(self, self.nvib_options),
        )
        if return_dict is False or (return_dict is None and not self.config.return_dict):
            return out.to_tuple()
        return out
