"""The rejection-sampling stage end to end on very small random models: outputs, metrics, pooling, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "logger=none",
    "sampling.k=2",
    "sampling.max_prompts=12",
    "sampling.max_new_tokens=8",
    "sampling.prompts_per_write=5",
    "sampling.require_finished=false",  # random models rarely say EOS within 8 tokens
    "train.epochs=1",
    "train.per_device_batch_size=4",
    "train.sequences_per_step=4",
    "eval.max_prompts=8",
    "eval.max_new_tokens=8",
]
ARCH = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 128}


def save_finished(model, folder: Path, tokenizer_path: str) -> None:
    from basemodel.loading import save_model
    from chat.tokenizer import save_tokenizer

    save_model(model, folder, merge_adapters=False)
    save_tokenizer(tokenizer_path, folder)
    (folder / "metrics.json").write_text("{}\n")  # the stage contract's completion marker


def make_run(root: Path, name: str = "default") -> Path:
    """A run holding a random tiny 'SFT' policy and random helpfulness / safety reward models."""
    from basemodel.loading import load_causal_lm, load_sequence_classifier, load_tokenizer_path
    from chat.format import ChatEncoder
    from chat.tokenizer import load_hf_tokenizer
    from pipeline.config import ModelConfig
    from reward.scoring import reward_pad_id

    run = root / name
    model_cfg = ModelConfig(**ARCH)
    tokenizer_path = load_tokenizer_path(model_cfg)
    save_finished(load_causal_lm(model_cfg, seed=0), run / "sft", tokenizer_path)
    pad_id = reward_pad_id(
        ChatEncoder.from_path(tokenizer_path), load_hf_tokenizer(tokenizer_path).unk_token_id
    )
    for seed, objective in enumerate(("helpfulness", "safety"), 1):
        reward_model = load_sequence_classifier(model_cfg, seed=seed, pad_token_id=pad_id)
        save_finished(reward_model, run / "reward" / objective, tokenizer_path)
    return run


def rejection_sampling(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        str(REPO / "ppo/rejection_sampling.py"),
        f"run.root={root}",
        *SMALL,
        *overrides,
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def two_iterations(tmp_path_factory):
    root = tmp_path_factory.mktemp("rs")
    run = make_run(root)
    rejection_sampling(root)
    rejection_sampling(root, "iteration=2", "+experiment=safety")
    return run / "rejection_sampling"


@pytest.mark.slow
def test_iteration_output_follows_the_stage_contract(two_iterations):
    out = two_iterations / "iter-1"
    names = {p.name for p in out.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.model",
        "metrics.json",
        "config.yaml",
        "README.md",
    } <= names
    assert "checkpoints" not in names and not (two_iterations / "iter-1.partial").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    curve = metrics["reward_vs_n"]
    assert curve["n"] == [1, 2] and curve["max"][1] >= curve["max"][0]
    assert metrics["sampling"]["prompts"] == 12 and metrics["sampling"]["samples_per_prompt"] == 2
    assert metrics["sampling"]["samples"] == 24 and metrics["sampling"]["samples_per_s"] > 0
    assert metrics["selection"]["selected"] == 12 and metrics["selection"]["pooled"] == 12
    assert metrics["train_sequences"] == 12
    for key in ("oracle_of_rm_pick", "oracle_of_oracle_pick", "oracle_of_first_sample"):
        assert 0 <= metrics["selection_oracle"][key] <= metrics["selection_oracle"]["oracle_of_oracle_pick"]
    assert {"helpfulness", "unsafe_compliance"} <= set(metrics["oracle.before"]) & set(
        metrics["oracle.after"]
    )
    assert metrics["policy"].endswith("sft")


@pytest.mark.slow
def test_samples_on_disk_hold_every_answer_and_the_best_one(two_iterations):
    from ppo.rs_samples import read_samples

    every = read_samples(two_iterations / "iter-1/samples/all.jsonl")
    best = {r["key"]: r for r in read_samples(two_iterations / "iter-1/samples/best.jsonl")}
    assert len(every) == 12 and len(best) == 12
    for record in every:
        assert len(record["answers"]) == 2 and len(record["reward"]) == 2
        assert best[record["key"]]["score"] == max(record["reward"])
        assert (
            best[record["key"]]["answer"] == record["answers"][record["reward"].index(max(record["reward"]))]
        )


@pytest.mark.slow
def test_iteration_two_samples_from_iteration_one_and_pools_its_selection(two_iterations):
    from ppo.rs_samples import read_samples

    metrics = json.loads((two_iterations / "iter-2/metrics.json").read_text())
    assert metrics["policy"].endswith("iter-1") and metrics["experiment"] == "safety"
    first = {r["key"] for r in read_samples(two_iterations / "iter-1/samples/best.jsonl")}
    second = {r["key"] for r in read_samples(two_iterations / "iter-2/samples/best.jsonl")}
    assert metrics["selection"]["earlier_selected"] == [12]
    assert metrics["selection"]["pooled"] == len(first | second)
    assert metrics["train_sequences"] == len(first | second) > 12  # the window moved to new prompts
    assert 0 <= metrics["sampling"]["safety_rm_rate"] <= 1
    every = read_samples(two_iterations / "iter-2/samples/all.jsonl")
    assert all("safety" in r and "used_safety" in r for r in every)


@pytest.mark.slow
def test_a_finished_iteration_is_not_redone(two_iterations):
    before = (two_iterations / "iter-1/model.safetensors").stat().st_mtime_ns
    result = rejection_sampling(two_iterations.parents[1])
    assert "already complete" in result.stderr + result.stdout
    assert (two_iterations / "iter-1/model.safetensors").stat().st_mtime_ns == before


@pytest.mark.slow
def test_temperature_sweep_saves_curves_in_the_run(two_iterations):
    root = two_iterations.parents[1]
    result = rejection_sampling(
        root, "sweep.enabled=true", "sweep.temperatures=[0.7,1.3]", "sweep.max_prompts=4"
    )
    assert "temperature" in result.stdout and "N=2" in result.stdout
    saved = json.loads((two_iterations / "temperature_sweep-iter-1.json").read_text())
    assert set(saved["curves"]) == {"0.7", "1.3"} and saved["prompts"] == 4


@pytest.mark.slow
def test_an_iteration_whose_predecessor_is_missing_fails_naming_it(two_iterations):
    root = two_iterations.parents[1]
    command = [
        sys.executable,
        str(REPO / "ppo/rejection_sampling.py"),
        f"run.root={root}",
        *SMALL,
        "iteration=5",
    ]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "iteration 4" in result.stderr and "iter-4" in result.stderr
    assert not (two_iterations / "iter-5").exists()
