"""Publish an NVIB run directory to the Hub: weights (safetensors), config, generation config,
tokenizer, metrics, plots and a rendered model card, in one commit.

Local files are only read: the card (and, for remote-code pushes, config.json with `auto_map`)
are built in memory and uploaded from bytes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from hf_nvib.hub.card import PLOTS_DIR_IN_REPO, NvibModelCardData, find_plots, render_model_card
from hf_nvib.hub.scrub import known_secrets, scrub_text, scrub_value

logger = logging.getLogger(__name__)

MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja",
)  # fmt: skip
RUN_FILES = ("metrics.json", "run_config.json", "trainer_state.json")
UNSAFE_WEIGHTS = ("pytorch_model.bin", "model.pt", "model.pth", "pytorch_model.bin.index.json")
# Never published from a Trainer output dir: pickles (arbitrary code on load; weights go as
# safetensors) and `training_args.bin` in particular (it holds the hub token and local paths).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TRAINING_ARGS_FILE = "training_args.bin"


class HubPushError(RuntimeError):
    """A push failed; the message names the repo, the endpoint/status and a likely fix."""


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit_sha: str
    commit_url: str
    files: tuple[str, ...]
    # huggingface_hub's CommitInfo (what transformers' `push_to_hub` returns)
    commit_info: Any = field(default=None, repr=False, compare=False)


def collect_run_files(run_dir: str | Path) -> dict[str, Path]:
    """Map path-in-repo → local file for everything a run publishes; raise on an invalid run dir."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir.name!r} does not exist")
    present = {p.name for p in run_dir.iterdir() if p.is_file()}
    missing = []
    if "config.json" not in present:
        missing.append("config.json")
    shards = sorted(p for p in present if p.startswith("model-") and p.endswith(".safetensors"))
    if "model.safetensors" not in present and not (
        "model.safetensors.index.json" in present and shards
    ):
        if any(name in present for name in UNSAFE_WEIGHTS):
            raise ValueError(
                f"{run_dir.name}: only pickle weights (pytorch_model.bin) found; hf-nvib publishes "
                "safetensors only: re-save with model.save_pretrained(dir) (safe_serialization)"
            )
        missing.append("model.safetensors (or model.safetensors.index.json + shards)")
    if missing:
        raise FileNotFoundError(
            f"{run_dir.name} is not a saved NVIB run: missing {', '.join(missing)}"
        )
    files = {
        name: run_dir / name
        for name in (*MODEL_FILES, *TOKENIZER_FILES, *RUN_FILES, *shards)
        if name in present
    }
    for name, path in find_plots(run_dir).items():
        files[f"{PLOTS_DIR_IN_REPO}/{name}"] = path
    return files


def _skip_in_folder(relative: Path, keep_pickles: bool) -> bool:
    top = relative.parts[0]
    if top.startswith(("_", "checkpoint-", ".git", ".cache")):  # as transformers' Trainer
        return True
    if relative.name == TRAINING_ARGS_FILE:
        return True
    return not keep_pickles and relative.suffix in PICKLE_SUFFIXES


def folder_operations(
    folder: str | Path,
    *,
    path_in_repo: str | None = None,
    keep_pickles: bool = False,
    secrets: list[str] | None = None,
) -> list[CommitOperationAdd]:
    """Commit operations for a Trainer output (or checkpoint) folder.

    Leaves out what transformers' Trainer leaves out (`_*`, `checkpoint-*`), `training_args.bin`
    always and other pickles unless `keep_pickles` (a resumable checkpoint needs its optimizer
    state); run files (`trainer_state.json`, ...) and the card are uploaded scrubbed.
    """
    folder = Path(folder)
    secrets = known_secrets() if secrets is None else secrets
    prefix = f"{path_in_repo.strip('/')}/" if path_in_repo else ""
    operations = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if _skip_in_folder(relative, keep_pickles):
            continue
        content: str | bytes = str(path)
        if path.name in RUN_FILES:
            data = scrub_value(json.loads(path.read_text(encoding="utf-8")), secrets)
            content = (json.dumps(data, indent=2) + "\n").encode()
        elif path.name == "README.md":
            content = scrub_text(path.read_text(encoding="utf-8"), secrets).encode()
        operations.append(
            CommitOperationAdd(path_in_repo=prefix + relative.as_posix(), path_or_fileobj=content)
        )
    return operations


