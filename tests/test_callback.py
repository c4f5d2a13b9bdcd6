"""NvibKLCallback: weights written at given steps, through plain/DDP-like/PEFT wrapping."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import TrainerControl, TrainerState

from hf_nvib.training import KLSchedule, NvibKLCallback, find_nvib_model

LINEAR = KLSchedule(kind="linear", start=0.2, end=0.6, value=0.5)  # T=100: 0.125 at 30
CYCLICAL = KLSchedule(kind="cyclical", cycles=4, ratio=0.5)  # T=100: 0.4 at 30, 0 at 50


class KLWeighted(nn.Module):
    """Stands in for an NVIB model: keeps the weights in buffers like the real one."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.register_buffer("kl_gaussian_weight", torch.tensor(1.0), persistent=False)
        self.register_buffer("kl_dirichlet_weight", torch.tensor(1.0), persistent=False)
        self.calls = 0

    def set_kl_weights(self, gaussian: float | None = None, dirichlet: float | None = None) -> None:
        self.calls += 1
        if gaussian is not None:
            self.kl_gaussian_weight.fill_(gaussian)
        if dirichlet is not None:
            self.kl_dirichlet_weight.fill_(dirichlet)

    def weights(self) -> tuple[float, float]:
        return self.kl_gaussian_weight.item(), self.kl_dirichlet_weight.item()


class FakeDDP:
    """Duck-typed DistributedDataParallel: the real model sits in `.module`."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module


class ModuleDDP(nn.Module):
    """An nn.Module wrapper (like torch DDP) whose own class has no setter."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def _state(step: int, total: int = 100) -> TrainerState:
    return TrainerState(global_step=step, max_steps=total)


def _step(callback: NvibKLCallback, model: object, step: int, total: int = 100) -> None:
    callback.on_step_begin(None, _state(step, total), TrainerControl(), model=model)


@pytest.mark.parametrize("wrap", [lambda m: m, FakeDDP, ModuleDDP, lambda m: FakeDDP(FakeDDP(m))])
def test_weights_at_given_steps_plain_and_ddp(wrap) -> None:
    inner = KLWeighted()
    model = wrap(inner)
    cb = NvibKLCallback(gaussian=LINEAR, dirichlet=CYCLICAL)
    expected = {0: (0.0, 0.0), 30: (0.125, 0.4), 50: (0.375, 0.0), 60: (0.5, 0.8), 99: (0.5, 1.0)}
    for step, (g, d) in expected.items():
        _step(cb, model, step)
        assert inner.weights() == pytest.approx((g, d), abs=1e-6)
        assert cb.current_weights == pytest.approx(
            {"kl_gaussian_weight": g, "kl_dirichlet_weight": d}, abs=1e-12
        )
    assert inner.calls == len(expected)


def test_train_begin_and_step_end_write_current_step() -> None:
    inner = KLWeighted()
    cb = NvibKLCallback(gaussian=LINEAR, dirichlet=CYCLICAL)
    cb.on_train_begin(None, _state(40), TrainerControl(), model=inner)
    # Linear (40 - 20) / 40 * 0.5; cyclical tau = (160 mod 100) / 100 = 0.6 >= R → 1.
    assert inner.weights() == pytest.approx((0.25, 1.0))
    # on_step_end sees global_step already incremented: evaluation right after uses step 41.
    cb.on_step_end(None, _state(41), TrainerControl(), model=inner)
    assert inner.weights() == pytest.approx((0.2625, 1.0))


def test_none_schedule_leaves_that_weight_alone() -> None:
    inner = KLWeighted()
    cb = NvibKLCallback(gaussian=LINEAR)
    _step(cb, inner, 30)
    assert inner.weights() == pytest.approx((0.125, 1.0))
    assert cb.current_weights == {"kl_gaussian_weight": 0.125}
    untouched = KLWeighted()
    _step(NvibKLCallback(), untouched, 30)
    assert untouched.calls == 0


def test_finds_nested_module_and_prefers_root() -> None:
    inner = KLWeighted()
    container = nn.Sequential(nn.Linear(2, 2), nn.Sequential(inner))
    assert find_nvib_model(container) is inner
    outer = KLWeighted()
    outer.child = KLWeighted()
    assert find_nvib_model(outer) is outer


def test_instance_attribute_setter_is_found() -> None:
    seen: list[tuple] = []
    module = nn.Sequential(nn.Linear(2, 2))
    module[0].set_kl_weights = lambda gaussian=None, dirichlet=None: seen.append(
        (gaussian, dirichlet)
    )
    _step(NvibKLCallback(gaussian=LINEAR, dirichlet=LINEAR), FakeDDP(module), 40)
    assert seen == [(0.25, 0.25)]


