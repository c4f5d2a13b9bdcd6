"""Output types of the NVIB models.

Every extra field is a top-level, batch-first tensor (or ``None``): ``generate`` expands exactly
those for beams and ``num_return_sequences`` (tuples, lists and nested dicts are not expanded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput


@dataclass
class NvibEncoderOutput(BaseModelOutput):
    """Encoder output whose ``last_hidden_state`` is the NVIB latent ``z`` (B, L, P), prior first.

    ``hidden_states``/``attentions`` are the backbone encoder's (over the N input tokens). The
    ``cross_*`` tensors are what the decoder's cross-attention reads; they are computed once per
    encoder call (so once per ``generate``) for the mode the encoder ran in.
    """

    attention_mask: torch.LongTensor | None = None  # (B, L) 1 = slot the decoder attends to
    mu: torch.FloatTensor | None = None  # (B, L, P)
    logvar: torch.FloatTensor | None = None  # (B, L, P)
    log_alpha: torch.FloatTensor | None = None  # (B, L)
    log_pi: torch.FloatTensor | None = None  # (B, L), -inf where masked or pruned
    kl_gaussian: torch.FloatTensor | None = None  # (B,)
    kl_dirichlet: torch.FloatTensor | None = None  # (B,)
    num_kept: torch.LongTensor | None = None  # (B,)
    num_valid: torch.LongTensor | None = None  # (B,)
    alpha_sum: torch.FloatTensor | None = None  # (B,)
    cross_key_input: torch.FloatTensor | None = None  # (B, L, P) input of the key projection
    cross_value_input: torch.FloatTensor | None = None  # (B, L, P) value input when it differs
    cross_key_bias: torch.FloatTensor | None = None  # (B, L) additive per-slot logit bias
    cross_variance_ratio: torch.FloatTensor | None = None  # (B, L, P) σ²/t, eval form only


@dataclass
class NvibSeq2SeqModelOutput(Seq2SeqModelOutput):
    """``Seq2SeqModelOutput`` plus per-sequence NVIB statistics (all (B,))."""

    encoder_attention_mask: torch.LongTensor | None = None  # (B, L) latent mask
    kl_gaussian: torch.FloatTensor | None = None
    kl_dirichlet: torch.FloatTensor | None = None
    num_kept: torch.LongTensor | None = None
    num_valid: torch.LongTensor | None = None
    alpha_sum: torch.FloatTensor | None = None


@dataclass
class NvibSeq2SeqLMOutput(Seq2SeqLMOutput):
    """``loss`` = CE + λ_G·w_G·KL_G + λ_D·w_D·KL_D; the parts are batch means (scalars)."""

    ce_loss: torch.FloatTensor | None = None
    kl_gaussian: torch.FloatTensor | None = None
    kl_dirichlet: torch.FloatTensor | None = None
    kept_proportion: torch.FloatTensor | None = None
    alpha_sum: torch.FloatTensor | None = None


# Output names that are not predictions: Trainer must drop them from eval outputs, or
# `compute_metrics` receives tuples.
NVIB_KEYS_TO_IGNORE_AT_INFERENCE = [
    "past_key_values",
    "ce_loss",
    "kl_gaussian",
    "kl_dirichlet",
    "kept_proportion",
    "alpha_sum",
    "encoder_last_hidden_state",
    "encoder_hidden_states",
    "encoder_attentions",
    "decoder_hidden_states",
    "decoder_attentions",
    "cross_attentions",
]
