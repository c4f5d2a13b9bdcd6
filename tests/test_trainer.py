"""NvibSeq2SeqTrainer end to end: logged NVIB terms, resume, gradient accumulation, torchrun."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from tiny_models import WORDS, make_tiny_bart, tiny_bart_tokenizer
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainingArguments

from hf_nvib import NvibBartForConditionalGeneration
from hf_nvib.data import build_task_dataset, tokenize_dataset, train_bpe_tokenizer
from hf_nvib.evaluation import build_compute_metrics
from hf_nvib.training import KLSchedule, NvibKLCallback, NvibSeq2SeqTrainer

pytestmark = pytest.mark.xdist_group("trainer")

NVIB_LOG_KEYS = ("ce_loss", "kl_gaussian", "kl_dirichlet", "kept_proportion", "alpha_sum")


def _args(out: Path, **overrides) -> Seq2SeqTrainingArguments:
    values = {
        "output_dir": str(out),
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "learning_rate": 1e-3,
        "max_steps": 6,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
        "data_seed": 0,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    values.update(overrides)
    return Seq2SeqTrainingArguments(**values)


def _fixed_length_dataset(tokenizer, n: int = 32, words: int = 6) -> Dataset:
    """Sentences of equal token length: per-batch token means then agree across batchings."""
    rows = []
    for i in range(n):
        sentence = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words))
        rows.append({"source": sentence, "target": sentence})
    return tokenize_dataset(Dataset.from_list(rows), tokenizer, 32, 32)


def _model(path: Path, **nvib) -> NvibBartForConditionalGeneration:
    nvib = {"dropout": 0.0, "attention_dropout": 0.0, **nvib}
    return NvibBartForConditionalGeneration.from_pretrained(path, **nvib)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """A BPE tokenizer and tokenised denoising data from the bundled corpus (small slices)."""
    texts = [row["source"] for row in build_task_dataset("translate", "train", limit=400)]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300, min_frequency=1)
    train = build_task_dataset("denoise", "train", limit=64, mask_token=tokenizer.mask_token)
    valid = build_task_dataset("denoise", "validation", limit=16, mask_token=tokenizer.mask_token)
    return (
        tokenizer,
        tokenize_dataset(train, tokenizer, 48, 48),
        tokenize_dataset(valid, tokenizer, 48, 48),
    )


def test_end_to_end_logs_nvib_terms_in_train_and_generate_eval(bundled, tmp_path):
    tokenizer, train, valid = bundled
    plain = make_tiny_bart(tmp_path, vocab_size=len(tokenizer), max_position_embeddings=64)
    model = _model(plain, nvib_lambda_gaussian=0.01, nvib_lambda_dirichlet=1.0)
    callback = NvibKLCallback(
        gaussian=KLSchedule("linear", start=0.0, end=1.0),
        dirichlet=KLSchedule("constant", value=0.5),
    )
    trainer = NvibSeq2SeqTrainer(
        model=model,
        args=_args(
            tmp_path / "out",
            eval_strategy="steps",
            eval_steps=3,
            predict_with_generate=True,
            generation_max_length=20,
            remove_unused_columns=True,
        ),
        train_dataset=train,
        eval_dataset=valid,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=build_compute_metrics(tokenizer),
        callbacks=[callback],
    )
    trainer.train()
    history = trainer.state.log_history
    train_logs = [h for h in history if "loss" in h and "eval_loss" not in h]
    eval_logs = [h for h in history if "eval_loss" in h]
    assert len(train_logs) == 6 and len(eval_logs) == 2
    for log in train_logs:
        for key in NVIB_LOG_KEYS:
            assert math.isfinite(log[key]), (key, log)
        assert 0.0 < log["kept_proportion"] <= 1.0
        assert log["kl_gaussian"] > 0.0
        assert log["kl_dirichlet_weight"] == pytest.approx(0.5)
        # loss = CE + λ_G·w_G·KL_G + λ_D·w_D·KL_D at the step's weights (one micro-batch per log).
        expected = (
            log["ce_loss"]
            + 0.01 * log["kl_gaussian_weight"] * log["kl_gaussian"]
            + 1.0 * 0.5 * log["kl_dirichlet"]
        )
        assert log["loss"] == pytest.approx(expected, rel=1e-4)
    # The linear schedule over 6 steps: w_G(step) = step/6, applied before each step.
    assert [round(h["kl_gaussian_weight"], 6) for h in train_logs] == [
        round(s / 6, 6) for s in range(6)
    ]
    for log in eval_logs:  # predict_with_generate bypasses compute_loss: KL still reported
        for key in NVIB_LOG_KEYS:
            assert math.isfinite(log[f"eval_{key}"]), (key, log)
        assert "eval_bleu" in log and "eval_chrf" in log


def test_resume_continues_schedule_and_loss_curve(tmp_path):
    tokenizer = tiny_bart_tokenizer()
    data = _fixed_length_dataset(tokenizer)
    plain = make_tiny_bart(tmp_path)
    callback_kwargs = {"gaussian": KLSchedule("cosine", start=0.0, end=0.8)}

    def run(out: Path, resume: str | None = None, max_steps: int = 6) -> list[dict]:
        model = _model(plain, nvib_stdev_tau=0.5, nvib_alpha_tau=2.0)
        trainer = NvibSeq2SeqTrainer(
            model=model,
            args=_args(out, max_steps=max_steps, save_strategy="steps", save_steps=3),
            train_dataset=data,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            callbacks=[NvibKLCallback(**callback_kwargs)],
        )
        trainer.train(resume_from_checkpoint=resume)
        return [h for h in trainer.state.log_history if "loss" in h]

    straight = run(tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    run(interrupted, max_steps=6)  # writes checkpoint-3 with the same trajectory
    for extra in interrupted.glob("checkpoint-6"):
        shutil.rmtree(extra)
    resumed = run(interrupted, resume=str(interrupted / "checkpoint-3"))
    tail = [h for h in resumed if h["step"] > 3]
    assert [h["step"] for h in tail] == [4, 5, 6]
    for a, b in zip([h for h in straight if h["step"] > 3], tail, strict=True):
        assert b["kl_gaussian_weight"] == pytest.approx(a["kl_gaussian_weight"], abs=1e-12)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["kl_gaussian"] == pytest.approx(a["kl_gaussian"], rel=1e-5)


def _first_step(tmp_path: Path, batch: int, accumulation: int) -> tuple[float, torch.Tensor]:
    tokenizer = tiny_bart_tokenizer()
    data = _fixed_length_dataset(tokenizer, n=8)
    # alpha_tau=30: Dirichlet samples equal their means to ~1e-7, stdev_tau=0: no Gaussian noise,
    # so batching is the only difference between the runs.
    model = _model(make_tiny_bart(tmp_path), nvib_alpha_tau=30.0, nvib_stdev_tau=0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = NvibSeq2SeqTrainer(
        model=model,
        args=_args(
            tmp_path / "out",
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            learning_rate=1e-2,
            optim="sgd",
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
        ),
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
    )
    trainer.train()
    loss = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
    update = torch.cat([(p.detach() - before[n]).flatten() for n, p in model.named_parameters()])
    return loss, update


def test_gradient_accumulation_reports_true_loss_and_gradients(tmp_path):
    loss_1, update_1 = _first_step(tmp_path / "ga1", batch=8, accumulation=1)
    loss_2, update_2 = _first_step(tmp_path / "ga2", batch=4, accumulation=2)
    assert loss_2 == pytest.approx(loss_1, rel=1e-5)
    assert update_1.abs().max() > 0
    torch.testing.assert_close(update_2, update_1, rtol=1e-4, atol=1e-7)


TWO_PROCESS_SCRIPT = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_trainer import _first_step_logs
out = Path(sys.argv[2])
logs = _first_step_logs(out, batch=int(sys.argv[3]))
import torch.distributed as dist
if not dist.is_initialized() or dist.get_rank() == 0:
    (out / "logs.json").write_text(json.dumps(logs))
"""


