"""NVIB training objective and its logged parts."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import CrossEntropyLoss

from hf_nvib.models.outputs import (
    NvibEncoderOutput,
    NvibSeq2SeqLMOutput,
    NvibSeq2SeqModelOutput,
)


def nvib_loss_terms(
    logits: Tensor | None,
    labels: Tensor | None,
    stats: NvibEncoderOutput | NvibSeq2SeqModelOutput,
    *,
    lambda_gaussian: float,
    lambda_dirichlet: float,
    gaussian_weight: Tensor,
    dirichlet_weight: Tensor,
) -> dict[str, Tensor | None]:
    """CE (token mean, as the plain backbones) + λ_G·w_G·mean KL_G + λ_D·w_D·mean KL_D.

    Each micro-batch is normalised on its own (``accepts_loss_kwargs = False``): gradient
    accumulation then averages micro-batch losses, which equals the full-batch loss when the
    micro-batches hold the same number of label tokens.
    """
    enc = stats  # any output carrying the per-sequence (B,) NVIB statistics
    kl_g = enc.kl_gaussian.float().mean() if enc.kl_gaussian is not None else None
    kl_d = enc.kl_dirichlet.float().mean() if enc.kl_dirichlet is not None else None
    kept = None
    if enc.num_kept is not None and enc.num_valid is not None:
        kept = (enc.num_kept.float() / enc.num_valid.float().clamp_min(1.0)).mean()
    alpha_sum = enc.alpha_sum.float().mean() if enc.alpha_sum is not None else None
    ce = loss = None
    if labels is not None and logits is not None:
        labels = labels.to(logits.device)
        ce = CrossEntropyLoss()(logits.view(-1, logits.size(-1)), labels.view(-1))
        loss = ce
        # λ = 0 skips the term so that a non-finite KL cannot poison a pure-CE objective.
        if lambda_gaussian != 0.0 and kl_g is not None:
            loss = loss + lambda_gaussian * gaussian_weight.to(kl_g.dtype) * kl_g
        if lambda_dirichlet != 0.0 and kl_d is not None:
            loss = loss + lambda_dirichlet * dirichlet_weight.to(kl_d.dtype) * kl_d
    return {
        "loss": loss,
        "ce_loss": ce,
        "kl_gaussian": kl_g,
        "kl_dirichlet": kl_d,
        "kept_proportion": kept,
        "alpha_sum": alpha_sum,
    }


def nvib_lm_output(
    model: torch.nn.Module,
    logits: Tensor,
    labels: Tensor | None,
    outputs: NvibSeq2SeqModelOutput,
) -> NvibSeq2SeqLMOutput:
    """The LM heads' common ending: the loss with ``model``'s λ's and annealing weights, and
    the decoder/encoder outputs passed through."""
    terms = nvib_loss_terms(
        logits,
        labels,
        outputs,
        lambda_gaussian=model.config.nvib_lambda_gaussian,
        lambda_dirichlet=model.config.nvib_lambda_dirichlet,
        gaussian_weight=model.kl_gaussian_weight,
        dirichlet_weight=model.kl_dirichlet_weight,
    )
    return NvibSeq2SeqLMOutput(
        logits=logits,
        past_key_values=outputs.past_key_values,
        decoder_hidden_states=outputs.decoder_hidden_states,
        decoder_attentions=outputs.decoder_attentions,
        cross_attentions=outputs.cross_attentions,
        encoder_last_hidden_state=outputs.encoder_last_hidden_state,
        encoder_hidden_states=outputs.encoder_hidden_states,
        encoder_attentions=outputs.encoder_attentions,
        **terms,
    )


def register_kl_weight_buffers(module: torch.nn.Module) -> None:
    """Annealing weights w_G, w_D: non-persistent so that they follow ``.to()`` without being
    saved (re-set to 1.0 by ``_init_weights`` after loading)."""
    module.register_buffer("kl_gaussian_weight", torch.tensor(1.0), persistent=False)
    module.register_buffer("kl_dirichlet_weight", torch.tensor(1.0), persistent=False)


def set_kl_weights(
    module: torch.nn.Module, gaussian: float | None = None, dirichlet: float | None = None
) -> None:
    """Write annealing weights in place (no new tensors: no recompiles, device kept)."""
    for name, value in (("kl_gaussian_weight", gaussian), ("kl_dirichlet_weight", dirichlet)):
        if value is None:
            continue
        value = float(value)
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"KL weight must be a finite float >= 0, got {value!r}")
        getattr(module, name).fill_(value)
