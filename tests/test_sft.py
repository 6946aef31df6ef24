"""The SFT stage end to end, on a very small model: output contract, resume after a kill, DDP, chat."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "model.hidden_size=64",
    "model.num_layers=2",
    "model.num_heads=2",
    "model.num_kv_heads=1",
    "model.intermediate_size=128",
    "train.per_device_batch_size=8",
    "train.sequences_per_step=8",
    "train.epochs=1",
    "train.eval_steps=1000",
    "train.logging_steps=5",
    "eval.max_prompts=24",
    "eval.max_new_tokens=16",
]


def sft(tmp_path, *overrides, check=True, **popen):
    Path(tmp_path).mkdir(parents=True, exist_ok=True)
    if not any(o.startswith("logger=") for o in overrides):
        overrides = ("logger=none", *overrides)
    command = [sys.executable, str(REPO / "sft/train.py"), f"run.root={tmp_path}", *SMALL, *overrides]
    env = {**os.environ, "WANDB_API_KEY": "", "PYTHONUNBUFFERED": "1"}
    env.pop("WANDB_MODE", None)
    if popen:
        return subprocess.Popen(command, cwd=tmp_path, env=env, **popen)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    sft(root, "data.max_train_samples=400", "logger=wandb", "train.eval_steps=20")
    return root / "default" / "sft"


@pytest.mark.slow
def test_output_follows_the_stage_contract(small_run):
    names = {p.name for p in small_run.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.model"} <= names
    assert {"metrics.json", "config.yaml", "README.md", "tokenizer_config.json"} <= names
    assert "checkpoints" not in names, "training checkpoints are removed once the stage lands"
    metrics = json.loads((small_run / "metrics.json").read_text())
    for key in ("train_loss", "eval_loss", "tokens_per_s", "oracle.before", "oracle.after"):
        assert metrics[key] is not None, key
    assert set(metrics["oracle.after"]) >= {"helpfulness", "unsafe_compliance", "false_refusal"}
    assert metrics["world_size"] == 1 and metrics["replicas_identical"] is True


@pytest.mark.slow
def test_wandb_runs_offline_without_a_key_and_logs_sample_tables(small_run):
    runs = list((small_run.parent / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline wandb run for the stage, in the run folder"
    logged = b"".join(p.read_bytes() for p in runs[0].rglob("*.wandb"))
    assert b"samples/eval" in logged and b"samples/after" in logged
    assert b"llama-rlhf" in logged  # the project


@pytest.mark.slow
def test_checkpoint_loads_in_plain_transformers_with_the_chat_template(small_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chat.format import ChatEncoder

    model = AutoModelForCausalLM.from_pretrained(small_run)
    tokenizer = AutoTokenizer.from_pretrained(small_run)
    dialog = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(dialog, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert list(ids) == ChatEncoder.from_path(small_run).encode_for_generation(dialog)
    assert model.config.num_key_value_heads < model.config.num_attention_heads


@pytest.mark.slow
def test_finished_stage_is_not_overwritten(small_run):
    before = (small_run / "model.safetensors").stat().st_mtime_ns
    result = sft(small_run.parents[1], "data.max_train_samples=400")
    assert "already complete" in result.stderr + result.stdout
    assert (small_run / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.slow
def test_chat_answers_a_piped_question(small_run):
    result = subprocess.run(
        [sys.executable, "-m", "chat", str(small_run), "--max-new-tokens", "12"],
        input="What is the capital of France?\n/reset\nAnd of Spain?\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) >= 3 and "(history cleared)" in lines


@pytest.mark.slow
def test_resume_after_kill_finishes_with_the_same_step_count(tmp_path):
    common = ["data.max_train_samples=320", "train.save_steps=5", "eval.oracle=false"]
    whole = tmp_path / "whole"
    sft(whole, *common)
    expected = json.loads((whole / "default/sft/metrics.json").read_text())["global_step"]

    killed = tmp_path / "killed"
    process = sft(killed, *common, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed / "default/sft.partial/checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not list(checkpoints.glob("checkpoint-10/trainer_state.json")):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "default/sft").exists(), "a killed stage leaves no output in place"

    sft(killed, *common)
    metrics = json.loads((killed / "default/sft/metrics.json").read_text())
    assert metrics["resumed_from_step"] >= 10
    assert metrics["global_step"] == expected


@pytest.mark.slow
def test_two_process_ddp_on_cpu_ends_with_identical_replicas(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        str(REPO / "sft/train.py"), f"run.root={tmp_path}", *SMALL, "data.max_train_samples=64", "eval.oracle=false",
        "train.per_device_batch_size=4",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "default/sft/metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["replicas_identical"] is True
    # 64 dialogs, 4 per process, 2 processes -> 8 steps per epoch (not 16, which one process alone would take)
    assert metrics["global_step"] == 8


def test_no_dialog_short_enough_is_an_error_naming_max_length(tmp_path):
    result = sft(
        tmp_path, "data.max_train_samples=16", "eval.oracle=false", "model.max_length=8", check=False
    )
    assert result.returncode != 0
    assert "fits model.max_length=8" in result.stderr
    assert not (tmp_path / "default" / "sft").exists()
