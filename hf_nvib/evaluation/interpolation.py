"""Interpolation between two sentences in NVIB's mixture space.

Why re-weighting and not averaging vectors: an NVIB latent is a *set* of components with
weights π, and two sentences rarely have the same number of components. The union of both sets
is itself a valid mixture: A's components weighted by ``(1 − τ)·π_A``, B's by ``τ·π_B`` and one
shared prior slot weighted ``(1 − τ)·π_A0 + τ·π_B0``. At τ = 0 it *is* A's mixture (B's slots
get π = 0 and are masked), so decoding gives A's reconstruction; at τ = 1 B's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hf_nvib.evaluation.sampling import latent_encoder_output, require_nvib_model

__all__ = ["InterpolationStep", "interpolate", "mix_latents", "tau_grid"]


@dataclass
class InterpolationStep:
    tau: float
    text: str
    num_components: int  # slots with π > 0 (prior included)


def tau_grid(steps: int) -> list[float]:
    """``steps`` evenly spaced τ in [0, 1], endpoints included (``steps >= 2``)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (the two endpoints), got {steps}")
    return [i / (steps - 1) for i in range(steps)]


def _log_weight(w: float) -> float:
    return math.log(w) if w > 0 else -math.inf


def mix_latents(
    enc_a: Any, enc_b: Any, taus: list[float], *, num_prior_slots: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """(μ, log σ², log π) of the union mixture for each τ: shapes (T, L, P), (T, L, P), (T, L).

    ``enc_a``/``enc_b`` are NVIB encoder outputs of one sentence each (batch size 1). Slots:
    the shared prior (``num_prior_slots`` = κ copies), A's other slots, B's other slots.
    """
    k = num_prior_slots
    parts = []
    for enc in (enc_a, enc_b):
        if enc.mu.shape[0] != 1:
            raise ValueError("mix_latents takes encoder outputs of one sentence each")
        parts.append((enc.mu[0], enc.logvar[0], enc.log_pi[0].float()))
    (mu_a, lv_a, lp_a), (mu_b, lv_b, lp_b) = parts
    mu = torch.cat([mu_a[:k], mu_a[k:], mu_b[k:]])
    logvar = torch.cat([lv_a[:k], lv_a[k:], lv_b[k:]])
    rows = []
    for tau in taus:
        wa, wb = _log_weight(1.0 - tau), _log_weight(tau)
        prior = torch.logaddexp(lp_a[:k] + wa, lp_b[:k] + wb)
        rows.append(torch.cat([prior, lp_a[k:] + wa, lp_b[k:] + wb]))
    log_pi = torch.stack(rows)
    # logaddexp(-inf, -inf) is -inf and -inf + finite stays -inf: masked slots remain masked.
    log_pi = torch.where(torch.isnan(log_pi), torch.full_like(log_pi, -math.inf), log_pi)
    n = len(taus)
    return mu.expand(n, *mu.shape), logvar.expand(n, *logvar.shape), log_pi.to(mu.dtype)


@torch.no_grad()
def interpolate(
    model: Any,
    tokenizer: Any,
    sentence_a: str,
    sentence_b: str,
    *,
    steps: int = 5,
    max_new_tokens: int = 64,
    num_beams: int = 1,
    max_source_length: int = 128,
) -> list[InterpolationStep]:
    """Decode the union mixture of A and B for τ in ``tau_grid(steps)`` (eval mode)."""
    layer = require_nvib_model(model, "interpolation")
    taus = tau_grid(steps)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        encoder = model.get_encoder()
        encs = []
        for sentence in (sentence_a, sentence_b):
            batch = tokenizer(
                [sentence], return_tensors="pt", truncation=True, max_length=max_source_length
            ).to(device)
            encs.append(
                encoder(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    return_dict=True,
                )
            )
        mu, logvar, log_pi = mix_latents(*encs, taus, num_prior_slots=int(layer.kappa))
        enc = latent_encoder_output(mu.contiguous(), logvar.contiguous(), log_pi)
        ids = model.generate(
            encoder_outputs=enc,
            attention_mask=enc.attention_mask,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
        )
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    finally:
        model.train(was_training)
    counts = enc.attention_mask.sum(-1).tolist()
    return [
        InterpolationStep(tau, text.strip(), int(c))
        for tau, text, c in zip(taus, texts, counts, strict=True)
    ]
