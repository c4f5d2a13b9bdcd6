"""A small Hub-compatible HTTP server for offline push/pull tests.

`huggingface_hub` >= 2 speaks httpx2, which `responses`/`requests-mock` cannot intercept, so the
tests talk to a real server on 127.0.0.1 instead. It implements the endpoints the real
`huggingface_hub`/`transformers` clients use for model repos (create, validate-yaml, preupload
with "regular" inline uploads, NDJSON commit, repo info, tree, paths-info, refs, commits, resolve),
keeps every commit (sha1 ids, `main` → latest) so pinned revisions work, and can inject failures.
It binds to loopback only, on a free port, and shuts itself down after `time_limit` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

USER = "tester"
TOKEN = "hf_" + "TestToken0" * 3 + "Zz9x"  # shaped like a real token (hf_ + 34)
ZERO_SHA = "0" * 40


def git_blob_sha(data: bytes) -> str:
    """The git object id the Hub reports as `oid`/`ETag` for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    description: str
    files: dict[str, bytes]
    date: float = field(default_factory=time.time)


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """Branch name or full/short commit sha → commit (what `resolve/{rev}` accepts)."""
        revision = unquote(revision)
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision in self.commits:
            return self.commits[revision]
        matches = [
            c for sha, c in self.commits.items() if len(revision) >= 7 and sha.startswith(revision)
        ]
        return matches[0] if len(matches) == 1 else None


@dataclass
class Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int


