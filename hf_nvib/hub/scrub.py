"""Keep secrets and local paths out of anything published (cards, logs, error messages).

Why: a model card is public and a CI log is often public too; run configs routinely carry the
output directory (absolute, with the user's name) and sometimes a `hub_token`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

REDACTED = "<redacted>"
# Hugging Face user access tokens: "hf_" + 30+ alphanumerics (no underscores, so `hf_nvib_*`
# identifiers never match).
_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
# A POSIX absolute path not preceded by a word char, ':' or '/' (so URLs are left alone).
_POSIX_PATH_RE = re.compile(r"(?<![\w:/.~-])(/[^\s'\"`<>|,;()\[\]{}*]+)")
_WINDOWS_PATH_RE = re.compile(r"\b[A-Za-z]:\\[^\s'\"`<>|,;()\[\]{}*]+")
_HOME_PATH_RE = re.compile(r"(?<![\w/])~/[^\s'\"`<>|,;()\[\]{}*]+")
# Config keys whose values are credentials (not `pad_token`, `max_new_tokens`, ...).
SECRET_KEY_RE = re.compile(
    r"^token$|(^|_)(hub|hf|auth|access|api|bearer|push_to_hub)_token$|secret|passw|api_?key|credential",
    re.I,
)


def known_secrets(extra: Iterable[str | bool | None] = ()) -> list[str]:
    """The token values to redact: the explicit ones plus whatever the environment provides."""
    values = {v for v in extra if isinstance(v, str) and v}
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN"):
        if os.environ.get(name):
            values.add(os.environ[name])
    try:
        from huggingface_hub import get_token

        if token := get_token():
            values.add(token)
    except Exception:  # a broken token file must not break publishing
        pass
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


def _basename(path: str) -> str:
    windows = "\\" in path and not path.startswith("/")
    name = (PureWindowsPath(path) if windows else PurePosixPath(path.rstrip("/"))).name
    return name or "."


def scrub_text(text: str, secrets: Iterable[str] = (), *, paths: bool = True) -> str:
    """Redact tokens and (if `paths`) replace absolute or home-relative paths by their last
    component."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _TOKEN_RE.sub(REDACTED, text)
    if not paths:  # e.g. a message quoting URL paths
        return text
    home = str(Path.home())
    if len(home) > 1:
        text = text.replace(home, "~")
    text = _HOME_PATH_RE.sub(lambda m: _basename(m.group(0)), text)
    text = _WINDOWS_PATH_RE.sub(lambda m: _basename(m.group(0)), text)
    return _POSIX_PATH_RE.sub(lambda m: _basename(m.group(1)), text)


def scrub_value(value: Any, secrets: Iterable[str] = ()) -> Any:
    """`scrub_text` applied through dicts/lists; keys that name secrets are dropped."""
    secrets = list(secrets)
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        return {
            k: scrub_value(v, secrets)
            for k, v in value.items()
            if not (isinstance(k, str) and SECRET_KEY_RE.search(k))
        }
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, secrets) for v in value]
    return value
