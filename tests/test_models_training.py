"""Loss, gradients, gradient accumulation, mixed precision and numerics of the NVIB models."""

from __future__ import annotations

import pytest
import torch
from _nvib_model_fixtures import Backbone, backbone_fixture, labels_from  # noqa: F401
from datasets import Dataset
from transformers import (
    DataCollatorForSeq2Seq,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

# Eight sources and targets of five words each: every micro-batch holds the same number of
# label tokens, so GA=2 × 4 and GA=1 × 8 must give the same mean loss and gradients.
PAIRS = [
    ("the cat sat on mat", "a dog ran under tree"),
    ("a red fox jumps over", "the lazy dog sleeps on"),
    ("big bird flew over house", "small car on the road"),
    ("sun and moon at night", "the star and the rain"),
    ("the quick fox walks on", "a slow dog eats the"),
    ("green tree under blue sun", "red house and big car"),
    ("the cat sings at night", "a bird flew over river"),
    ("snow on the road and", "rain on the house but"),
]


def _no_dropout(name: str) -> dict:
    if name == "bart":
        return {"dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}
    return {"dropout_rate": 0.0}


def _deterministic_model(backbone: Backbone):
    """Training mode whose samples equal their means to float32 precision (σ² = 0 and
    α ~ e^40: Gamma noise ~e^-20), but with NVIB weights off the identity and λ's non-zero."""
    model = backbone.nvib(
        nvib_stdev_tau=0.0,
        nvib_alpha_tau=40.0,
        nvib_lambda_gaussian=0.1,
        nvib_lambda_dirichlet=0.5,
        **_no_dropout(backbone.name),
    )
    with torch.no_grad():
        model.get_encoder().nvib.mu_proj.weight.mul_(0.9)
    return model.train()


def _pair_batch(tokenizer, pairs):
    enc = tokenizer([s for s, _ in pairs], text_target=[t for _, t in pairs], return_tensors="pt")
    return dict(enc)


def test_loss_is_ce_plus_weighted_kl(backbone: Backbone) -> None:
    model = backbone.nvib(nvib_lambda_gaussian=0.1, nvib_lambda_dirichlet=0.5).train()
    inputs = backbone.inputs()
    labels = labels_from(inputs)
    for w_g, w_d in ((1.0, 1.0), (0.3, 0.0), (0.0, 2.0)):
        model.set_kl_weights(gaussian=w_g, dirichlet=w_d)
        torch.manual_seed(0)
        out = model(**inputs, labels=labels)
        expected = out.ce_loss + 0.1 * w_g * out.kl_gaussian + 0.5 * w_d * out.kl_dirichlet
        torch.testing.assert_close(out.loss, expected)
        for name in ("ce_loss", "kl_gaussian", "kl_dirichlet", "kept_proportion", "alpha_sum"):
            assert getattr(out, name).dim() == 0 and torch.isfinite(getattr(out, name)), name
    assert out.kl_gaussian > 1.0  # large at the identity init (maths notes: ≈ 44)
    with pytest.raises(ValueError):
        model.set_kl_weights(gaussian=-1.0)
    assert "kl_gaussian_weight" not in model.state_dict()
    assert model.accepts_loss_kwargs is False


def test_ce_matches_plain_when_lambdas_are_zero(backbone: Backbone) -> None:
    inputs = backbone.inputs()
    labels = labels_from(inputs)
    plain = backbone.plain()
    model = backbone.nvib(nvib_lambda_gaussian=0.0, nvib_lambda_dirichlet=0.0, nvib_alpha_tau=20.0)
    with torch.no_grad():
        ref = plain(**inputs, labels=labels).loss
        out = model(**inputs, labels=labels)
    assert out.loss == out.ce_loss
    torch.testing.assert_close(out.loss, ref, atol=1e-5, rtol=0)


def test_gradient_accumulation_model_level(backbone: Backbone) -> None:
    model = _deterministic_model(backbone)
    tokenizer = backbone.tokenizer()
    full = _pair_batch(tokenizer, PAIRS)
    model.zero_grad()
    model(**full).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    total = 0.0
    for half in (PAIRS[:4], PAIRS[4:]):
        loss = model(**_pair_batch(tokenizer, half)).loss / 2
        loss.backward()
        total += loss.item()
    full_loss = model(**full).loss.item()
    assert total == pytest.approx(full_loss, rel=1e-5)
    assert any(".nvib." in n for n in ref)
    for name, grad in ref.items():
        torch.testing.assert_close(
            dict(model.named_parameters())[name].grad, grad, atol=1e-5, rtol=1e-4
        )


class _GradRecorder(TrainerCallback):
    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_accumulation_with_trainer(backbone: Backbone, tmp_path) -> None:
    tokenizer = backbone.tokenizer()
    rows = [dict(tokenizer(s, text_target=t)) for s, t in PAIRS]
    dataset = Dataset.from_list(rows)
    results = []
    for batch_size, accumulation in ((8, 1), (4, 2)):
        model = _deterministic_model(backbone)
        recorder = _GradRecorder()
        args = Seq2SeqTrainingArguments(
            output_dir=str(tmp_path / f"ga{accumulation}"),
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            learning_rate=0.0,
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            processing_class=tokenizer,
            callbacks=[recorder],
        )
        trainer.train()
        loss = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
        results.append((loss, recorder.grads))
    (loss1, grads1), (loss2, grads2) = results
    assert loss1 == pytest.approx(loss2, rel=1e-4)
    assert grads1.keys() == grads2.keys() and any(".nvib." in n for n in grads1)
    for name in grads1:
        torch.testing.assert_close(grads2[name], grads1[name], atol=1e-5, rtol=1e-4)


def test_bf16_autocast_forward_backward_generate(backbone: Backbone) -> None:
    model = backbone.nvib(nvib_stdev_tau=0.2).train()
    inputs = backbone.inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inputs, labels=labels_from(inputs))
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits).all()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        logits = model(**inputs, decoder_input_ids=inputs["input_ids"]).logits
        generated = model.generate(**inputs, num_beams=2, max_new_tokens=5)
    assert torch.isfinite(logits).all() and generated.shape[0] == inputs["input_ids"].shape[0]


