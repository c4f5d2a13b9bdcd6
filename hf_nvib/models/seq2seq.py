"""The encoder → NVIB → decoder pass shared by every NVIB seq2seq model (backbone-agnostic).

The model must have ``encoder`` (an NVIB encoder), ``decoder`` (whose cross-attention modules
take ``nvib_cross_attention``) and an NVIB ``config``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache

from hf_nvib.models.cross_attention import as_nvib_encoder_output, decoder_cross_inputs
from hf_nvib.models.encoder import uses_eval_form
from hf_nvib.models.outputs import NvibSeq2SeqModelOutput


def nvib_encode_decode(
    model: torch.nn.Module,
    input_ids: torch.LongTensor | None,
    attention_mask: torch.Tensor | None,
    decoder_input_ids: torch.LongTensor | None,
    decoder_attention_mask: torch.Tensor | None,
    encoder_outputs: Any,
    past_key_values: Cache | None,
    inputs_embeds: torch.Tensor | None,
    decoder_inputs_embeds: torch.Tensor | None,
    use_cache: bool | None,
    **kwargs: Any,
) -> NvibSeq2SeqModelOutput:
    """Run (or reuse) the NVIB encoder, then the decoder over the latent mixture."""
    if encoder_outputs is None:
        encoder_outputs = model.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
    enc = as_nvib_encoder_output(encoder_outputs)
    key_input, cross = decoder_cross_inputs(
        enc,
        scale=model.config.nvib_logit_scale,
        eval_form=uses_eval_form(model, model.config),
    )
    decoder_outputs = model.decoder(
        input_ids=decoder_input_ids,
        attention_mask=decoder_attention_mask,
        inputs_embeds=decoder_inputs_embeds,
        past_key_values=past_key_values,
        encoder_hidden_states=key_input,
        encoder_attention_mask=enc.attention_mask,
        use_cache=use_cache,
        nvib_cross_attention=cross,
        **kwargs,
    )
    return NvibSeq2SeqModelOutput(
        last_hidden_state=decoder_outputs.last_hidden_state,
        past_key_values=decoder_outputs.past_key_values,
        decoder_hidden_states=decoder_outputs.hidden_states,
        decoder_attentions=decoder_outputs.attentions,
        cross_attentions=decoder_outputs.cross_attentions,
        encoder_last_hidden_state=enc.last_hidden_state,
        encoder_hidden_states=enc.hidden_states,
        encoder_attentions=enc.attentions,
        encoder_attention_mask=enc.attention_mask,
        kl_gaussian=enc.kl_gaussian,
        kl_dirichlet=enc.kl_dirichlet,
        num_kept=enc.num_kept,
        num_valid=enc.num_valid,
        alpha_sum=enc.alpha_sum,
    )
