"""`hf-nvib demo --quick` end to end into tmp_path: report.md, plots and the summary."""

from __future__ import annotations

import json
import math

import pytest

from hf_nvib.cli import main
from hf_nvib.runs.demo import BASE_CE_WARNING, PRUNE_SWEEP, final_validation_loss

pytestmark = pytest.mark.xdist_group("cli_demo")


def test_demo_quick_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"Report: {out / 'report.md'}" in printed
    # 4 pretraining steps cannot teach copying: the demo says so instead of carrying on silently
    base_ce = final_validation_loss(out / "base")
    assert base_ce > BASE_CE_WARNING
    assert f"validation reconstruction CE of the base: {base_ce:.3f}" in printed
    assert "warning: above" in printed and "--pretrain-steps" in printed
    report = (out / "report.md").read_text()
    for heading in (
        "## 2. Conversion",
        "## 4. Evaluation",
        "### Samples from the prior",
        "### Interpolation",
    ):
        assert heading in report
    for png in (
        "nvib/plots/token_weights.png",
        "nvib/plots/training_curves.png",
        "nvib/plots/latent_pca.png",
        "nvib/plots/alpha_histogram.png",
        "plain/plots/latent_pca.png",
    ):
        assert ((out / png).is_file() and f"]({png})" in report) or png in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["conversion"]["greedy_identical"] is True
    assert summary["conversion"]["max_abs_logit_diff"] < 1e-4
    rows = summary["comparison"]
    assert set(rows) == {
        "plain in_domain",
        "NVIB in_domain",
        "plain out_of_domain",
        "NVIB out_of_domain",
    }
    assert rows["plain in_domain"]["kept_proportion"] == 1.0
    assert all(math.isfinite(v) for row in rows.values() for v in row.values())
    assert len(summary["samples"]) == 5 and len(summary["interpolation"]) == 5
    sweep = summary["pruning_sweep"]
    thresholds = [f"{t:g}" for t in PRUNE_SWEEP]
    assert list(sweep) == thresholds
    for per_set in sweep.values():
        assert set(per_set) == {"in_domain", "out_of_domain"}
        assert all(0 < m["kept_proportion"] <= 1 and m["bleu"] >= 0 for m in per_set.values())
    # A higher threshold can only prune more.
    kept = [sweep[t]["in_domain"]["kept_proportion"] for t in thresholds]
    assert kept == sorted(kept, reverse=True)
    assert "### Compression against quality" in report
    assert f"| {thresholds[-1]} | in_domain |" in report
