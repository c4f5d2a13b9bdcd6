"""Remote-code push: an NVIB checkpoint loads with trust_remote_code=True where hf_nvib is absent.

The loading interpreter runs from a folder outside the repo with PYTHONPATH empty and `hf_nvib`
blocked by a meta-path finder, so only the published files can define the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hub_server import TINY_RUN_SNIPPET, HubServer, last_json, run_client

PUSH = (
    TINY_RUN_SNIPPET
    + r"""
import hf_nvib
from hf_nvib.hub.push import push_run
model, tok = make_run("run", hf_nvib.NvibBartForConditionalGeneration, hf_nvib.NvibBartConfig)
result = push_run("run", "tester/nvib-remote", with_code=True)
print(json.dumps({"reference": generate(model, tok), "files": result.files}))
"""
)

LOAD = r"""
import json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hf_nvib" or name.startswith("hf_nvib."):
            raise ImportError("hf_nvib is blocked in this process")
sys.meta_path.insert(0, Block())
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained("tester/nvib-remote", trust_remote_code=True)
tok = AutoTokenizer.from_pretrained("tester/nvib-remote", trust_remote_code=True)
model.eval()
batch = tok(["the quick brown fox", "a cat sat on the mat"], return_tensors="pt", padding=True)
with torch.no_grad():
    out = model.generate(**batch, max_new_tokens=6, do_sample=False, num_beams=2)
print(json.dumps({"tokens": out.tolist(), "cls": type(model).__module__,
                  "hf_nvib_loaded": any(m.startswith("hf_nvib") for m in sys.modules)}))
"""


def test_remote_code_push_loads_without_plugin(hub: HubServer, tmp_path: Path) -> None:
    pushed = last_json(run_client(hub, PUSH, tmp_path))
    files = hub.files("tester/nvib-remote")
    import json

    config = json.loads(files["config.json"])
    assert config["auto_map"]["AutoModelForSeq2SeqLM"].endswith(".NvibBartForConditionalGeneration")
    for target in config["auto_map"].values():
        module_file = target.split(".")[0] + ".py"
        assert module_file in files
    for name, content in files.items():
        if name.endswith(".py"):
            assert not re.search(rb"^\s*(from|import)\s+hf_nvib", content, re.M), name
    # Local config.json is not modified by the push.
    assert "auto_map" not in json.loads((tmp_path / "run" / "config.json").read_text())
    assert "trust_remote_code=True" in files["README.md"].decode()

    home = tmp_path / "fresh"
    home.mkdir()
    loaded = last_json(run_client(hub, LOAD, home))
    assert not loaded["hf_nvib_loaded"]
    assert loaded["cls"].startswith("transformers_modules.")
    assert loaded["tokens"] == pushed["reference"]


@pytest.fixture
def hub():
    with HubServer(time_limit=300) as server:
        yield server
