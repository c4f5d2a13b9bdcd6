"""Generation from the NVIB prior (NVAE-style: sample a latent mixture, decode it).

Why it works without the encoder: the decoder only reads a mixture (slots with means, variances
and weights π). A mixture drawn from the prior — a length N from the training length
distribution, N component means from ``N(prior_mu, prior_var)``, weights ``π ~ Dir(α₀, δ, …, δ)``
(the DP prior's conditional Dirichlet: the prior slot keeps its pseudo-count α₀, each token
component gets δ) — is handed to ``generate`` as a hand-made :class:`NvibEncoderOutput`; the
model computes the cross-attention terms from μ, log σ² and log π itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hf_nvib.models.outputs import NvibEncoderOutput

__all__ = [
    "NEGLIGIBLE_LOGVAR",
    "LengthDistribution",
    "PriorSample",
    "latent_encoder_output",
    "nvib_layer",
    "require_nvib_model",
    "sample_from_prior",
]

# log σ² of a point component: σ² = e⁻³⁰ is negligible next to 1/s, so the evaluation form of
# denoising attention treats the slot as the point μ (no variance term).
NEGLIGIBLE_LOGVAR = -30.0


def nvib_layer(model: Any) -> Any | None:
    """The model's NVIB layer (``get_encoder().nvib``), or None for a plain model."""
    get_encoder = getattr(model, "get_encoder", None)
    encoder = get_encoder() if callable(get_encoder) else None
    return getattr(encoder, "nvib", None)


def require_nvib_model(model: Any, what: str) -> Any:
    """The NVIB layer, or a ValueError saying that ``what`` needs an NVIB checkpoint."""
    layer = nvib_layer(model)
    if layer is None:
        raise ValueError(
            f"{what} needs an NVIB checkpoint (model_type nvib_bart/nvib_t5), got a plain "
            f"{type(model).__name__}: train one with `hf-nvib train --model <plain checkpoint>`"
        )
    return layer


def latent_encoder_output(mu: Tensor, logvar: Tensor, log_pi: Tensor) -> NvibEncoderOutput:
    """A hand-made encoder output for ``generate``: slots with ``log_pi = -inf`` are masked.

    The cross-attention terms are left empty so that the model derives them from μ, log σ² and
    log π in whichever attention form it runs (see ``decoder_cross_inputs``).
    """
    mask = torch.isfinite(log_pi)
    log_pi = torch.where(mask, log_pi, torch.full_like(log_pi, -math.inf))
    return NvibEncoderOutput(
        last_hidden_state=mu,
        attention_mask=mask.long(),
        mu=mu,
        logvar=logvar,
        log_pi=log_pi,
    )


@dataclass(frozen=True)
class LengthDistribution:
    """Empirical distribution of source lengths (tokens, special tokens included)."""

    counts: dict[int, int]

    @classmethod
    def from_lengths(cls, lengths: list[int]) -> LengthDistribution:
        counts: dict[int, int] = {}
        for n in lengths:
            counts[int(n)] = counts.get(int(n), 0) + 1
        return cls.from_mapping(counts)

    @classmethod
    def from_mapping(cls, counts: Mapping[Any, Any]) -> LengthDistribution:
        """From ``{length: count}`` (keys may be strings, as after a JSON round trip)."""
        clean = {int(k): int(v) for k, v in counts.items() if int(v) > 0 and int(k) > 0}
        if not clean:
            raise ValueError("the length histogram is empty: no positive lengths with counts > 0")
        return cls(dict(sorted(clean.items())))

    def to_json(self) -> dict[str, int]:
        return {str(k): v for k, v in self.counts.items()}

    def mean(self) -> float:
        total = sum(self.counts.values())
        return sum(k * v for k, v in self.counts.items()) / total

    def sample(self, num: int, generator: torch.Generator) -> list[int]:
        lengths = torch.tensor(list(self.counts), dtype=torch.long)
        weights = torch.tensor(list(self.counts.values()), dtype=torch.float64)
        idx = torch.multinomial(weights, num, replacement=True, generator=generator)
        return lengths[idx].tolist()


@dataclass
class PriorSample:
    """One decoded prior sample: its number of token components and the text."""

    length: int
    text: str


def _prior_mixture(layer: Any, lengths: list[int], device: torch.device) -> NvibEncoderOutput:
    """Latent mixture drawn from the prior (global RNG): slot 0 is the prior, then N_i points."""
    prior = layer.prior
    p = prior.mu.shape[0]
    batch, width = len(lengths), max(lengths) + 1
    prior_mu = prior.mu.detach().float().cpu()
    prior_var = prior.var.detach().float().cpu()
    mu = prior_mu + prior_var.sqrt() * torch.randn(batch, width, p)
    mu[:, 0] = prior_mu
    logvar = torch.full((batch, width, p), NEGLIGIBLE_LOGVAR)
    logvar[:, 0] = prior_var.log()
    # π ~ Dir(α₀, δ, …, δ) as normalised Gamma draws, in float64 for small concentrations.
    conc = torch.full((batch, width), float(layer.delta), dtype=torch.float64)
    conc[:, 0] = float(prior.log_alpha.detach().double().exp())
    gammas = torch._standard_gamma(conc).clamp_min(1e-300)
    exists = torch.arange(width)[None, :] <= torch.tensor(lengths)[:, None]
    gammas = torch.where(exists, gammas, torch.zeros_like(gammas))
    log_pi = (gammas / gammas.sum(-1, keepdim=True)).log().float()
    log_pi = torch.where(exists, log_pi, torch.full_like(log_pi, -math.inf))
    dtype = prior.mu.dtype
    return latent_encoder_output(
        mu.to(device=device, dtype=dtype),
        logvar.to(device=device, dtype=dtype),
        log_pi.to(device=device, dtype=dtype),
    )


@torch.no_grad()
def sample_from_prior(
    model: Any,
    tokenizer: Any,
    lengths: LengthDistribution | Mapping[Any, Any],
    *,
    num_samples: int = 5,
    seed: int = 0,
    max_new_tokens: int = 64,
    num_beams: int = 1,
    batch_size: int = 32,
) -> list[PriorSample]:
    """Decode ``num_samples`` latent mixtures drawn from the prior (greedy unless beams > 1).

    Deterministic for a given ``seed``; the caller's global RNG state is restored afterwards.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    layer = require_nvib_model(model, "sampling from the prior")
    dist = (
        lengths
        if isinstance(lengths, LengthDistribution)
        else LengthDistribution.from_mapping(lengths)
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    samples: list[PriorSample] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            all_lengths = dist.sample(num_samples, torch.Generator().manual_seed(int(seed)))
            for start in range(0, num_samples, batch_size):
                chunk = all_lengths[start : start + batch_size]
                enc = _prior_mixture(layer, chunk, device)
                ids = model.generate(
                    encoder_outputs=enc,
                    attention_mask=enc.attention_mask,
                    max_new_tokens=max_new_tokens,
                    num_beams=num_beams,
                    do_sample=False,
                )
                texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
                samples.extend(PriorSample(n, t.strip()) for n, t in zip(chunk, texts, strict=True))
    finally:
        model.train(was_training)
    return samples
