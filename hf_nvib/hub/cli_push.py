"""`hf-nvib push RUN_DIR REPO_ID`: the CLI face of `hf_nvib.hub.push.push_run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hf_nvib.hub.push import HubPushError, push_run


def add_push_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of the `push` subcommand (the token comes from HF_TOKEN / `hf auth login`)."""
    parser.add_argument("run_dir", type=Path, help="a finished run directory (config.json, "
                        "model.safetensors, tokenizer, metrics.json, plots)")  # fmt: skip
    parser.add_argument("repo_id", help="target repo on the Hub, 'namespace/name'")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to push to (default: main)")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument(
        "--with-code",
        action="store_true",
        help="also upload self-contained modeling code (loadable with trust_remote_code=True)",
    )
    return parser


def run_push(args: argparse.Namespace) -> int:
    """Exit status 0 on success, 1 with a one-line reason on stderr otherwise."""
    try:
        result = push_run(
            args.run_dir,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            with_code=args.with_code,
        )
    except (HubPushError, FileNotFoundError, ValueError) as exc:
        print(f"hf-nvib push: error: {exc}", file=sys.stderr)
        return 1
    name, sha = Path(args.run_dir).name, result.commit_sha[:10]
    print(f"Pushed {name} to {result.repo_id} (commit {sha}): {len(result.files)} files")
    return 0
