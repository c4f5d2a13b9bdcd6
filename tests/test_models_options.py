"""Run-time NVIB options are read from the model's config at every forward (BART and T5)."""

from __future__ import annotations

import torch
from _nvib_model_fixtures import Backbone, backbone_fixture  # noqa: F401


def _encode(model, inputs):
    with torch.no_grad():
        return model.get_encoder()(**inputs)


def test_config_changes_after_loading_take_effect(backbone: Backbone) -> None:
    model = backbone.nvib().eval()
    inputs = backbone.inputs()
    tokens = inputs["attention_mask"].sum(-1)
    before = _encode(model, inputs)
    assert torch.equal(before.num_kept, tokens + 1)  # identity init: α is huge, nothing pruned

    # Every token's α is below this threshold: only the prior survives, and compaction drops
    # the pruned slots physically.
    model.config.nvib_prune_threshold = 1e300
    model.config.nvib_compact = True
    pruned = _encode(model, inputs)
    assert torch.equal(pruned.num_kept, torch.ones_like(tokens))
    assert pruned.last_hidden_state.shape[1] == 1
    assert torch.equal(pruned.num_valid, before.num_valid)

    model.config.nvib_prune_threshold, model.config.nvib_compact = 0.1, False
    model.config.nvib_delta = 7.0
    changed = _encode(model, inputs)
    assert not torch.allclose(changed.kl_dirichlet, before.kl_dirichlet)
    assert torch.equal(changed.num_kept, before.num_kept)

    assert before.cross_value_input is not None  # closed-form denoising attention in eval
    model.config.nvib_eval_attention = "mean"
    assert _encode(model, inputs).cross_value_input is None  # training form with z = μ


def test_from_pretrained_options_reach_the_layer(backbone: Backbone) -> None:
    model = backbone.nvib(nvib_prune_threshold=1e300).eval()
    assert torch.equal(_encode(model, backbone.inputs()).num_kept.unique(), torch.tensor([1]))
