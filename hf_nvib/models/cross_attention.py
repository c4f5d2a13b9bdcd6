"""Backbone-agnostic glue between the NVIB layer and a decoder's cross-attention.

The encoder wrapper turns the layer's output into an :class:`NvibEncoderOutput` that already
holds what every cross-attention layer needs (computed once per encoder call). The model
forward hands those tensors to the decoder as one ``nvib_cross_attention`` keyword argument,
which v5's ``**kwargs`` plumbing carries to each attention module: no global registration,
nothing stored on the modules between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor
from transformers.cache_utils import Cache, EncoderDecoderCache

from hf_nvib.models.outputs import NvibEncoderOutput
from hf_nvib.nvib import (
    NvibOutput,
    denoising_attention_eval,
    denoising_attention_train,
    evaluation_terms,
    training_key_bias,
)


@dataclass
class NvibCrossAttentionInputs:
    """Per-slot terms shared by all cross-attention layers for one forward call.

    ``key_bias`` (B, L) carries the latent mask (``-inf`` on padding and pruned slots): the
    cross-attention never reads the framework-built 4-D mask, whose format depends on the
    attention implementation.
    """

    key_bias: Tensor
    value_input: Tensor | None  # v-projection input when it differs from the key input
    variance_ratio: Tensor | None
    eval_form: bool  # closed-form evaluation attention (else the training form)


def build_encoder_output(
    nvib_output: NvibOutput,
    hidden_states: tuple[Tensor, ...] | None,
    attentions: tuple[Tensor, ...] | None,
    *,
    scale: float,
    eval_form: bool,
) -> NvibEncoderOutput:
    """Package the NVIB layer output plus the cross-attention terms for the chosen form."""
    if eval_form:
        terms = evaluation_terms(nvib_output.mu, nvib_output.logvar, nvib_output.log_pi, scale)
        key_input, value_input = terms.key_input, terms.value_input
        key_bias, variance_ratio = terms.key_bias, terms.variance_ratio
    else:
        key_input, value_input, variance_ratio = nvib_output.z, None, None
        key_bias = training_key_bias(nvib_output.z, nvib_output.log_pi, scale)
    return NvibEncoderOutput(
        last_hidden_state=nvib_output.z,
        hidden_states=hidden_states,
        attentions=attentions,
        attention_mask=nvib_output.mask.long(),
        mu=nvib_output.mu,
        logvar=nvib_output.logvar,
        log_alpha=nvib_output.log_alpha,
        log_pi=nvib_output.log_pi,
        kl_gaussian=nvib_output.kl_gaussian,
        kl_dirichlet=nvib_output.kl_dirichlet,
        num_kept=nvib_output.num_kept,
        num_valid=nvib_output.num_valid,
        alpha_sum=nvib_output.alpha_sum,
        cross_key_input=key_input,
        cross_value_input=value_input,
        cross_key_bias=key_bias,
        cross_variance_ratio=variance_ratio,
    )


_ENCODER_FIELDS = {f.name for f in fields(NvibEncoderOutput)}


def as_nvib_encoder_output(encoder_outputs: Any) -> NvibEncoderOutput:
    """Accept the encoder's own output (or a dict of its fields); reject anything lossy.

    A tuple (``return_dict=False``) or a plain ``BaseModelOutput`` has lost the NVIB fields and
    tuple positions shift with the ``None`` fields, so it cannot be rebuilt reliably.
    """
    if isinstance(encoder_outputs, NvibEncoderOutput):
        return encoder_outputs
    if isinstance(encoder_outputs, Mapping) and "log_pi" in encoder_outputs:
        extra = set(encoder_outputs) - _ENCODER_FIELDS
        if not extra:
            return NvibEncoderOutput(**dict(encoder_outputs))
    raise ValueError(
        "encoder_outputs must be the NvibEncoderOutput returned by model.get_encoder()(...) "
        f"(or a dict of its fields); got {type(encoder_outputs).__name__}. A tuple or a plain "
        "BaseModelOutput has lost the NVIB fields (π, μ, log σ², latent mask): call the "
        "encoder with return_dict=True."
    )


def decoder_cross_inputs(
    encoder_outputs: NvibEncoderOutput, *, scale: float, eval_form: bool
) -> tuple[Tensor, NvibCrossAttentionInputs]:
    """(key-projection input, per-slot terms) for the decoder.

    Uses the terms the encoder computed; recomputes them only for a hand-made output that lacks
    them (``eval_form`` then decides the form).
    """
    enc = encoder_outputs
    if enc.cross_key_bias is None or enc.cross_key_input is None:
        if enc.log_pi is None or enc.last_hidden_state is None:
            raise ValueError("encoder_outputs lacks log_pi/last_hidden_state: not an NVIB output")
        if eval_form:
            if enc.mu is None or enc.logvar is None:
                raise ValueError("the evaluation attention needs encoder_outputs.mu and .logvar")
            terms = evaluation_terms(enc.mu, enc.logvar, enc.log_pi, scale)
            return terms.key_input, NvibCrossAttentionInputs(
                terms.key_bias, terms.value_input, terms.variance_ratio, True
            )
        bias = training_key_bias(enc.last_hidden_state, enc.log_pi, scale)
        return enc.last_hidden_state, NvibCrossAttentionInputs(bias, None, None, False)
    is_eval = enc.cross_value_input is not None
    inputs = NvibCrossAttentionInputs(
        enc.cross_key_bias, enc.cross_value_input, enc.cross_variance_ratio, is_eval
    )
    return enc.cross_key_input, inputs


def denoising_cross_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    inputs: NvibCrossAttentionInputs,
    *,
    scale: float,
    key_weight: Tensor,
    value_weight: Tensor,
    dropout_p: float,
    output_weights: bool,
) -> tuple[Tensor, Tensor | None]:
    """Dispatch to the training or evaluation form; query/key/value are (B, H, ·, E)."""
    if inputs.eval_form:
        ratio = inputs.variance_ratio
        return denoising_attention_eval(
            query,
            key,
            value,
            inputs.key_bias,
            variance_ratio=ratio,
            key_weight=key_weight if ratio is not None else None,
            value_weight=value_weight if ratio is not None else None,
            dropout_p=dropout_p,
            output_weights=output_weights,
        )
    return denoising_attention_train(
        query,
        key,
        value,
        inputs.key_bias,
        scale=scale,
        dropout_p=dropout_p,
        output_weights=output_weights,
    )


def require_cross_inputs(inputs: NvibCrossAttentionInputs | None) -> NvibCrossAttentionInputs:
    """Fail loudly when an NVIB cross-attention is called outside an NVIB model forward."""
    if inputs is None:
        raise ValueError(
            "NVIB cross-attention called without `nvib_cross_attention`: run the decoder through "
            "the NVIB model's forward (it builds the per-slot terms from the encoder output)."
        )
    return inputs


def latent_mask_or_ones(attention_mask: Tensor | None, hidden_states: Tensor) -> Tensor:
    """2-D token mask for the NVIB layer; ``None`` means every position is a real token
    (the plain backbones read a missing mask the same way)."""
    if attention_mask is None:
        return torch.ones(hidden_states.shape[:2], dtype=torch.long, device=hidden_states.device)
    if attention_mask.dim() != 2:
        raise ValueError(
            f"NVIB encoders need a 2-D (batch, seq) attention_mask, got {attention_mask.dim()}-D"
        )
    return attention_mask


def cached_cross_key_value(
    past_key_values: Cache | None,
    layer_idx: int,
    project: Callable[[], tuple[Tensor, Tensor]],
) -> tuple[Tensor, Tensor]:
    """Keys/values of a cross-attention layer, projected once per generation (as upstream).

    ``project`` computes them from the latent; later decoding steps read the cross-attention
    cache (``is_updated``), so cached and uncached decoding see the same tensors.
    """
    cache, is_updated = None, False
    if isinstance(past_key_values, EncoderDecoderCache):
        is_updated = bool(past_key_values.is_updated.get(layer_idx))
        cache = past_key_values.cross_attention_cache
    elif past_key_values is not None:
        cache = past_key_values
    if cache is not None and is_updated:
        return cache.layers[layer_idx].keys, cache.layers[layer_idx].values
    key, value = project()
    if cache is not None:
        key, value = cache.update(key, value, layer_idx)
        if isinstance(past_key_values, EncoderDecoderCache):
            past_key_values.is_updated[layer_idx] = True
    return key, value
