"""NVIB-BART: BART whose decoder reads the encoder through an NVIB latent mixture.

Only three pieces differ from BART: the encoder (runs the NVIB layer on its final states), the
decoder cross-attention (denoising attention over the latent slots, prior first) and the LM
model (adds the KL terms to the loss). Parameter names are BART's, so every plain BART weight
loads unchanged; NVIB weights live under ``model.encoder.nvib``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers import BartPreTrainedModel
from transformers.cache_utils import Cache
from transformers.models.bart.modeling_bart import (
    BartAttention,
    BartDecoder,
    BartEncoder,
    BartForConditionalGeneration,
    BartModel,
    BartScaledWordEmbedding,
    shift_tokens_right,
)
from transformers.utils import can_return_tuple

from hf_nvib.models.bart.configuration_nvib_bart import NvibBartConfig
from hf_nvib.models.cross_attention import (
    NvibCrossAttentionInputs,
    cached_cross_key_value,
    denoising_cross_attention,
    require_cross_inputs,
)
from hf_nvib.models.encoder import NvibEncoderMixin
from hf_nvib.models.hub_mixin import NvibPushToHubMixin
from hf_nvib.models.initialization import NvibInitMixin
from hf_nvib.models.loss import nvib_lm_output, register_kl_weight_buffers, set_kl_weights
from hf_nvib.models.outputs import NvibEncoderOutput, NvibSeq2SeqLMOutput, NvibSeq2SeqModelOutput
from hf_nvib.models.seq2seq import nvib_encode_decode


class NvibBartCrossAttention(BartAttention):
    """BART cross-attention computing denoising attention over NVIB slots.

    Same parameters as ``BartAttention`` (q/k/v/out_proj, called as modules so LoRA applies).
    The projected keys/values are cached exactly as BART does (``is_updated``); the per-slot
    bias arrives with every call in ``nvib_cross_attention``.
    """

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        attention_mask: torch.Tensor | None = None,  # ignored: the mask is in the key bias
        nvib_cross_attention: NvibCrossAttentionInputs | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        nvib = require_cross_inputs(nvib_cross_attention)
        if key_value_states is None:
            raise ValueError("NvibBartCrossAttention is a cross-attention: key_value_states needed")
        input_shape = hidden_states.shape[:-1]
        query = self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim).transpose(1, 2)

        def project() -> tuple[torch.Tensor, torch.Tensor]:
            kv_shape = (*key_value_states.shape[:-1], -1, self.head_dim)
            value_input = key_value_states if nvib.value_input is None else nvib.value_input
            key = self.k_proj(key_value_states).view(kv_shape).transpose(1, 2)
            return key, self.v_proj(value_input).view(kv_shape).transpose(1, 2)

        key, value = cached_cross_key_value(past_key_values, self.layer_idx, project)
        out, weights = denoising_cross_attention(
            query,
            key,
            value,
            nvib,
            scale=self.scaling,
            key_weight=self.k_proj.weight,
            value_weight=self.v_proj.weight,
            dropout_p=self.dropout if self.training else 0.0,
            output_weights=bool(kwargs.get("output_attentions", False)),
        )
        out = out.transpose(1, 2).reshape(*input_shape, -1).contiguous()
        return self.out_proj(out), weights


class NvibBartEncoder(NvibEncoderMixin, NvibInitMixin, BartEncoder):
    """BART encoder followed by the NVIB layer; returns an :class:`NvibEncoderOutput`."""

    config_class = NvibBartConfig

    def __init__(self, config: NvibBartConfig) -> None:
        super().__init__(config)
        self.init_nvib(config)
        self.post_init()  # initialises only the new (not yet initialised) NVIB leaves


class NvibBartDecoder(NvibInitMixin, BartDecoder):
    """BART decoder whose cross-attention modules are :class:`NvibBartCrossAttention`.

    The cross-attention modules are re-classed, not replaced: the subclass adds no parameter
    and only overrides ``forward``, so there is no second construction and no extra RNG use.
    """

    config_class = NvibBartConfig

    def __init__(self, config: NvibBartConfig) -> None:
        super().__init__(config)
        for layer in self.layers:
            layer.encoder_attn.__class__ = NvibBartCrossAttention


class NvibBartModel(NvibPushToHubMixin, NvibInitMixin, BartModel):
    """Bare NVIB-BART encoder-decoder returning :class:`NvibSeq2SeqModelOutput`."""

    config_class = NvibBartConfig

    def __init__(self, config: NvibBartConfig) -> None:
        BartPreTrainedModel.__init__(self, config)  # build the parts once, NVIB ones directly
        padding_idx, vocab_size = config.pad_token_id, config.vocab_size
        embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = BartScaledWordEmbedding(
            vocab_size, config.d_model, padding_idx, embed_scale=embed_scale
        )
        self.encoder = NvibBartEncoder(config)
        self.decoder = NvibBartDecoder(config)
        self.post_init()

    @can_return_tuple
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: NvibEncoderOutput | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> NvibSeq2SeqModelOutput:
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError(
                    "Pass decoder_input_ids/decoder_inputs_embeds, or input_ids to shift."
                )
            decoder_input_ids = shift_tokens_right(
                input_ids, self.config.pad_token_id, self.config.decoder_start_token_id
            )
        return nvib_encode_decode(
            self,
            input_ids,
            attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
            encoder_outputs,
            past_key_values,
            inputs_embeds,
            decoder_inputs_embeds,
            use_cache,
            **kwargs,
        )


class NvibBartForConditionalGeneration(
    NvibPushToHubMixin, NvibInitMixin, BartForConditionalGeneration
):
    """NVIB-BART with an LM head; with ``labels`` the loss includes the weighted KL terms."""

    config_class = NvibBartConfig
    # v5 BART forwards take **kwargs, so Trainer would otherwise assume the model normalises by
    # num_items_in_batch and stop dividing by the accumulation steps (transformers#47688).
    accepts_loss_kwargs = False

    def __init__(self, config: NvibBartConfig) -> None:
        BartPreTrainedModel.__init__(self, config)
        self.model = NvibBartModel(config)
        self.register_buffer(
            "final_logits_bias", torch.zeros((1, self.model.shared.num_embeddings))
        )
        self.lm_head = nn.Linear(config.d_model, self.model.shared.num_embeddings, bias=False)
        register_kl_weight_buffers(self)
        self.post_init()

    def set_kl_weights(self, gaussian: float | None = None, dirichlet: float | None = None) -> None:
        """Set the KL annealing weights w_G, w_D (multiplying λ_G, λ_D)."""
        set_kl_weights(self, gaussian, dirichlet)

    @can_return_tuple
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: NvibEncoderOutput | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> NvibSeq2SeqLMOutput:
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            encoder_outputs=encoder_outputs,
            decoder_attention_mask=decoder_attention_mask,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        logits = logits + self.final_logits_bias.to(logits.device)
        return nvib_lm_output(self, logits, labels, outputs)


__all__ = [
    "NvibBartCrossAttention",
    "NvibBartDecoder",
    "NvibBartEncoder",
    "NvibBartForConditionalGeneration",
    "NvibBartModel",
]
