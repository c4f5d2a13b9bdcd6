"""Prior sampling and interpolation: deterministic under a seed; τ=0/1 decode the endpoints."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import SENTENCES, make_tiny_bart, tiny_bart_tokenizer
from transformers import BartForConditionalGeneration

import hf_nvib
from hf_nvib.evaluation.interpolation import interpolate, mix_latents, tau_grid
from hf_nvib.evaluation.sampling import LengthDistribution, sample_from_prior

pytestmark = pytest.mark.xdist_group("tiny_nvib_bart")


@pytest.fixture(scope="module")
def nvib_model(tmp_path_factory):
    path = make_tiny_bart(tmp_path_factory.mktemp("tiny"))
    # A non-identity NVIB (alpha_tau = 2, trained-like spread of α) so pruning can happen.
    model = hf_nvib.NvibBartForConditionalGeneration.from_pretrained(path, nvib_alpha_tau=2.0)
    return model.eval(), tiny_bart_tokenizer()


def _greedy(model, tokenizer, sentence: str) -> str:
    batch = tokenizer([sentence], return_tensors="pt")
    ids = model.generate(**batch, max_new_tokens=12, num_beams=1, do_sample=False)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()


def test_sampling_is_deterministic_under_a_seed(nvib_model):
    model, tok = nvib_model
    hist = {4: 2, 7: 1}
    a = sample_from_prior(model, tok, hist, num_samples=4, seed=3, max_new_tokens=8)
    b = sample_from_prior(model, tok, hist, num_samples=4, seed=3, max_new_tokens=8)
    c = sample_from_prior(model, tok, hist, num_samples=4, seed=4, max_new_tokens=8)
    assert a == b
    assert len(a) == 4 and {s.length for s in a} <= {4, 7}
    assert all(s.text for s in a)
    assert [s.text for s in a] != [s.text for s in c]


def test_sampling_leaves_global_rng_untouched(nvib_model):
    model, tok = nvib_model
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    sample_from_prior(model, tok, {5: 1}, num_samples=2, seed=0, max_new_tokens=4)
    assert torch.equal(torch.rand(3), expected)
    assert model.training is False


def test_length_distribution_round_trip_and_draws():
    dist = LengthDistribution.from_lengths([3, 3, 5])
    assert dist.counts == {3: 2, 5: 1}
    assert LengthDistribution.from_mapping(dist.to_json()) == dist
    assert math.isclose(dist.mean(), 11 / 3)
    draws = dist.sample(2000, torch.Generator().manual_seed(0))
    assert set(draws) == {3, 5}
    assert abs(draws.count(3) / 2000 - 2 / 3) < 0.05
    with pytest.raises(ValueError, match="empty"):
        LengthDistribution.from_mapping({})


def test_sampling_rejects_a_plain_model():
    torch.manual_seed(0)
    from tiny_models import tiny_bart_config

    plain = BartForConditionalGeneration(tiny_bart_config()).eval()
    with pytest.raises(ValueError, match="needs an NVIB checkpoint"):
        sample_from_prior(plain, tiny_bart_tokenizer(), {3: 1}, num_samples=1)


def test_interpolation_endpoints_decode_the_reconstructions(nvib_model):
    model, tok = nvib_model
    a, b = SENTENCES[0], SENTENCES[1]
    path = interpolate(model, tok, a, b, steps=5, max_new_tokens=12)
    assert [s.tau for s in path] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert path[0].text == _greedy(model, tok, a)
    assert path[-1].text == _greedy(model, tok, b)
    # interior points attend to the union: more components than either endpoint
    assert path[2].num_components > max(path[0].num_components, path[-1].num_components)
    again = interpolate(model, tok, a, b, steps=5, max_new_tokens=12)
    assert [s.text for s in again] == [s.text for s in path]


def test_mix_latents_weights_sum_to_one_and_mask_endpoints(nvib_model):
    model, tok = nvib_model
    enc = model.get_encoder()
    with torch.no_grad():
        ea = enc(**tok([SENTENCES[2]], return_tensors="pt"))
        eb = enc(**tok([SENTENCES[3]], return_tensors="pt"))
    mu, logvar, log_pi = mix_latents(ea, eb, [0.0, 0.3, 1.0])
    la, lb = ea.mu.shape[1], eb.mu.shape[1]
    assert mu.shape == (3, la + lb - 1, ea.mu.shape[2]) and logvar.shape == mu.shape
    sums = log_pi.exp().sum(-1)
    torch.testing.assert_close(sums, torch.ones(3), atol=1e-5, rtol=0)
    assert torch.isinf(log_pi[0, la:]).all() and torch.isinf(log_pi[2, 1:la]).all()
    torch.testing.assert_close(log_pi[0, :la], ea.log_pi[0].float())


def test_tau_grid():
    assert tau_grid(2) == [0.0, 1.0]
    assert tau_grid(3) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError):
        tau_grid(1)
