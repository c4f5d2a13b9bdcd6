"""NVIB-T5: T5 whose decoder reads the encoder through an NVIB latent mixture.

As for BART, only the encoder stack (NVIB layer after the final layer norm), the decoder
cross-attention (denoising attention, s = 1, no relative position bias) and the LM loss change.
Parameter names are T5's; NVIB weights live under ``encoder.nvib``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers import T5PreTrainedModel
from transformers.cache_utils import Cache
from transformers.models.t5.modeling_t5 import (
    T5Attention,
    T5ForConditionalGeneration,
    T5Model,
    T5Stack,
)
from transformers.utils import can_return_tuple

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
from hf_nvib.models.t5.configuration_nvib_t5 import NvibT5Config


class NvibT5CrossAttention(T5Attention):
    """T5 cross-attention computing denoising attention over NVIB slots.

    T5 cross-attention has no relative position bias: the incoming ``position_bias`` (``None``
    from layer 0 on, since this module returns it unchanged) is never combined with the NVIB
    per-slot bias, which therefore cannot leak into the tensor T5 shares across layers.
    """

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None = None,  # ignored: the latent mask is in the key bias
        key_value_states: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        nvib_cross_attention: NvibCrossAttentionInputs | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        nvib = require_cross_inputs(nvib_cross_attention)
        if key_value_states is None:
            raise ValueError("NvibT5CrossAttention is a cross-attention: key_value_states needed")
        input_shape = hidden_states.shape[:-1]
        head_dim = self.key_value_proj_dim
        query = self.q(hidden_states).view(*input_shape, -1, head_dim).transpose(1, 2)

        def project() -> tuple[torch.Tensor, torch.Tensor]:
            kv_shape = (*key_value_states.shape[:-1], -1, head_dim)
            value_input = key_value_states if nvib.value_input is None else nvib.value_input
            key = self.k(key_value_states).view(kv_shape).transpose(1, 2)
            return key, self.v(value_input).view(kv_shape).transpose(1, 2)

        key, value = cached_cross_key_value(past_key_values, self.layer_idx, project)
        out, weights = denoising_cross_attention(
            query,
            key,
            value,
            nvib,
            scale=1.0,
            key_weight=self.k.weight,
            value_weight=self.v.weight,
            dropout_p=self.dropout if self.training else 0.0,
            output_weights=bool(kwargs.get("output_attentions", False)),
        )
        out = out.transpose(1, 2).reshape(*input_shape, -1).contiguous()
        return self.o(out), position_bias, weights


class NvibT5EncoderStack(NvibEncoderMixin, NvibInitMixin, T5Stack):
    """T5 encoder stack followed by the NVIB layer; returns an :class:`NvibEncoderOutput`.

    ``options`` is the model's config: T5 gives its stacks copies, so the run-time NVIB options
    are read from the model's own config object.
    """

    config_class = NvibT5Config

    def __init__(self, config: NvibT5Config, options: NvibT5Config | None = None) -> None:
        super().__init__(config)
        self.init_nvib(config if options is None else options)
        self.post_init()  # initialises only the new (not yet initialised) NVIB leaves


class NvibT5DecoderStack(NvibInitMixin, T5Stack):
    """T5 decoder stack whose cross-attention modules are :class:`NvibT5CrossAttention`.

    The modules are re-classed, not replaced: the subclass adds no parameter and only
    overrides ``forward``, so there is no second construction and no extra RNG use.
    """

    config_class = NvibT5Config

    def __init__(self, config: NvibT5Config) -> None:
        if not config.is_decoder:
            raise ValueError("NvibT5DecoderStack needs a decoder config (is_decoder=True)")
        super().__init__(config)
        for block in self.block:
            block.layer[1].EncDecAttention.__class__ = NvibT5CrossAttention


def _stack_configs(config: NvibT5Config) -> tuple[NvibT5Config, NvibT5Config]:
    """Encoder/decoder copies of the config, exactly as T5 makes them."""
    encoder_config = copy.deepcopy(config)
    encoder_config.is_decoder = False
    encoder_config.use_cache = False
    decoder_config = copy.deepcopy(config)
    decoder_config.is_decoder = True
    decoder_config.num_layers = config.num_decoder_layers
    return encoder_config, decoder_config


class NvibT5Model(NvibPushToHubMixin, NvibInitMixin, T5Model):
    """Bare NVIB-T5 encoder-decoder returning :class:`NvibSeq2SeqModelOutput`."""

    config_class = NvibT5Config

    def __init__(self, config: NvibT5Config) -> None:
        T5PreTrainedModel.__init__(self, config)  # build the parts once, NVIB ones directly
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        encoder_config, decoder_config = _stack_configs(config)
        self.encoder = NvibT5EncoderStack(encoder_config, options=config)
        self.decoder = NvibT5DecoderStack(decoder_config)
        self.post_init()

    @can_return_tuple
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.BoolTensor | None = None,
        encoder_outputs: NvibEncoderOutput | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> NvibSeq2SeqModelOutput:
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


class NvibT5ForConditionalGeneration(NvibPushToHubMixin, NvibInitMixin, T5ForConditionalGeneration):
    """NVIB-T5 with an LM head; with ``labels`` the loss includes the weighted KL terms."""

    config_class = NvibT5Config
    # See NvibBartForConditionalGeneration: keeps Trainer dividing by accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: NvibT5Config) -> None:
        T5PreTrainedModel.__init__(self, config)
        self.model_dim = config.d_model
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        encoder_config, decoder_config = _stack_configs(config)
        self.encoder = NvibT5EncoderStack(encoder_config, options=config)
        self.decoder = NvibT5DecoderStack(decoder_config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
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
        decoder_attention_mask: torch.BoolTensor | None = None,
        encoder_outputs: NvibEncoderOutput | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> NvibSeq2SeqLMOutput:
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self._shift_right(labels)
        outputs = nvib_encode_decode(
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
        sequence_output = outputs.last_hidden_state
        if self.config.scale_decoder_outputs:
            sequence_output = sequence_output * (self.model_dim**-0.5)
        logits = self.lm_head(sequence_output)
        return nvib_lm_output(self, logits, labels, outputs)


__all__ = [
    "NvibT5CrossAttention",
    "NvibT5DecoderStack",
    "NvibT5EncoderStack",
    "NvibT5ForConditionalGeneration",
    "NvibT5Model",
]
