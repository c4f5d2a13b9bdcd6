"""`model.push_to_hub(repo_id)` that publishes the NVIB model card.

transformers' `push_to_hub` writes a generic card (`library_name: transformers`); NVIB models
route the push through `hf_nvib.hub.model_push` instead. That module (and the Hub, card and
template code behind it) is imported by name at call time, so the modeling files stay light and
a remote-code copy of them (published without the plugin) falls back to transformers' push.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported by name (not `from ... import`): `hf_nvib.hub.remote_code` copies every module
# reachable through import statements, and the Hub helpers are no part of the model's code.
_HUB_MODULE = "hf_nvib.hub.model_push"


class NvibPushToHubMixin:
    """Put first in an NVIB model's bases (before the transformers class)."""

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """transformers' `push_to_hub` keywords, plus hf-nvib's `tokenizer`, `metrics`,
        `run_config`, `with_code`, `card_kwargs`; returns the `CommitInfo` (a URL string)."""
        try:
            model_push = importlib.import_module(_HUB_MODULE)
        except ImportError:  # remote code loaded without hf-nvib installed
            return super().push_to_hub(repo_id, **kwargs)  # type: ignore[misc]
        return model_push.push_model_to_hub(self, repo_id, **kwargs)
