"""Model card rendering and run-dir validation, in process (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_server import card_metrics, read_card

from hf_nvib.hub.card import NvibModelCardData, flatten_metrics, render_run_card, template_path
from hf_nvib.hub.push import collect_run_files
from hf_nvib.hub.scrub import scrub_text, scrub_value

FAKE_TOKEN = "hf_" + "AbCdEfGhIj" * 3 + "KlMn"


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "my-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "model_type": "nvib_bart", "architectures": ["NvibBartForConditionalGeneration"],
        "d_model": 16, "nvib_kappa": 2, "nvib_alpha_tau": 10.0, "nvib_lambda_dirichlet": 0.5,
    }))  # fmt: skip
    (run / "model.safetensors").write_bytes(b"\0" * 8)
    (run / "metrics.json").write_text(json.dumps(
        {"eval_loss": 1.5, "eval": {"rouge1": 0.25}, "note": "text", "bad": float("nan")}
    ))  # fmt: skip
    (run / "run_config.json").write_text(json.dumps({
        "learning_rate": 0.001, "output_dir": str(run), "hub_token": FAKE_TOKEN,
        "model_name_or_path": "facebook/bart-base", "dataset": str(tmp_path / "corpus.jsonl"),
        "kl_gaussian_schedule": {"kind": "cosine", "start": 0.0},
        "note": f"logged from {Path.home() / 'secret' / 'x.log'} with {FAKE_TOKEN}",
    }))  # fmt: skip
    (run / "loss.png").write_bytes(b"png")
    return run


def test_card_metadata_results_and_scrubbing(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    card = render_run_card(run, "tester/nvib-card")
    metadata, body = read_card(str(card).encode())
    assert metadata["library_name"] == "hf-nvib"
    assert metadata["pipeline_tag"] == "text2text-generation"
    assert {"nvib"} <= set(metadata["tags"])
    assert metadata["base_model"] == "facebook/bart-base"
    assert metadata["datasets"] == ["corpus.jsonl"]
    assert card_metrics(metadata) == {"eval_loss": 1.5, "eval/rouge1": 0.25}  # NaN/text left out
    assert "| `nvib_kappa` | 2 |" in body and "| `nvib_lambda_dirichlet` | 0.5 |" in body
    assert "| `learning_rate` | 0.001 |" in body and "kl_gaussian_schedule" in body
    assert "![loss.png](plots/loss.png)" in body
    assert "pip install hf-nvib" in body and "import hf_nvib" in body
    assert 'AutoModelForSeq2SeqLM.from_pretrained("tester/nvib-card")' in body
    assert "trust_remote_code" not in body
    text = str(card)
    assert FAKE_TOKEN not in text and str(tmp_path) not in text and str(Path.home()) not in text


def test_remote_code_card_mentions_trust_remote_code(tmp_path: Path) -> None:
    data = NvibModelCardData.from_run_dir(_run_dir(tmp_path), repo_id="a/b", remote_code=True)
    assert "trust_remote_code=True" in str(
        render_run_card(tmp_path / "my-run", "a/b", remote_code=True)
    )
    assert "remote_code" not in data.to_dict() and "nvib_hparams" not in data.to_dict()


def test_scrub_paths_tokens_and_keys() -> None:
    assert scrub_text(f"/home/u/runs/r1 and {FAKE_TOKEN}") == "r1 and <redacted>"
    assert scrub_text("see https://huggingface.co/a/b and C:\\Users\\me\\run") == (
        "see https://huggingface.co/a/b and run"
    )
    assert scrub_text("hf_nvib.models stays") == "hf_nvib.models stays"
    cleaned = scrub_value(
        {"hub_token": "x", "pad_token": "<pad>", "max_new_tokens": 3, "p": "/a/b"}
    )
    assert cleaned == {"pad_token": "<pad>", "max_new_tokens": 3, "p": "b"}


def test_flatten_metrics() -> None:
    assert flatten_metrics({"a": 1, "b": {"c": 2.5, "d": True}, "e": "x"}) == {"a": 1, "b/c": 2.5}


def test_run_dir_validation(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    files = collect_run_files(run)
    assert {"config.json", "model.safetensors", "metrics.json", "plots/loss.png"} <= set(files)
    (run / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"my-run .*missing model\.safetensors"):
        collect_run_files(run)
    (run / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="safetensors only"):
        collect_run_files(run)
    (run / "pytorch_model.bin").unlink()
    (run / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        collect_run_files(run)


def test_template_is_found_and_packaged() -> None:
    path = template_path()
    assert path.is_file() and "{{ card_data }}" in path.read_text()


def test_folder_operations_skip_pickles_and_scrub(tmp_path: Path) -> None:
    from hf_nvib.hub.push import folder_operations

    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    for name in ("model.safetensors", "training_args.bin", "pytorch_model.bin", "optimizer.pt"):
        (out / name).write_bytes(b"x")
    (out / "checkpoint-2" / "model.safetensors").write_bytes(b"x")
    (out / "_private.json").write_text("{}")
    (out / "trainer_state.json").write_text(
        json.dumps({"best_model_checkpoint": str(out / "checkpoint-2"), "hub_token": FAKE_TOKEN})
    )
    ops = {op.path_in_repo: op for op in folder_operations(out, secrets=[FAKE_TOKEN])}
    assert set(ops) == {"model.safetensors", "trainer_state.json"}
    state = json.loads(ops["trainer_state.json"].path_or_fileobj)
    assert state == {"best_model_checkpoint": "checkpoint-2"}
    kept = folder_operations(out / "checkpoint-2", path_in_repo="last-checkpoint")
    assert [op.path_in_repo for op in kept] == ["last-checkpoint/model.safetensors"]
    (out / "checkpoint-2" / "optimizer.pt").write_bytes(b"x")
    (out / "checkpoint-2" / "training_args.bin").write_bytes(b"x")
    resumable = folder_operations(out / "checkpoint-2", keep_pickles=True)
    assert sorted(op.path_in_repo for op in resumable) == ["model.safetensors", "optimizer.pt"]


def test_push_to_hub_falls_back_without_hub_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote-code copy of the model (no hf-nvib installed) pushes the transformers way."""
    from transformers import PreTrainedModel

    import hf_nvib
    from hf_nvib.models import hub_mixin

    config = hf_nvib.NvibBartConfig(
        vocab_size=12, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8,
        max_position_embeddings=8,
    )  # fmt: skip
    model = hf_nvib.NvibBartForConditionalGeneration(config)
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        PreTrainedModel, "push_to_hub", lambda self, repo_id, **kw: calls.append((repo_id, kw))
    )
    monkeypatch.setattr(hub_mixin, "_HUB_MODULE", "hf_nvib_absent_module_for_test")
    model.push_to_hub("a/b", commit_message="m")
    assert calls == [("a/b", {"commit_message": "m"})]