def test_clear_error_without_setter() -> None:
    cb = NvibKLCallback(gaussian=LINEAR)
    with pytest.raises(ValueError, match="set_kl_weights"):
        _step(cb, FakeDDP(nn.Linear(2, 2)), 0)
    with pytest.raises(ValueError, match="no model"):
        _step(cb, None, 0)
    with pytest.raises(TypeError):
        NvibKLCallback(gaussian="linear:0:1")


def test_resume_safe() -> None:
    """A fresh callback at global_step k writes what stepping 0..k wrote."""
    stepped, resumed = KLWeighted(), KLWeighted()
    cb = NvibKLCallback(gaussian=LINEAR, dirichlet=CYCLICAL)
    cb.on_train_begin(None, _state(0), TrainerControl(), model=stepped)
    for k in range(0, 57):
        _step(cb, stepped, k)
        cb.on_step_end(None, _state(k + 1), TrainerControl(), model=stepped)
    _step(cb, stepped, 57)
    fresh = NvibKLCallback(gaussian=LINEAR, dirichlet=CYCLICAL)
    fresh.on_train_begin(None, _state(57), TrainerControl(), model=resumed)
    assert resumed.weights() == stepped.weights()
    _step(fresh, resumed, 57)
    assert resumed.weights() == stepped.weights()
    assert fresh.current_weights == cb.current_weights
    # Linear: 0.5 * (57 - 20) / 40; cyclical: tau = (4 * 57 mod 100) / 100 = 0.28 → 0.28 / 0.5.
    assert stepped.weights() == pytest.approx((0.4625, 0.56))


def _tiny_bart_with_setter():
    from transformers import BartConfig, BartForConditionalGeneration

    class TinyNvibLikeBart(BartForConditionalGeneration):
        """A tiny BART that exposes the NVIB model's weight setter."""

        def set_kl_weights(self, gaussian=None, dirichlet=None) -> None:
            self.kl_weights_seen = (gaussian, dirichlet)

    config = BartConfig(
        vocab_size=32,
        d_model=8,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    return TinyNvibLikeBart(config)


def test_peft_wrapped_bart() -> None:
    from peft import LoraConfig, PeftModel, get_peft_model

    base = _tiny_bart_with_setter()
    peft_model = get_peft_model(
        base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    assert isinstance(peft_model, PeftModel)
    assert find_nvib_model(peft_model) is base
    assert find_nvib_model(FakeDDP(peft_model)) is base
    assert find_nvib_model(peft_model) is base  # the name the NVIB trainer imports
    cb = NvibKLCallback(gaussian=LINEAR, dirichlet=CYCLICAL)
    for step, expected in {10: (0.0, 0.8), 30: (0.125, 0.4), 75: (0.5, 0.0)}.items():
        _step(cb, peft_model, step)
        assert base.kl_weights_seen == pytest.approx(expected, abs=1e-12)
    _step(cb, FakeDDP(peft_model), 40)
    assert base.kl_weights_seen == pytest.approx((0.25, 1.0))


class _LossModel(nn.Module):
    """Records the weights each forward sees; the loss depends on nothing else but a param."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = KLWeighted()
        self.seen: list[tuple[float, float]] = []

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        self.seen.append(self.inner.weights())
        return {"loss": (self.inner.linear(x) ** 2).mean()}


def test_real_trainer_steps(tmp_path) -> None:
    """Inside Trainer.train: every micro-batch of optimizer step t sees weight(t)."""
    from transformers import Trainer, TrainingArguments

    model = _LossModel()
    data = [{"x": torch.ones(2), "labels": torch.zeros(2)} for _ in range(16)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=8,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=2,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    gaussian = KLSchedule(kind="linear", start=0.0, end=0.5)  # T = 8: step / 4
    dirichlet = KLSchedule(kind="cyclical", cycles=2, ratio=0.5)  # 4-step cycles, 2-step ramp
    cb = NvibKLCallback(gaussian=gaussian, dirichlet=dirichlet)
    Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()
    per_step = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    cyc = [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    expected = [(g, d) for g, d in zip(per_step, cyc, strict=True) for _ in range(2)]
    assert model.seen == expected  # exact: 0.25-multiples are representable
    assert cb.current_weights == {"kl_gaussian_weight": 1.0, "kl_dirichlet_weight": 1.0}