def describe_hub_error(exc: BaseException, repo_id: str, endpoint: str, action: str) -> str:
    """A one-paragraph, secret-free explanation with a likely fix."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        request = getattr(response, "request", None)
        where = f"{request.method} {urlsplit(str(request.url)).path}" if request else endpoint
        server = getattr(exc, "server_message", "") or ""
        hints = {
            401: "the token was rejected: set HF_TOKEN or run `hf auth login` with a write token",
            403: "the token has no write access to this repo or namespace",
            404: "the repo or revision does not exist: check the repo id 'namespace/name' and the "
            "branch, or create the repo first",
            409: "conflict with the current state of the repo: pull the latest revision and retry",
            412: "the branch moved during the push: retry",
            413: "a file is too large for a regular upload",
        }
        hint = hints.get(status, "the Hub had a server error: retry later" if status >= 500 else "")
        detail = f" ({server.strip()})" if server and server.strip() else ""
        message = (
            f"Could not {action} {repo_id!r} on {endpoint}: HTTP {status} at {where}{detail}. "
            f"Hint: {hint or 'see the server message'}."
        )
    else:
        message = (
            f"Could not {action} {repo_id!r}: the Hub at {endpoint} is unreachable "
            f"({type(exc).__name__}: {exc}). Hint: check the network, HF_ENDPOINT, or whether the "
            "server is down."
        )
    return scrub_text(message, known_secrets(), paths=False)


def _config_bytes(config_path: Path, auto_map: dict[str, str] | None) -> bytes | None:
    if not auto_map:
        return None
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["auto_map"] = auto_map
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def push_run(
    run_dir: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    with_code: bool = False,
    token: str | bool | None = None,
    endpoint: str | None = None,
    card_kwargs: dict[str, Any] | None = None,
) -> PushResult:
    """Create `repo_id` if needed and upload the run in a single commit.

    `revision` is a branch (created from main if missing); `create_pr` opens a pull request
    instead of committing to it. `with_code=True` also uploads
    self-contained modeling files and sets `auto_map`, so users without hf-nvib can load with
    `trust_remote_code=True`. Raises `HubPushError` (HTTP/network) with a fix hint.
    """
    run_dir = Path(run_dir)
    files = collect_run_files(run_dir)
    secrets = known_secrets([token if isinstance(token, str) else None])
    api = HfApi(endpoint=endpoint, token=token)
    card_data = NvibModelCardData.from_run_dir(
        run_dir, repo_id=repo_id, remote_code=with_code, secrets=secrets, **(card_kwargs or {})
    )
    card = render_model_card(card_data, secrets=secrets)

    extra: dict[str, bytes] = {"README.md": str(card).encode()}
    for name in RUN_FILES:  # run configs carry output paths and sometimes a hub_token
        if name in files:
            data = scrub_value(json.loads(files[name].read_text(encoding="utf-8")), secrets)
            extra[name] = (json.dumps(data, indent=2) + "\n").encode()
    if with_code:
        from hf_nvib.hub.remote_code import remote_code_files

        config = json.loads(files["config.json"].read_text(encoding="utf-8"))
        code_files, auto_map = remote_code_files(config)
        extra.update(code_files)
        extra["config.json"] = _config_bytes(files["config.json"], auto_map) or b""

    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path))
        for name, path in files.items()
        if name not in extra
    ]
    operations += [CommitOperationAdd(path_in_repo=n, path_or_fileobj=b) for n, b in extra.items()]
    message = commit_message or f"Upload NVIB model ({run_dir.name}) with hf-nvib"
    action = "create"
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        repo_id = repo_url.repo_id
        if revision and revision != "main" and not revision.startswith("refs/pr"):
            action = "create branch on"
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        action = "push to"
        info = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=message,
            commit_description=commit_description,
            revision=revision,
            create_pr=create_pr,
        )
    except HfHubHTTPError as exc:
        raise HubPushError(describe_hub_error(exc, repo_id, api.endpoint, action)) from None
    except OSError as exc:  # connection refused/reset, DNS, timeouts (httpx errors are OSErrors?)
        raise HubPushError(describe_hub_error(exc, repo_id, api.endpoint, action)) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise HubPushError(describe_hub_error(exc, repo_id, api.endpoint, action)) from None
        raise
    logger.info("pushed %s to %s@%s", run_dir.name, repo_id, info.oid[:10])
    return PushResult(
        repo_id,
        info.oid,
        str(info.commit_url),
        tuple(sorted(extra.keys() | files.keys())),
        commit_info=info,
    )
