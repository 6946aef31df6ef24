"""The three GAtt commands end to end on very small random models: dataset, fine-tune, evaluation outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCH = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 128}
SMALL = [
    "logger=none",
    "synthesis.max_dialogs=3",
    "synthesis.max_turns=3",
    "synthesis.k=2",
    "synthesis.max_new_tokens=8",
    "synthesis.cut_points=2",
    "synthesis.dialogs_per_write=2",
    "synthesis.require_finished=false",  # random models rarely say EOS within 8 tokens
    "synthesis.oracle_filter=false",  # ... and never honour a constraint
    "train.max_steps=2",
    "train.per_device_batch_size=4",
    "train.sequences_per_step=4",
    "eval.max_dialogs=2",
    "eval.turns=[1,2,3]",
    "eval.max_new_tokens=8",
    "eval.neutral_prompts=4",
    "eval.attention_turns=3",
]


def save_finished(model, folder: Path, tokenizer_path: str) -> None:
    from basemodel.loading import save_model
    from chat.tokenizer import save_tokenizer

    save_model(model, folder, merge_adapters=False)
    save_tokenizer(tokenizer_path, folder)
    (folder / "metrics.json").write_text("{}\n")  # the stage contract's completion marker


def make_run(run: Path) -> None:
    """A run holding a random tiny 'SFT' policy and a random helpfulness reward model."""
    from basemodel.loading import load_causal_lm, load_sequence_classifier, load_tokenizer_path
    from chat.format import ChatEncoder
    from chat.tokenizer import load_hf_tokenizer
    from pipeline.config import ModelConfig
    from reward.scoring import reward_pad_id

    model_cfg = ModelConfig(**ARCH)
    tokenizer_path = load_tokenizer_path(model_cfg)
    save_finished(load_causal_lm(model_cfg, seed=0), run / "sft", tokenizer_path)
    pad_id = reward_pad_id(
        ChatEncoder.from_path(tokenizer_path), load_hf_tokenizer(tokenizer_path).unk_token_id
    )
    reward_model = load_sequence_classifier(model_cfg, seed=1, pad_token_id=pad_id)
    save_finished(reward_model, run / "reward" / "helpfulness", tokenizer_path)


def gatt(root: Path, script: str, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "gatt" / script), f"run.root={root}", *SMALL, *overrides]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gatt")
    make_run(root / "default")
    for script in ("synthesize.py", "train.py", "evaluate.py"):
        gatt(root, script)
    return root / "default"


@pytest.mark.slow
def test_dataset_moves_the_instruction_and_trains_only_last_answers(run):
    from chat.format import IGNORE_INDEX, ChatEncoder
    from chat.render import render_lines

    rows = [json.loads(line) for line in (run / "gatt-data" / "train.jsonl").read_text().splitlines()]
    samples = [json.loads(line) for line in (run / "gatt-data" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3
    gatt_rows = [r for r in rows if not r["meta"].get("replay")]
    assert len(gatt_rows) == sum(min(2, len(s["answers"])) for s in samples)
    assert len(rows) - len(gatt_rows) == round(len(gatt_rows) / 3)  # replay_share 0.25 of the mix
    by_source = {s["source"]: s for s in samples}
    encoder = ChatEncoder.from_path(run / "sft")
    for row in gatt_rows:
        sample = by_source[row["meta"]["source"]]
        assert row["messages"][0] == {"role": "system", "content": sample["instruction"]}
        assert [m["content"] for m in row["messages"][1::2]] == sample["users"][: row["meta"]["cut"]]
        assert len(row["messages"]) == 1 + 2 * row["meta"]["cut"]
        earlier = (
            encoder.encode_for_training(row["messages"][:-2])["input_ids"] if row["meta"]["cut"] > 1 else []
        )
        assert set(row["labels"][: len(earlier)]) <= {IGNORE_INDEX}
        assert row["labels"][-1] == encoder.eos_id
    # The messages re-render to the same ids with chat.render (its labels train every answer).
    lines = [json.dumps({"messages": r["messages"]}) for r in rows]
    rendered = list(render_lines(lines, encoder, for_generation=False, source="train.jsonl"))
    assert [r["input_ids"] for r in rendered] == [r["input_ids"] for r in rows]


@pytest.mark.slow
def test_train_and_evaluate_land_their_outputs(run):
    metrics = json.loads((run / "gatt" / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and metrics["policy"] == str(run / "sft")
    assert set(metrics["adherence_by_turn"]) == {"before", "after"}
    assert set(metrics["adherence_by_turn"]["after"]) == {"1", "2", "3"}
    assert all(0 <= v <= 1 for v in metrics["adherence_by_turn"]["before"].values())
    assert set(metrics["neutral_prompts"]["after"]) == {"constraint_added", "helpfulness"}
    assert metrics["attention"]["system_tokens"] > 0
    for figure in ("adherence.png", "attention.png"):
        assert (run / "gatt" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_finished_steps_are_not_redone(run):
    result = gatt(run.parent, "synthesize.py")
    assert "already complete" in result.stderr + result.stdout
    result = gatt(run.parent, "evaluate.py")
    assert "already evaluated" in result.stderr + result.stdout
