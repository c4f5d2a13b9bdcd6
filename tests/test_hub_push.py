"""Round trips through the real huggingface_hub/transformers clients against tests/hub_server.py.

Each client runs in a fresh interpreter (HF_ENDPOINT/HF_HUB_OFFLINE are read at import).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_server import (
    TINY_RUN_SNIPPET,
    TOKEN,
    HubServer,
    card_metrics,
    file_hashes,
    last_json,
    read_card,
    run_client,
)

from hf_nvib.hub.card import flatten_metrics


@pytest.fixture
def hub():
    with HubServer(time_limit=300) as server:
        yield server


ROUND_TRIP = (
    TINY_RUN_SNIPPET
    + r"""
import sys
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from hf_nvib import NvibBartConfig, NvibBartForConditionalGeneration
from hf_nvib import NvibT5Config, NvibT5ForConditionalGeneration
from hf_nvib.hub.push import push_run

repo = "tester/tiny-bart"
m1, tok = make_run("run1", NvibBartForConditionalGeneration, NvibBartConfig, seed=0)
m2, _ = make_run("run2", NvibBartForConditionalGeneration, NvibBartConfig, seed=1)
ref1, ref2 = generate(m1, tok), generate(m2, tok)
assert ref1 != ref2
print("hashes-ready", flush=True)
sys.stdin.readline()  # the test hashes the run dirs here
first = push_run("run1", repo)
second = push_run("run2", repo, commit_message="second run")
loaded = AutoModelForSeq2SeqLM.from_pretrained(repo)
pinned = AutoModelForSeq2SeqLM.from_pretrained(repo, revision=first.commit_sha)
loaded_tok = AutoTokenizer.from_pretrained(repo)

# model.push_to_hub goes through NvibPushToHubMixin (NVIB card), here with NVIB-T5.
torch.manual_seed(3)
t5 = NvibT5ForConditionalGeneration(tiny_t5_config(NvibT5Config))
t5.generation_config = generation_config(start=1)
info = t5.push_to_hub("tester/tiny-t5", tags=["my-tag"], tokenizer=tok, commit_message="t5 push")
t5_loaded = AutoModelForSeq2SeqLM.from_pretrained("tester/tiny-t5")
t5_tok = AutoTokenizer.from_pretrained("tester/tiny-t5")
try:
    AutoModelForSeq2SeqLM.from_pretrained("tester/does-not-exist")
    missing = ""
except OSError as exc:
    missing = str(exc)
print(json.dumps({
    "first": first.commit_sha, "second": second.commit_sha, "files": first.files,
    "classes": [type(m).__name__ for m in (loaded, pinned, t5_loaded)],
    "same_latest": generate(loaded, loaded_tok) == ref2,
    "same_pinned": generate(pinned, tok) == ref1,
    "ids_equal": loaded_tok(SAMPLE)["input_ids"] == tok(SAMPLE)["input_ids"],
    "vocab_equal": loaded_tok.get_vocab() == tok.get_vocab(),
    "t5_same": generate(t5_loaded, t5_tok) == generate(t5, tok),
    "t5_info": [type(info).__name__, str(info), info.oid],
    "missing": missing,
}))
"""
)


def _assert_nvib_card(metadata: dict) -> None:
    assert metadata["library_name"] == "hf-nvib"
    assert "nvib" in metadata["tags"]
    assert metadata["pipeline_tag"] == "text2text-generation"


def _assert_no_leak(files: dict[str, bytes], tmp_path: Path) -> None:
    """No token, no absolute local path in any published text file."""
    import os

    home = os.path.expanduser("~") + "/"
    for name, content in files.items():
        if name.endswith((".json", ".md", ".txt", ".py")):
            text = content.decode()
            assert TOKEN not in text, name
            assert str(tmp_path) not in text and home not in text, name


def test_push_load_revision_round_trip(hub: HubServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = hub.client_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", ROUND_TRIP], env=env, cwd=tmp_path, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "hashes-ready", proc.stderr and proc.stderr.read()
    before = {run: file_hashes(tmp_path / run) for run in ("run1", "run2")}
    proc.stdin.write("\n")
    proc.stdin.flush()
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-6000:]
    result = last_json(stdout)
    assert result["classes"] == ["NvibBartForConditionalGeneration"] * 2 + [
        "NvibT5ForConditionalGeneration"
    ]
    assert result["same_latest"] and result["same_pinned"]
    assert result["ids_equal"] and result["vocab_equal"]
    assert "tester/does-not-exist" in result["missing"]
    # Local checkpoints untouched.
    assert {run: file_hashes(tmp_path / run) for run in ("run1", "run2")} == before

    repo = "tester/tiny-bart"
    history = hub.history(repo)
    assert history[-2:] == [result["first"], result["second"]]
    files = hub.files(repo)
    expected = {
        "README.md", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json", "metrics.json", "run_config.json",
        "trainer_state.json", "plots/kl.png",
    }  # fmt: skip
    assert expected <= set(files), sorted(files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert json.loads(files["config.json"])["model_type"] == "nvib_bart"
    assert files["model.safetensors"] == (tmp_path / "run2" / "model.safetensors").read_bytes()
    # The older commit still serves the first run's weights (resolve/{sha}).
    old = hub.files(repo, result["first"])
    assert old["model.safetensors"] == (tmp_path / "run1" / "model.safetensors").read_bytes()

    metadata, body = read_card(files["README.md"])
    _assert_nvib_card(metadata)
    assert metadata["datasets"] == ["toy-copy"]
    run_metrics = json.loads((tmp_path / "run2" / "metrics.json").read_text())
    assert card_metrics(metadata) == flatten_metrics(run_metrics)
    assert card_metrics(metadata)["eval/in_domain/bleu"] == 3.25
    assert "![kl.png](plots/kl.png)" in body
    assert 'from_pretrained("tester/tiny-bart")' in body and "import hf_nvib" in body
    assert "placeholder" not in body  # the run dir's README is replaced by the rendered card
    _assert_no_leak(files, tmp_path)
    state = json.loads(files["trainer_state.json"])
    assert state["best_model_checkpoint"] == "checkpoint-4"
    # every write request carried the token; nothing leaked into URLs
    assert all(TOKEN not in path for _, path, _ in hub.state.log)

    # model.push_to_hub (NVIB-T5): weights, config, generation config, tokenizer, NVIB card.
    assert result["t5_same"]
    kind, url, sha = result["t5_info"]
    assert (
        kind == "CommitInfo"
        and url.startswith(hub.url)
        and sha == hub.history("tester/tiny-t5")[-1]
    )
    t5 = hub.repos["tester/tiny-t5"]
    assert t5.commits[t5.branches["main"]].title == "t5 push"
    t5_files = hub.files("tester/tiny-t5")
    assert {
        "README.md", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json",
    } <= set(t5_files)  # fmt: skip
    assert not [f for f in t5_files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert json.loads(t5_files["config.json"])["model_type"] == "nvib_t5"
    t5_meta, t5_body = read_card(t5_files["README.md"])
    _assert_nvib_card(t5_meta)
    assert "my-tag" in t5_meta["tags"]
    assert "| `nvib_kappa` | 1 |" in t5_body
    _assert_no_leak(t5_files, tmp_path)


FAILURES = (
    TINY_RUN_SNIPPET
    + r"""
