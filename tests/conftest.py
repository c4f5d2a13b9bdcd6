"""Test-wide settings: no Hub, a throw-away HF cache, quiet transformers."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports huggingface_hub/transformers: they read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_nvib_test_home_"))
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # after the environment above

# Two xdist workers share two cores: more threads per worker only oversubscribes them.
torch.set_num_threads(1)
