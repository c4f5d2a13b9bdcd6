"""A converted NVIB model behaves exactly like its plain backbone at the identity init."""

from __future__ import annotations

import pytest
import torch
from _nvib_model_fixtures import Backbone, backbone_fixture  # noqa: F401

# At the identity init the prior slot keeps a weight ~e^-alpha_tau relative to the tokens;
# alpha_tau=20 makes it invisible in float32, the default 10 leaves ~1e-5 on logits of size ~4.
EXACT = {"nvib_alpha_tau": 20.0}


def _logits(model, inputs, **kwargs):
    with torch.no_grad():
        return model(**inputs, decoder_input_ids=inputs["input_ids"], **kwargs)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_eval_logits_match_plain(backbone: Backbone, impl: str) -> None:
    inputs = backbone.inputs()
    ref = _logits(backbone.plain(attn_implementation=impl), inputs).logits
    out = _logits(backbone.nvib(attn_implementation=impl, **EXACT), inputs).logits
    assert ref.abs().max() > 1.0  # non-trivial logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    default = _logits(backbone.nvib(attn_implementation=impl), inputs).logits
    torch.testing.assert_close(default, ref, atol=1e-4, rtol=0)


def test_mean_eval_attention_matches_plain(backbone: Backbone) -> None:
    inputs = backbone.inputs()
    ref = _logits(backbone.plain(), inputs).logits
    out = _logits(backbone.nvib(nvib_eval_attention="mean", nvib_alpha_tau=30.0), inputs).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_train_mode_logits_match_plain(backbone: Backbone) -> None:
    """stdev_tau=0 and no dropout: z = μ = x; the Gamma sample of π differs from its mean by
    ~1/sqrt(α), so alpha_tau is raised until that is below float32 resolution."""
    inputs = backbone.inputs()
    no_dropout = (
        {"dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}
        if backbone.name == "bart"
        else {"dropout_rate": 0.0}
    )
    plain = backbone.plain(**no_dropout).train()
    model = backbone.nvib(nvib_stdev_tau=0.0, nvib_alpha_tau=40.0, **no_dropout).train()
    ref = plain(**inputs, decoder_input_ids=inputs["input_ids"]).logits
    out = model(**inputs, decoder_input_ids=inputs["input_ids"]).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_beams": 4},
        {"num_beams": 4, "num_return_sequences": 3},
        {"use_cache": False},
        {"num_beams": 4, "use_cache": False},
    ],
)
def test_generate_matches_plain(backbone: Backbone, kwargs: dict) -> None:
    inputs = backbone.inputs()
    ref = backbone.plain().generate(**inputs, max_new_tokens=12, **kwargs)
    out = backbone.nvib().generate(**inputs, max_new_tokens=12, **kwargs)
    rows = inputs["input_ids"].shape[0] * kwargs.get("num_return_sequences", 1)
    assert out.shape[0] == rows
    assert torch.equal(out, ref)
    assert len({tuple(r.tolist()) for r in ref}) > 1  # outputs are not all the same


def test_sampling_matches_plain(backbone: Backbone) -> None:
    inputs = backbone.inputs()
    plain, model = backbone.plain(), backbone.nvib()  # loading consumes RNG: load first
    torch.manual_seed(3)
    ref = plain.generate(**inputs, do_sample=True, top_k=8, max_new_tokens=10)
    torch.manual_seed(3)
    out = model.generate(**inputs, do_sample=True, top_k=8, max_new_tokens=10)
    assert torch.equal(out, ref)


def test_cross_attention_maps_match_on_token_columns(backbone: Backbone) -> None:
    inputs = backbone.inputs()
    ref = _logits(backbone.plain(attn_implementation="eager"), inputs, output_attentions=True)
    for impl in ("eager", "sdpa"):  # NVIB cross-attention returns maps under any implementation
        out = _logits(
            backbone.nvib(attn_implementation=impl, **EXACT), inputs, output_attentions=True
        )
        assert len(out.cross_attentions) == len(ref.cross_attentions)
        for plain_map, nvib_map in zip(ref.cross_attentions, out.cross_attentions, strict=True):
            assert nvib_map.shape[-1] == plain_map.shape[-1] + 1  # prior column first
            torch.testing.assert_close(nvib_map[..., 1:], plain_map, atol=1e-5, rtol=0)
            assert nvib_map[..., 0].abs().max() < 1e-6
            torch.testing.assert_close(nvib_map.sum(-1), torch.ones_like(nvib_map[..., 0]))


@pytest.mark.parametrize("kwargs", [{}, {"num_beams": 3, "num_return_sequences": 2}])
def test_cached_equals_uncached_after_training_noise(backbone: Backbone, kwargs: dict) -> None:
    """Away from the identity (random NVIB weights, σ² > 0: the variance term is active)."""
    model = backbone.nvib(nvib_stdev_tau=0.3, nvib_alpha_tau=1.0)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.get_encoder().nvib.parameters():
            p.add_(0.05 * torch.randn_like(p))
    inputs = backbone.inputs()
    enc = model.get_encoder()(**inputs)
    assert enc.cross_variance_ratio is not None
    cached = model.generate(**inputs, max_new_tokens=10, use_cache=True, **kwargs)
    uncached = model.generate(**inputs, max_new_tokens=10, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)


def test_sdpa_equals_eager_away_from_identity(backbone: Backbone) -> None:
    inputs = backbone.inputs()
    outs = []
    for impl in ("sdpa", "eager"):
        model = backbone.nvib(attn_implementation=impl, nvib_stdev_tau=0.2, nvib_alpha_tau=0.0)
        outs.append(_logits(model, inputs).logits)
        outs.append(model.generate(**inputs, num_beams=4, max_new_tokens=8))
    torch.testing.assert_close(outs[0], outs[2], atol=1e-5, rtol=0)
    assert torch.equal(outs[1], outs[3])


def test_beam_outputs_shapes_and_scores(backbone: Backbone) -> None:
    model = backbone.nvib()
    inputs = backbone.inputs()
    out = model.generate(
        **inputs,
        num_beams=4,
        num_return_sequences=4,
        max_new_tokens=6,
        min_new_tokens=6,
        output_scores=True,
        return_dict_in_generate=True,
    )
    batch_size = inputs["input_ids"].shape[0]
    assert out.sequences.shape == (batch_size * 4, 7)
    assert out.sequences_scores.shape == (batch_size * 4,)