def _first_step_logs(out: Path, batch: int) -> list[dict]:
    """Two logged steps of a deterministic run; used in-process and under torchrun."""
    tokenizer = tiny_bart_tokenizer()
    data = _fixed_length_dataset(tokenizer, n=16)
    model = _model(make_tiny_bart(out / "ckpt"), nvib_alpha_tau=30.0, nvib_stdev_tau=0.0)
    trainer = NvibSeq2SeqTrainer(
        model=model,
        args=_args(
            out / "run",
            per_device_train_batch_size=batch,
            max_steps=2,
            optim="sgd",
            lr_scheduler_type="constant",
            learning_rate=1e-2,
            max_grad_norm=0.0,
        ),
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
    )
    trainer.train()
    return [h for h in trainer.state.log_history if "loss" in h]


@pytest.mark.slow
def test_two_processes_report_the_same_loss_as_one(tmp_path):
    single = _first_step_logs(tmp_path / "single", batch=8)
    script = tmp_path / "two_process.py"
    script.write_text(TWO_PROCESS_SCRIPT)
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    tests_dir = str(Path(__file__).resolve().parent)
    result = subprocess.run(
        [*torchrun, "--standalone", str(script), tests_dir, str(out), "4"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    double = json.loads((out / "logs.json").read_text())
    assert len(double) == len(single) == 2
    for a, b in zip(single, double, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["ce_loss"] == pytest.approx(a["ce_loss"], rel=1e-5)
        assert b["kl_gaussian"] == pytest.approx(a["kl_gaussian"], rel=1e-5)


def test_peft_wrapped_model_trains_with_annealing_and_logging(tmp_path):
    from peft import LoraConfig, get_peft_model

    tokenizer = tiny_bart_tokenizer()
    data = _fixed_length_dataset(tokenizer, n=16)
    model = _model(make_tiny_bart(tmp_path), nvib_stdev_tau=0.5, nvib_alpha_tau=2.0)
    lora = LoraConfig(target_modules=["q_proj", "v_proj"], modules_to_save=["nvib"], r=4)
    peft_model = get_peft_model(model, lora)
    nvib_before = model.model.encoder.nvib.alpha_proj.bias.detach().clone()
    trainer = NvibSeq2SeqTrainer(
        model=peft_model,
        args=_args(tmp_path / "out", max_steps=3, per_device_train_batch_size=4),
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        callbacks=[NvibKLCallback(gaussian=KLSchedule("linear", start=0.0, end=1.0))],
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [round(h["kl_gaussian_weight"], 6) for h in logs] == [
        0.0,
        round(1 / 3, 6),
        round(2 / 3, 6),
    ]
    assert all(math.isfinite(h["kl_gaussian"]) for h in logs)
    trained_copy = peft_model.base_model.model.model.encoder.nvib.modules_to_save["default"]
    assert not torch.equal(trained_copy.alpha_proj.bias.detach(), nvib_before)


def test_nvib_learning_rate_gives_nvib_layer_its_own_scheduled_lr(tmp_path):
    tokenizer = tiny_bart_tokenizer()
    data = _fixed_length_dataset(tokenizer)
    model = _model(make_tiny_bart(tmp_path))
    args = _args(tmp_path / "out", max_steps=4, warmup_steps=0, lr_scheduler_type="linear")
    trainer = NvibSeq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        nvib_learning_rate=5e-2,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    optimizer = trainer.optimizer
    nvib_ids = {id(p) for p in model.model.encoder.nvib.parameters()}
    lrs = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
    # every trainable parameter in exactly one group; NVIB ones at 5e-2, the rest at 1e-3
    assert sorted(lrs) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(lrs)
    assert all(lrs[i] == pytest.approx(5e-2) for i in nvib_ids)
    others = [lrs[id(p)] for p in model.parameters() if id(p) not in nvib_ids]
    assert others and all(lr == pytest.approx(1e-3) for lr in others)
    # the schedule scales both alike (linear decay to 0 at step 4: 1/4 left after 3 steps)
    ratios = {g["lr"] / g["initial_lr"] for g in optimizer.param_groups}
    assert len({round(r, 12) for r in ratios}) == 1
    # Adam's first steps move each weight by about its LR: the NVIB layer moved ~50x further
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    nvib_move = max(v for n, v in moved.items() if ".nvib." in n)
    other_move = max(v for n, v in moved.items() if ".nvib." not in n)
    assert nvib_move > 10 * other_move
    # a second train() keeps the split optimizer (same groups, no error)
    groups = [len(g["params"]) for g in optimizer.param_groups]
    trainer.train()
    assert [len(g["params"]) for g in trainer.optimizer.param_groups] == groups


def test_nvib_learning_rate_refuses_a_user_optimizer(tmp_path):
    tokenizer = tiny_bart_tokenizer()
    model = _model(make_tiny_bart(tmp_path))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = NvibSeq2SeqTrainer(
        model=model,
        args=_args(tmp_path / "out", max_steps=1),
        train_dataset=_fixed_length_dataset(tokenizer),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        optimizers=(optimizer, None),
        nvib_learning_rate=1e-2,
    )
    with pytest.raises(ValueError, match="optimizer passed through `optimizers=`"):
        trainer.train()


def test_nvib_learning_rate_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="nvib_learning_rate must be > 0"):
        NvibSeq2SeqTrainer(model=_model(make_tiny_bart(tmp_path)), args=_args(tmp_path / "o"),
                           nvib_learning_rate=0.0)  # fmt: skip
