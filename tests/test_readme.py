"""The README's Python blocks run as written (a local tiny checkpoint stands in for the hub id)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tiny_models import make_tiny_bart

README = Path(__file__).resolve().parents[1] / "README.md"
HUB_ID = '"facebook/bart-base"'


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    assert "make test" in (README.parent / ".ci" / "run").read_text()


@pytest.mark.xdist_group("readme")
def test_readme_python_blocks_run(tmp_path, monkeypatch) -> None:
    blocks = python_blocks()
    assert len(blocks) == 2 and HUB_ID in blocks[0]
    checkpoint = make_tiny_bart(tmp_path / "hub", dropout=0.0, attention_dropout=0.0)
    code = "\n".join(blocks).replace(HUB_ID, repr(str(checkpoint)))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert float((namespace["same"] - namespace["ref"]).abs().max()) < 1e-4
    assert (tmp_path / "nvib-bart" / "model.safetensors").is_file()
    logged = namespace["trainer"].state.log_history
    assert any("eval_kl_dirichlet" in h for h in logged)
    assert any("kl_gaussian" in h and "loss" in h for h in logged)