@pytest.mark.parametrize("norm_scale", [30.0, 300.0])
def test_t5_large_encoder_norms_stay_finite(tmp_path, norm_scale: float) -> None:
    """T5's encoder outputs can have large norms: ½‖x‖² (log α at the identity) in the
    thousands overflows exp() in float32 unless everything stays in log space."""
    from _nvib_model_fixtures import Backbone
    from tiny_models import make_tiny_t5
    from transformers import T5ForConditionalGeneration

    import hf_nvib

    t5 = Backbone(
        "t5",
        make_tiny_t5(tmp_path),
        T5ForConditionalGeneration,
        hf_nvib.NvibT5ForConditionalGeneration,
    )
    model = t5.nvib(nvib_stdev_tau=0.1)
    plain = t5.plain()
    for m in (model, plain):
        with torch.no_grad():
            m.get_encoder().final_layer_norm.weight.mul_(norm_scale)
    inputs = t5.inputs()
    enc = model.get_encoder()(**inputs)
    real = enc.attention_mask.bool()
    assert enc.log_alpha[real].max() > 500.0  # exp() of this is inf in float32
    for name in ("kl_gaussian", "kl_dirichlet", "alpha_sum"):
        assert torch.isfinite(getattr(enc, name)).all(), name
    with torch.no_grad():
        out = model(**inputs, labels=labels_from(inputs))
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits).all()
    model.train()
    out = model(**inputs, labels=labels_from(inputs))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    if norm_scale > 100:
        # log π and (s/2)‖z‖² are ~1e5 here and cancel: float32 rounding (~1e-2) then shifts
        # the attention logits, so exact identity is only claimed for moderate norms.
        return
    exact = t5.nvib(nvib_alpha_tau=20.0)
    with torch.no_grad():
        exact.get_encoder().final_layer_norm.weight.mul_(norm_scale)
    assert torch.equal(
        exact.generate(**inputs, max_new_tokens=6), plain.generate(**inputs, max_new_tokens=6)
    )