import socket
from hf_nvib import NvibBartConfig, NvibBartForConditionalGeneration
from hf_nvib.hub.push import HubPushError, push_run

make_run("run", NvibBartForConditionalGeneration, NvibBartConfig)
print("hashes-ready", flush=True)
import sys; sys.stdin.readline()
errors = {}
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); dead = f"http://127.0.0.1:{s.getsockname()[1]}"
for name, kwargs in [("down", {"endpoint": dead}), ("repo404", {}), ("commit500", {}),
                     ("badtoken", {"token": "hf_" + "x" * 34})]:
    try:
        push_run("run", f"tester/{name}", **kwargs)
        errors[name] = None
    except HubPushError as exc:
        errors[name] = str(exc)
print(json.dumps(errors))
"""
)


def test_push_failures_are_clear_and_leave_checkpoint_untouched(
    hub: HubServer, tmp_path: Path
) -> None:
    import subprocess
    import sys

    hub.fail("POST", r"/api/models/tester/repo404/preupload/", status=404)
    hub.fail("POST", r"/api/models/tester/commit500/commit/", status=500)
    env = hub.client_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", FAILURES], env=env, cwd=tmp_path, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "hashes-ready"
    before = file_hashes(tmp_path / "run")
    proc.stdin.write("\n")
    proc.stdin.flush()
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-6000:]
    errors = last_json(stdout)
    assert file_hashes(tmp_path / "run") == before

    assert "unreachable" in errors["down"] and "server is down" in errors["down"]
    assert "HTTP 404" in errors["repo404"] and "'tester/repo404'" in errors["repo404"]
    assert "preupload" in errors["repo404"] and "repo id" in errors["repo404"]
    assert "HTTP 500" in errors["commit500"] and "/commit/main" in errors["commit500"]
    assert "retry later" in errors["commit500"]
    assert "HTTP 401" in errors["badtoken"] and "HF_TOKEN" in errors["badtoken"]
    for message in errors.values():
        assert TOKEN not in message and str(tmp_path) not in message
    # A failed commit leaves the remote branch where it was (only the initial commit).
    assert len(hub.history("tester/commit500")) == 1
    assert ".gitattributes" in hub.files("tester/commit500")


CLI_PUSH = (
    TINY_RUN_SNIPPET
    + r"""
import argparse
from hf_nvib import NvibBartConfig, NvibBartForConditionalGeneration
from hf_nvib.hub.cli_push import add_push_arguments, run_push

make_run("run", NvibBartForConditionalGeneration, NvibBartConfig)
parser = argparse.ArgumentParser()
add_push_arguments(parser)
ok = run_push(parser.parse_args(["run", "tester/cli-push", "--private", "--commit-message", "cli"]))
bad = run_push(parser.parse_args(["missing-run", "tester/cli-push"]))
print(json.dumps([ok, bad]))
"""
)


def test_cli_push(hub: HubServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    stdout = run_client(hub, CLI_PUSH, tmp_path)
    assert last_json(stdout) == [0, 1]
    repo = hub.repos["tester/cli-push"]
    assert repo.private
    files = hub.files("tester/cli-push")
    assert {"README.md", "model.safetensors", "config.json", "tokenizer.json"} <= set(files)
    metadata, _ = read_card(files["README.md"])
    _assert_nvib_card(metadata)
    run_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert card_metrics(metadata) == flatten_metrics(run_metrics)
    assert json.loads(files["metrics.json"]) == run_metrics
    _assert_no_leak(files, tmp_path)
    assert repo.commits[repo.branches["main"]].title == "cli"
    assert "Pushed" in stdout and TOKEN not in stdout and str(tmp_path) not in stdout
