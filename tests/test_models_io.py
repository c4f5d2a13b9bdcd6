"""Loading, saving, Auto classes, bad inputs, PEFT — the model as the ecosystem sees it."""

from __future__ import annotations

import math

import pytest
import torch
from _nvib_model_fixtures import Backbone, backbone_fixture, labels_from  # noqa: F401
from transformers import AutoModel, AutoModelForSeq2SeqLM, pipeline, set_seed

from hf_nvib.models.outputs import NvibEncoderOutput


def _perturb_nvib(model, scale: float = 0.05, seed: int = 0) -> None:
    """Move the NVIB weights off the identity, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.get_encoder().nvib.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs, decoder_input_ids=inputs["input_ids"]).logits


def test_conversion_keeps_every_backbone_weight(backbone: Backbone) -> None:
    plain = backbone.plain().state_dict()
    model = backbone.nvib().state_dict()
    nvib_keys = {k for k in model if ".nvib." in k or k.startswith("encoder.nvib.")}
    assert nvib_keys and set(model) - nvib_keys == set(plain)
    for key, value in plain.items():
        assert torch.equal(model[key], value), key


def test_identity_init_survives_from_pretrained(backbone: Backbone) -> None:
    layer = backbone.nvib(nvib_alpha_tau=7.0).get_encoder().nvib
    eye = torch.eye(layer.d_model)
    assert torch.equal(layer.mu_proj.weight, eye)
    assert torch.equal(layer.logvar_proj.weight, torch.zeros_like(eye))
    assert layer.alpha_proj.bias.item() == 7.0
    scale = 8**-0.5 if backbone.name == "bart" else 1.0  # head dim 8 / T5 unscaled
    torch.testing.assert_close(
        layer.alpha_proj.weight_quadratic, torch.full((layer.d_model,), scale / 2)
    )
    assert torch.equal(layer.prior.var, torch.ones(layer.d_model))


def test_round_trip_and_auto_classes(backbone: Backbone, tmp_path) -> None:
    model = backbone.nvib(nvib_stdev_tau=0.1)
    _perturb_nvib(model)
    model.set_kl_weights(0.25, 0.5)
    model.save_pretrained(tmp_path)
    inputs = backbone.inputs()
    ref = _logits(model, inputs)
    for loader in (backbone.nvib_class, AutoModelForSeq2SeqLM):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is backbone.nvib_class
        assert torch.equal(_logits(loaded, inputs), ref)  # trained NVIB weights restored
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        # the annealing weights are not saved: they restart at 1.0
        assert loaded.kl_gaussian_weight.item() == 1.0 == loaded.kl_dirichlet_weight.item()
    bare = AutoModel.from_pretrained(tmp_path)
    assert type(bare).__name__ == backbone.nvib_class.__name__.replace(
        "ForConditionalGeneration", "Model"
    )


def test_conversion_is_deterministic_under_set_seed(backbone: Backbone) -> None:
    states = []
    for _ in range(2):
        set_seed(11)
        states.append(backbone.nvib().state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_training_samples_depend_on_seed_eval_does_not(backbone: Backbone) -> None:
    model = backbone.nvib(nvib_stdev_tau=0.5)
    inputs = backbone.inputs()
    encoder = model.get_encoder()
    encoder.train()
    draws = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        draws.append(encoder(**inputs).last_hidden_state)
    assert not torch.allclose(draws[0], draws[1])
    assert torch.equal(draws[0], draws[2])
    encoder.eval()
    torch.manual_seed(0)
    first = encoder(**inputs).last_hidden_state
    torch.manual_seed(1)
    assert torch.equal(first, encoder(**inputs).last_hidden_state)


def test_plain_class_loading_an_nvib_checkpoint_drops_the_layer(backbone: Backbone, tmp_path):
    """Documented behaviour: a plain class loads the backbone weights and ignores the NVIB
    ones (transformers logs a model-type warning and unexpected keys); the result is the plain
    backbone, so it matches the NVIB model only while NVIB sits at the identity."""
    model = backbone.nvib(nvib_alpha_tau=20.0)
    model.save_pretrained(tmp_path / "identity")
    _perturb_nvib(model, scale=0.2)
    model.save_pretrained(tmp_path / "trained")
    inputs = backbone.inputs()
    plain_ref = _logits(backbone.plain(), inputs)
    for name in ("identity", "trained"):
        loaded = backbone.plain_class.from_pretrained(tmp_path / name).eval()
        assert not any(".nvib." in k for k in loaded.state_dict())
        torch.testing.assert_close(_logits(loaded, inputs), plain_ref, atol=0, rtol=0)
    assert not torch.allclose(_logits(model, inputs), plain_ref, atol=1e-3)


def test_tuple_encoder_outputs_are_rejected(backbone: Backbone) -> None:
    model = backbone.nvib()
    inputs = backbone.inputs()
    as_tuple = model.get_encoder()(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple)
    with pytest.raises(ValueError, match="NvibEncoderOutput"):
        model(encoder_outputs=as_tuple, decoder_input_ids=inputs["input_ids"])
    enc = model.get_encoder()(**inputs)
    assert isinstance(enc, NvibEncoderOutput)
    plain_base = type(enc).__mro__[1](last_hidden_state=enc.last_hidden_state)
    with pytest.raises(ValueError, match="NvibEncoderOutput"):
        model(encoder_outputs=plain_base, decoder_input_ids=inputs["input_ids"])
    # the encoder's own output, or a dict of its fields, is accepted
    ref = model(encoder_outputs=enc, decoder_input_ids=inputs["input_ids"]).logits
    out = model(encoder_outputs=dict(enc), decoder_input_ids=inputs["input_ids"]).logits
    assert torch.equal(ref, out)


def test_missing_attention_mask_means_all_tokens_real(backbone: Backbone) -> None:
    """Documented: without attention_mask every position (padding included) is a real token,
    exactly as the plain backbones treat it."""
    model, plain = backbone.nvib(nvib_alpha_tau=20.0), backbone.plain()
    ids = backbone.inputs()["input_ids"]
    enc = model.get_encoder()(input_ids=ids)
    assert torch.equal(enc.attention_mask, torch.ones(ids.shape[0], ids.shape[1] + 1).long())
    with torch.no_grad():
        ref = plain(input_ids=ids, decoder_input_ids=ids).logits
        out = model(input_ids=ids, decoder_input_ids=ids).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="2-D"):
        model.get_encoder()(
            input_ids=ids, attention_mask=torch.ones(ids.shape[0], 1, 1, ids.shape[1])
        )


def test_latent_mask_and_padding(backbone: Backbone) -> None:
    inputs = backbone.inputs()
    enc = backbone.nvib().get_encoder()(**inputs)
    expected = torch.cat(
        [torch.ones_like(inputs["attention_mask"][:, :1]), inputs["attention_mask"]], 1
    )
    assert torch.equal(enc.attention_mask, expected.long())
    assert torch.isneginf(enc.log_pi[expected == 0]).all()
    assert torch.equal(enc.num_valid, expected.sum(-1))


def test_compaction_drops_pruned_slots_and_generates(backbone: Backbone) -> None:
    model = backbone.nvib(nvib_compact=True)
    with torch.no_grad():  # prune about half of the tokens: move the median log α to the threshold
        enc = model.get_encoder()
        probe = enc(**backbone.inputs())
        median = probe.log_alpha[:, 1:][probe.attention_mask[:, 1:].bool()].median()
        enc.nvib.alpha_proj.bias.sub_(median - math.log(enc.nvib.prune_threshold))
    inputs = backbone.inputs()
    out = enc(**inputs)
    assert out.last_hidden_state.shape[1] < inputs["input_ids"].shape[1] + 1
    assert (out.num_kept < out.num_valid).any()
    assert torch.equal(out.attention_mask.sum(-1), out.num_kept)
    cached = model.generate(**inputs, num_beams=2, max_new_tokens=6)
    uncached = model.generate(**inputs, num_beams=2, max_new_tokens=6, use_cache=False)
    assert torch.equal(cached, uncached)


def test_text2text_pipeline_matches_generate(backbone: Backbone) -> None:
    model, tokenizer = backbone.nvib(), backbone.tokenizer()
    pipe = pipeline("nvib-text2text-generation", model=model, tokenizer=tokenizer)
    sentences = ["the cat sat on the mat", "a quick red fox"]
    outputs = pipe(sentences, max_new_tokens=6, num_beams=3, num_return_sequences=2)
    assert [len(o) for o in outputs] == [2, 2]
    for sentence, generated in zip(sentences, outputs, strict=True):
        ids = model.generate(
            **tokenizer(sentence, return_tensors="pt"),
            max_new_tokens=6,
            num_beams=3,
            num_return_sequences=2,
        )
        expected = tokenizer.batch_decode(ids, skip_special_tokens=True)
        assert [g["generated_text"] for g in generated] == [e.strip() for e in expected]
    assert (
        pipe("rain", max_new_tokens=3)[0]["generated_text"]
        == tokenizer.decode(
            model.generate(**tokenizer("rain", return_tensors="pt"), max_new_tokens=3)[0],
            skip_special_tokens=True,
        ).strip()
    )


def test_removed_upstream_text2text_task_names_the_replacement(backbone: Backbone) -> None:
    # transformers 5 removed "text2text-generation"; hf_nvib registers its own task name.
    with pytest.raises(KeyError, match="removed"):
        pipeline("text2text-generation", model=backbone.nvib(), tokenizer=backbone.tokenizer())


def test_peft_lora_round_trip_and_merge(backbone: Backbone, tmp_path) -> None:
    peft = pytest.importorskip("peft")
    targets = ["q_proj", "v_proj"] if backbone.name == "bart" else ["q", "v"]
    config = peft.LoraConfig(
        r=4, target_modules=targets, modules_to_save=["nvib"], init_lora_weights=False
    )
    model = peft.get_peft_model(backbone.nvib(), config)
    inputs = backbone.inputs()
    model.train()
    out = model(**inputs, labels=labels_from(inputs))
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    nvib_grads = [p.grad for n, p in model.named_parameters() if ".nvib." in n and p.requires_grad]
    assert nvib_grads and any(g.abs().sum() > 0 for g in nvib_grads)
    model.eval()
    ref = _logits(model, inputs)
    model.save_pretrained(tmp_path)
    reloaded = peft.PeftModel.from_pretrained(backbone.nvib(), tmp_path).eval()
    torch.testing.assert_close(_logits(reloaded, inputs), ref, atol=1e-6, rtol=0)
    merged = reloaded.merge_and_unload().eval()
    assert type(merged) is backbone.nvib_class
    torch.testing.assert_close(_logits(merged, inputs), ref, atol=1e-4, rtol=0)
