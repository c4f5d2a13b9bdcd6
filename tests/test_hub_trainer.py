"""`NvibSeq2SeqTrainer(push_to_hub=True, hub_strategy="every_save")` against tests/hub_server.py:
safetensors only (never `training_args.bin`), tokenizer, config, the NVIB card, and a model that
loads back with identical generations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_server import TINY_RUN_SNIPPET, TOKEN, HubServer, last_json, read_card, run_client

TRAIN_PUSH = (
    TINY_RUN_SNIPPET
    + r"""
import os
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, Seq2SeqTrainingArguments
from hf_nvib import NvibBartConfig, NvibBartForConditionalGeneration
from hf_nvib.training.trainer import NvibSeq2SeqTrainer

model, tok = make_run("base", NvibBartForConditionalGeneration, NvibBartConfig)
data = [{"input_ids": ids, "labels": ids} for ids in tok(SAMPLE * 4)["input_ids"]]
out = Path("out").resolve()
args = Seq2SeqTrainingArguments(
    output_dir=str(out), max_steps=4, save_strategy="steps", save_steps=2, logging_steps=1,
    per_device_train_batch_size=2, learning_rate=1e-2, report_to=[], use_cpu=True, seed=0,
    push_to_hub=True, hub_model_id="tester/nvib-trainer", hub_strategy="every_save",
    hub_token=os.environ["HF_TOKEN"], dataloader_num_workers=0,
)
trainer = NvibSeq2SeqTrainer(
    model=model, args=args, train_dataset=data, processing_class=tok,
    data_collator=DataCollatorForSeq2Seq(tok, model=model),
)
trainer.train()
trainer.save_state()  # trainer_state.json in output_dir: pushed, scrubbed
info = trainer.push_to_hub(dataset="toy-copy")
loaded = AutoModelForSeq2SeqLM.from_pretrained("tester/nvib-trainer")
print(json.dumps({
    "same": generate(loaded, tok) == generate(trainer.model, tok),
    "cls": type(loaded).__name__, "sha": info.oid, "local": sorted(os.listdir(out)),
}))
"""
)


def test_trainer_push_every_save(hub: HubServer, tmp_path: Path) -> None:
    stdout = run_client(hub, TRAIN_PUSH, tmp_path)
    result = last_json(stdout)
    assert result["same"] and result["cls"] == "NvibBartForConditionalGeneration"
    assert "training_args.bin" in result["local"]  # written locally, filtered from the push

    repo = "tester/nvib-trainer"
    assert hub.history(repo)[-1] == result["sha"]
    titles = [hub.repos[repo].commits[sha].title for sha in hub.history(repo)]
    assert titles[-1] == "End of training"
    assert any(t.startswith("Training in progress, step ") for t in titles), titles
    files = hub.files(repo)
    expected = {
        "README.md", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json", "trainer_state.json",
    }  # fmt: skip
    assert expected <= set(files), sorted(files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))], sorted(files)
    assert not [f for f in files if f.startswith("checkpoint-")]
    # every intermediate commit carried the NVIB card too, never training_args.bin
    for sha in hub.history(repo)[1:]:
        snapshot = hub.files(repo, sha)
        assert "training_args.bin" not in snapshot
        assert read_card(snapshot["README.md"])[0]["library_name"] == "hf-nvib"

    metadata, body = read_card(files["README.md"])
    assert metadata["library_name"] == "hf-nvib"
    assert "nvib" in metadata["tags"]
    assert metadata["pipeline_tag"] == "text2text-generation"
    assert metadata["datasets"] == ["toy-copy"]
    assert "| `global_step` | 4 |" in body and "| `learning_rate` | 0.01 |" in body
    assert 'from_pretrained("tester/nvib-trainer")' in body
    assert json.loads(files["config.json"])["model_type"] == "nvib_bart"
    assert json.loads(files["trainer_state.json"])["global_step"] == 4
    for name, content in files.items():
        if name.endswith((".json", ".md")):
            text = content.decode()
            assert TOKEN not in text and str(tmp_path) not in text, name


@pytest.fixture
def hub():
    with HubServer(time_limit=300) as server:
        yield server