class HubState:
    """Repos, a request log and failure rules, shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # handlers may answer while holding it
        self.repos: dict[str, Repo] = {}
        self.log: list[tuple[str, str, int]] = []
        self.failures: list[Failure] = []
        self.bodies: list[bytes] = []

    def new_commit(
        self, repo: Repo, branch: str, title: str, description: str, files: dict[str, bytes]
    ) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1()
        digest.update((parent or "").encode() + title.encode() + repr(time.time_ns()).encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + hashlib.sha1(files[path]).digest())
        commit = Commit(digest.hexdigest(), parent, title, description, files)
        repo.commits[commit.sha] = commit
        repo.branches[branch] = commit.sha
        return commit


class HubHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log (the state keeps its own)."""

    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(
        self,
        status: int,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        if raw is None:
            raw = b"" if payload is None else json.dumps(payload).encode()
            content_type = "application/json"
        else:
            content_type = "application/octet-stream"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(raw)
        with self.state.lock:
            self.state.log.append((self.command, self.path, status))

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        self._send(status, {"error": message}, headers=headers, head=head)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        return False

    def _injected_failure(self) -> bool:
        with self.state.lock:
            for rule in self.state.failures:
                if (
                    rule.times > 0
                    and rule.method == self.command
                    and rule.pattern.search(urlsplit(self.path).path)
                ):
                    rule.times -= 1
                    break
            else:
                return False
        self._error(rule.status, "InjectedFailure", f"injected {rule.status} for a test")
        return True

    def _dispatch(self, head: bool = False) -> None:
        body = self._body() if self.command in ("POST", "PUT") else b""
        if self._injected_failure():
            return
        path = unquote(urlsplit(self.path).path)
        query = parse_qs(urlsplit(self.path).query)
        try:
            self._route(path, query, body, head)
        except Exception as exc:  # a server bug must surface as a 500, not a hang
            self._error(500, "ServerBug", f"{type(exc).__name__}: {exc}", head=head)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        self._dispatch()

    # -- routing ----------------------------------------------------------------------------
    def _route(self, path: str, query: dict[str, list[str]], body: bytes, head: bool) -> None:
        if path == "/api/whoami-v2":
            if self._authorized():
                self._send(
                    200,
                    {
                        "type": "user",
                        "name": USER,
                        "fullname": USER,
                        "orgs": [],
                        "auth": {
                            "type": "access_token",
                            "accessToken": {"displayName": "test", "role": "write"},
                        },
                    },
                )
            return
        if path == "/api/repos/create" and self.command == "POST":
            self._create_repo(json.loads(body or b"{}"))
            return
        if path == "/api/validate-yaml" and self.command == "POST":
            self._validate_yaml(json.loads(body or b"{}"))
            return
        match = re.fullmatch(r"/api/models/(.+)", path)
        if match:
            self._api_model(match.group(1), query, body)
            return
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match and self.command in ("GET", "HEAD"):
            self._resolve(*match.groups(), head=head)
            return
        self._error(404, "NotImplemented", f"hub_server: no route for {self.command} {path}")

    def _repo_or_404(self, repo_id: str) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    def _create_repo(self, payload: dict[str, Any]) -> None:
        if not self._authorized():
            return
        if payload.get("type", "model") not in ("model", None):
            self._error(400, "BadRequest", "hub_server only hosts model repos")
            return
        name = payload.get("name", "")
        repo_id = f"{payload.get('organization') or USER}/{name}"
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id) or ".." in repo_id:
            self._error(400, "BadRequest", f"Invalid repo name {repo_id!r}")
            return
        url = f"{self.server.base_url}/{repo_id}"
        with self.state.lock:
            if repo_id in self.state.repos:
                self._send(409, {"error": "You already created this model repo", "url": url})
                return
            private = bool(payload.get("private")) or payload.get("visibility") == "private"
            repo = Repo(repo_id, private)
            self.state.repos[repo_id] = repo
            attributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
            self.state.new_commit(
                repo, "main", "initial commit", "", {".gitattributes": attributes}
            )
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        content = payload.get("content", "")
        match = re.match(r"^---\n(.*?)\n---", content, flags=re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError as exc:
            self._send(400, {"error": f"Invalid YAML metadata: {exc}"})
            return
        if match and not isinstance(metadata, dict):
            self._send(400, {"error": "YAML metadata must be a mapping"})
            return
        warnings = [] if metadata else [{"message": "empty or missing yaml metadata in repo card"}]
        self._send(200, {"errors": [], "warnings": warnings})

    def _api_model(self, rest: str, query: dict[str, list[str]], body: bytes) -> None:
        parts = rest.split("/")
        repo_id, action, tail = "/".join(parts[:2]), parts[2] if len(parts) > 2 else "", parts[3:]
        repo = self._repo_or_404(repo_id)
        if repo is None:
            return
        if action in ("", "revision"):
            self._repo_info(repo, "/".join(tail) or "main")
        elif action == "preupload" and self.command == "POST":
            self._preupload(repo, "/".join(tail), json.loads(body))
        elif action == "commit" and self.command == "POST":
            self._commit(repo, "/".join(tail), body)
        elif action == "tree":
            self._tree(repo, tail[0] if tail else "main", "/".join(tail[1:]), query)
        elif action == "paths-info" and self.command == "POST":
            self._paths_info(repo, "/".join(tail), body)
        elif action == "refs":
            self._send(
                200,
                {
                    "branches": [
                        {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                        for name, sha in repo.branches.items()
                    ],
                    "tags": [],
                    "converts": [],
                },
            )
        elif action == "branch" and self.command == "POST":
            self._create_branch(repo, "/".join(tail), json.loads(body or b"{}"))
        elif action == "commits":
            self._commits(repo, "/".join(tail) or "main")
        else:
            self._error(404, "NotImplemented", f"hub_server: no route for {action!r}")

    def _create_branch(self, repo: Repo, branch: str, payload: dict[str, Any]) -> None:
        if not self._authorized():
            return
        with self.state.lock:
            if branch in repo.branches:
                self._send(409, {"error": f"Reference already exists: refs/heads/{branch}"})
                return
            start = repo.resolve(payload.get("startingPoint") or "main")
            if start is None:
                self._error(404, "RevisionNotFound", "Invalid starting point")
                return
            repo.branches[branch] = start.sha
        self._send(200, {})

    def _commit_or_404(self, repo: Repo, revision: str, head: bool = False) -> Commit | None:
        commit = repo.resolve(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
        return commit

    def _repo_info(self, repo: Repo, revision: str) -> None:
        commit = self._commit_or_404(repo, revision)
        if commit is None:
            return
        self._send(
            200,
            {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": USER,
                "sha": commit.sha,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "library_name": None,
                "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            },
        )

    def _preupload(self, repo: Repo, revision: str, payload: dict[str, Any]) -> None:
        if not self._authorized():
            return
        commit = repo.resolve(revision)
        existing = commit.files if commit else {}
        files = [
            {
                "path": item["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha(existing[item["path"]]) if item["path"] in existing else None,
            }
            for item in payload.get("files", [])
        ]
        self._send(200, {"files": files, "commitOid": commit.sha if commit else None})

    def _commit(self, repo: Repo, revision: str, body: bytes) -> None:
        if not self._authorized():
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        branch = unquote(revision)
        with self.state.lock:
            if branch not in repo.branches:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {branch} is not a branch")
                return
            parent = repo.commits[repo.branches[branch]]
            expected = header.get("parentCommit")
            if expected and expected != parent.sha:
                self._send(
                    412, {"error": "A commit has happened since. Please refresh and try again."}
                )
                return
            files = dict(parent.files)
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise ValueError(f"unsupported encoding {value.get('encoding')!r}")
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: c for p, c in files.items() if not p.startswith(prefix)}
                elif key == "lfsFile":
                    self._error(400, "BadRequest", "hub_server only accepts regular uploads")
                    return
            commit = self.state.new_commit(
                repo, branch, header.get("summary", ""), header.get("description", ""), files
            )
        self._send(
            200,
            {
                "success": True,
                "commitOid": commit.sha,
                "commitUrl": f"{self.server.base_url}/{repo.repo_id}/commit/{commit.sha}",
                "commitMessage": commit.title,
                "pullRequestUrl": None,
            },
        )

    @staticmethod
    def _entry(path: str, data: bytes) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "path": path,
            "size": len(data),
            "oid": git_blob_sha(data),
        }
        if path.endswith(".safetensors"):
            entry["lfs"] = {
                "oid": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": 134,
            }
        return entry

    def _tree(self, repo: Repo, revision: str, prefix: str, query: dict[str, list[str]]) -> None:
        commit = self._commit_or_404(repo, revision)
        if commit is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        base = prefix.rstrip("/") + "/" if prefix else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, data in sorted(commit.files.items()):
            if not path.startswith(base):
                continue
            rest = path[len(base) :]
            parts = rest.split("/")
            if recursive or len(parts) == 1:
                for depth in range(1, len(parts)):
                    folder = base + "/".join(parts[:depth])
                    entries.setdefault(
                        folder, {"type": "directory", "path": folder, "oid": ZERO_SHA, "size": 0}
                    )
                entries[path] = self._entry(path, data)
            else:
                folder = base + parts[0]
                entries.setdefault(
                    folder, {"type": "directory", "path": folder, "oid": ZERO_SHA, "size": 0}
                )
        if prefix and not entries:
            self._error(404, "EntryNotFound", f"{prefix} does not exist on {revision}")
            return
        self._send(200, list(entries.values()))

    def _paths_info(self, repo: Repo, revision: str, body: bytes) -> None:
        commit = self._commit_or_404(repo, revision)
        if commit is None:
            return
        form = parse_qs(body.decode())
        paths = form.get("paths", [])
        if not paths and body.strip().startswith(b"{"):
            paths = json.loads(body).get("paths", [])
        result = [self._entry(p, commit.files[p]) for p in paths if p in commit.files]
        self._send(200, result)

    def _commits(self, repo: Repo, revision: str) -> None:
        commit = self._commit_or_404(repo, revision)
        history = []
        while commit is not None:
            history.append(
                {
                    "id": commit.sha,
                    "title": commit.title,
                    "message": commit.description,
                    "authors": [{"user": USER}],
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._send(200, history)

    def _resolve(self, repo_id: str, revision: str, path: str, head: bool) -> None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head=head)
            return
        commit = self._commit_or_404(repo, revision, head=head)
        if commit is None:
            return
        data = commit.files.get(path)
        if data is None:
            self._error(404, "EntryNotFound", f"{path} does not exist on {revision}", head=head)
            self.state.log[-1:] = [(self.command, self.path, 404)]
            return
        etag = (
            hashlib.sha256(data).hexdigest()
            if path.endswith(".safetensors")
            else git_blob_sha(data)
        )
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if ranged and not head:
            start = int(ranged.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self._send(206 if start else 200, raw=data[start:], headers=headers, head=head)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    base_url: str


class HubServer:
    """Context manager: a Hub on 127.0.0.1:<free port> served from a background thread.

    The server stops when the context exits or, whatever happens to the test, after
    `time_limit` seconds (a timer thread calls `shutdown`).
    """

    def __init__(self, time_limit: float = 300.0) -> None:
        self.state = HubState()
        self.time_limit = time_limit
        self.address: tuple[str, int] | None = None  # (host, port) actually bound
        self.stopped = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return self._httpd.base_url

    @property
    def repos(self) -> dict[str, Repo]:
        return self.state.repos

    def start(self) -> HubServer:
        httpd = _Server(("127.0.0.1", 0), HubHandler)
        httpd.state = self.state
        host, port = httpd.socket.getsockname()[:2]
        self.address = (host, port)
        httpd.base_url = f"http://{host}:{port}"
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True
        self._thread.start()
        self._timer = threading.Timer(self.time_limit, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Idempotent: the time-limit timer and the context exit may both call it."""
        httpd, self._httpd = self._httpd, None
        if self._timer is not None and threading.current_thread() is not self._timer:
            self._timer.cancel()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.stopped.set()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(self, method: str, path_regex: str, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` matching requests with `status` (failure injection)."""
        with self.state.lock:
            self.state.failures.append(Failure(method, re.compile(path_regex), status, times))

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.state.repos[repo_id].resolve(revision)
        assert commit is not None, f"{repo_id}@{revision} does not exist"
        return commit.files

    def history(self, repo_id: str) -> list[str]:
        """Commit shas of `main`, oldest first."""
        repo = self.state.repos[repo_id]
        shas, sha = [], repo.branches["main"]
        while sha:
            shas.append(sha)
            sha = repo.commits[sha].parent
        return shas[::-1]

    def client_env(self, home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a client subprocess: online, pointed at this server, own HF_HOME."""
        import os

        env = dict(os.environ if base is None else base)
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            env.pop(key, None)
        env.update(
            HF_ENDPOINT=self.url,
            HF_TOKEN=TOKEN,
            HF_HOME=str(home),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_XET="1",
            HF_HUB_ETAG_TIMEOUT="5",
            HF_HUB_DOWNLOAD_TIMEOUT="10",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            TOKENIZERS_PARALLELISM="false",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        for key in (
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ):
            env.pop(key, None)
        return env


# -- client side -----------------------------------------------------------------------------
# Client code runs in a fresh interpreter: huggingface_hub/transformers read HF_ENDPOINT and
# HF_HUB_OFFLINE at import, and the pytest process has already imported them offline.
REPO_ROOT = Path(__file__).resolve().parents[1]

# Builds a tiny random seq2seq checkpoint + tokenizer (tokenizers library, no download) in a run
# dir, like a finished training run would leave it. `make_run(path, arch_cls, config_cls, seed)`.
TINY_RUN_SNIPPET = r"""
import json, struct, zlib
from pathlib import Path
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GenerationConfig, PreTrainedTokenizerFast

WORDS = "the quick brown fox jumps over lazy dog a cat sat on mat".split()
SAMPLE = ["the quick brown fox", "a cat sat on the mat"]

def make_tokenizer():
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")

def png_bytes():
    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def tiny_config(config_cls, **extra):
    return config_cls(vocab_size=len(WORDS) + 4, d_model=16, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                      decoder_ffn_dim=32, max_position_embeddings=32, pad_token_id=1,
                      bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                      forced_eos_token_id=None, init_std=1.0, **extra)

def tiny_t5_config(config_cls, **extra):
    return config_cls(vocab_size=len(WORDS) + 4, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                      num_decoder_layers=1, num_heads=2, relative_attention_num_buckets=8,
                      relative_attention_max_distance=16, pad_token_id=1, eos_token_id=2,
                      decoder_start_token_id=1, initializer_factor=4.0, **extra)

def generation_config(start=2):
    return GenerationConfig(max_new_tokens=6, decoder_start_token_id=start, bos_token_id=0,
                            eos_token_id=2, pad_token_id=1)

def generate(model, tokenizer):
    model.eval()
    batch = tokenizer(SAMPLE, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False, num_beams=2)
    return out.tolist()

# A run dir laid out as `hf-nvib train` leaves it (hf_nvib/runs/train.py): checkpoint files at
# the root, nested metrics.json, run_config.json, trainer_state.json, examples.json, plots/*.png
# and a placeholder README.md; plus absolute paths and the token, for the scrubbing checks.
def make_run(run_dir, model_cls, config_cls, seed=0, metrics=None, **config_extra):
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = model_cls(tiny_config(config_cls, **config_extra))
    tokenizer = make_tokenizer()
    model.generation_config = generation_config()
    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    metrics = metrics or {
        "model": "nvib",
        "train": {"steps": 4, "train_loss": 2.5 + seed, "train_seconds": 1.5},
        "eval": {"in_domain": {"bleu": 3.25, "rouge1": 0.125, "kept_proportion": 0.75}},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    token = __import__("os").environ["HF_TOKEN"]
    (run_dir / "run_config.json").write_text(json.dumps({
        "command": f"hf-nvib train --output-dir {run_dir.resolve()}",
        "learning_rate": 1e-3, "max_steps": 4, "seed": seed, "dataset": "toy-copy",
        "output_dir": str(run_dir.resolve()), "hub_token": token,
        "kl_dirichlet_schedule": {"kind": "linear", "start": 0.0, "end": 0.5},
    }))
    (run_dir / "trainer_state.json").write_text(json.dumps({
        "global_step": 4, "best_model_checkpoint": str(run_dir.resolve() / "checkpoint-4"),
        "log_history": [{"step": 4, "loss": 2.0, "note": f"token {token}"}],
    }))
    (run_dir / "examples.json").write_text(json.dumps({"in_domain": []}))
    (run_dir / "README.md").write_text("# placeholder card from hf-nvib train\n")
    (run_dir / "plots").mkdir(exist_ok=True)
    (run_dir / "plots" / "kl.png").write_bytes(png_bytes())
    return model, tokenizer
"""


def run_client(
    server: HubServer,
    script: str,
    home: Path,
    *,
    pythonpath: list[Path] | None = None,
    timeout: float = 240,
) -> str:
    """Run `script` in a fresh interpreter pointed at `server`; return its stdout, fail loudly."""
    import os
    import subprocess
    import sys

    env = server.client_env(home)
    paths = [str(p) for p in pythonpath or []]
    if paths or "PYTHONPATH" in env:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,  # a "run custom code? [y/N]" prompt must fail, not hang
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"client failed (rc={result.returncode})\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result.stdout


def last_json(stdout: str) -> Any:
    """The last line of a client's stdout, parsed (clients print one JSON result line)."""
    return json.loads(stdout.strip().splitlines()[-1])


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (to prove a push never modifies local files)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read_card(content: bytes) -> tuple[dict[str, Any], str]:
    """(YAML metadata, body) of a README.md; the YAML must parse."""
    text = content.decode()
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, flags=re.DOTALL)
    assert match, "README.md has no YAML front matter"
    metadata = yaml.safe_load(match.group(1))
    assert isinstance(metadata, dict)
    return metadata, match.group(2)


def card_metrics(metadata: dict[str, Any]) -> dict[str, float]:
    """metric name → value from a card's `model-index`."""
    found: dict[str, float] = {}
    for entry in metadata["model-index"]:
        for result in entry["results"]:
            for metric in result["metrics"]:
                found[metric["name"]] = metric["value"]
    return found
