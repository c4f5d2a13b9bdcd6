"""NVIB configs: validated flat fields, conversion from plain configs, foreign backbones."""

from __future__ import annotations

import pytest
from _nvib_model_fixtures import backbone_fixture  # noqa: F401
from tiny_models import tiny_bart_config, tiny_t5_config
from transformers import AutoConfig, GPT2Config, MarianConfig

import hf_nvib
from hf_nvib.models.config_validation import NVIB_FIELD_NAMES

CONFIGS = [hf_nvib.NvibBartConfig, hf_nvib.NvibT5Config]

BAD_VALUES = [
    ("nvib_kappa", 0),
    ("nvib_kappa", 1.5),
    ("nvib_kappa", True),
    ("nvib_prior_var", 0.0),
    ("nvib_prior_var", -1.0),
    ("nvib_prior_mu", float("nan")),
    ("nvib_stdev_tau", -0.1),
    ("nvib_prune_threshold", -1e-3),
    ("nvib_delta", 0.0),
    ("nvib_lambda_gaussian", -1.0),
    ("nvib_lambda_dirichlet", float("inf")),
    ("nvib_eval_attention", "softmax"),
    ("nvib_compact", 1),
    ("nvib_alpha_tau", "10"),
]


@pytest.mark.parametrize("config_class", CONFIGS)
def test_defaults_match_contract(config_class) -> None:
    config = config_class()
    expected = {
        "nvib_kappa": 1,
        "nvib_prior_mu": 0.0,
        "nvib_prior_var": 1.0,
        "nvib_prior_log_alpha": 0.0,
        "nvib_prior_log_alpha_stdev": 1.0,
        "nvib_mu_tau": 1.0,
        "nvib_stdev_tau": 0.0,
        "nvib_alpha_tau": 10.0,
        "nvib_delta": 1.0,
        "nvib_lambda_gaussian": 0.01,
        "nvib_lambda_dirichlet": 1.0,
        "nvib_prune_threshold": 0.1,
        "nvib_compact": False,
        "nvib_eval_attention": "denoising",
    }
    assert {name: getattr(config, name) for name in NVIB_FIELD_NAMES} == expected
    assert "kl_gaussian" in config.keys_to_ignore_at_inference
    assert "ce_loss" in config.keys_to_ignore_at_inference


@pytest.mark.parametrize("config_class", CONFIGS)
@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_invalid_values_raise_value_error(config_class, name: str, value) -> None:
    with pytest.raises(ValueError, match=name):
        config_class(**{name: value})
    config = config_class()
    with pytest.raises(ValueError, match=name):
        setattr(config, name, value)


def test_ints_are_coerced_to_floats() -> None:
    config = hf_nvib.NvibBartConfig(nvib_prior_mu=0, nvib_alpha_tau=3)
    assert isinstance(config.nvib_prior_mu, float) and config.nvib_alpha_tau == 3.0


def test_from_plain_drops_backbone_identity() -> None:
    plain = tiny_bart_config()
    plain.architectures = ["BartForConditionalGeneration"]
    config = hf_nvib.NvibBartConfig.from_plain(plain, nvib_alpha_tau=4.0, nvib_kappa=2)
    assert config.model_type == "nvib_bart"
    assert "model_type" not in config.__dict__  # no instance attribute shadowing the class's
    assert config.architectures is None
    assert (config.d_model, config.nvib_alpha_tau, config.nvib_kappa) == (32, 4.0, 2)
    t5 = hf_nvib.NvibT5Config.from_plain(tiny_t5_config(), nvib_stdev_tau=0.5)
    assert (t5.model_type, t5.d_kv, t5.nvib_stdev_tau) == ("nvib_t5", 8, 0.5)
    with pytest.raises(ValueError, match="nvib_alpha_tua"):
        hf_nvib.NvibBartConfig.from_plain(plain, nvib_alpha_tua=1.0)
    with pytest.raises(ValueError, match="nvib_kappa"):
        hf_nvib.NvibBartConfig.from_plain(plain, nvib_kappa=0)


@pytest.mark.parametrize(
    ("config_class", "foreign"),
    [
        (hf_nvib.NvibBartConfig, GPT2Config()),
        (hf_nvib.NvibBartConfig, MarianConfig()),
        (hf_nvib.NvibBartConfig, tiny_t5_config()),
        (hf_nvib.NvibT5Config, tiny_bart_config()),
    ],
)
def test_unknown_backbone_is_rejected(config_class, foreign) -> None:
    with pytest.raises(ValueError, match="Cannot convert"):
        config_class.from_plain(foreign)


def test_unknown_backbone_checkpoint_is_rejected(tmp_path) -> None:
    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="Cannot convert a 'gpt2'"):
        hf_nvib.NvibBartForConditionalGeneration.from_pretrained(tmp_path)


def test_from_pretrained_kwargs_are_validated(backbone) -> None:
    with pytest.raises(ValueError, match="nvib_prior_var"):
        backbone.nvib_class.from_pretrained(backbone.path, nvib_prior_var=-1.0)
    with pytest.raises(ValueError, match="Unknown NVIB option"):
        backbone.nvib_class.from_pretrained(backbone.path, nvib_kapa=2)


def test_config_round_trip_and_auto(tmp_path) -> None:
    config = hf_nvib.NvibT5Config.from_plain(tiny_t5_config(), nvib_alpha_tau=2.5)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is hf_nvib.NvibT5Config
    strip = lambda d: {k: v for k, v in d.items() if k != "_name_or_path"}  # noqa: E731
    assert strip(loaded.to_dict()) == strip(config.to_dict())
