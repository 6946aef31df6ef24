"""The PPO stage end to end on very small models: stage contract, kill and resume, safety experiment, KL stop."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_runs import write_fake_run

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "logger=none",
    "train.iterations=3",
    "train.prompts_per_iteration=8",
    "train.samples_per_prompt=2",
    "train.mini_batch_size=4",
    "train.micro_batch_size=4",
    "train.max_new_tokens=8",
    "train.generation_batch_size=8",
    "train.score_batch_size=8",
    "prompts.heldout=4",
    "prompts.max_prompts=300",
    "early_stop.every=2",
    "early_stop.max_new_tokens=4",
    "eval.max_prompts=4",
    "eval.max_new_tokens=4",
]


def make_run(root: Path, name: str) -> Path:
    """A finished sft stage and both reward models of run `name`, built from small random models."""
    return write_fake_run(root / name, {"sft": 0}, {"reward/helpfulness": 1, "reward/safety": 2})


def ppo(root: Path, *overrides, **popen):
    command = [sys.executable, str(REPO / "ppo/train.py"), f"run.root={root}", *SMALL, *overrides]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    if popen:
        return subprocess.Popen(command, cwd=root, env=env, **popen)
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("ppo")


@pytest.mark.slow
def test_killed_run_resumes_and_lands_the_stage_contract(root):
    run = make_run(root, "plain")
    checkpoints = run / "ppo.partial" / "checkpoints"
    process = ppo(root, "run.name=plain", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not (checkpoints / "iter-0").is_dir() and process.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert not (run / "ppo" / "metrics.json").exists()

    result = ppo(root, "run.name=plain")
    assert result.returncode == 0, result.stderr[-3000:]
    stage = run / "ppo"
    names = {p.name for p in stage.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.model",
        "README.md",
        "config.yaml",
        "metrics.json",
    } <= names
    assert "checkpoints" not in names
    metrics = json.loads((stage / "metrics.json").read_text())
    assert metrics["resumed_from_iteration"] >= 1
    assert [row["iteration"] for row in metrics["iterations"]] == [0, 1, 2]
    # The whitening statistics survived the kill: they have seen every answer of all three iterations.
    assert metrics["whitening"]["count"] == 3 * 8 * 2  # iterations x prompts x samples a prompt
    assert metrics["init_from"] == str(run / "sft") and set(metrics["reward_models"]) == {"helpfulness"}
    row = metrics["iterations"][1]
    for key in ("reward/score", "reward/whitened", "kl/sequence", "policy/entropy", "train/clip_fraction",
                "train/approx_kl", "train/value_loss", "value/explained_variance", "response/length",
                "response/eos_rate", "time/generate", "time/score", "time/train", "heldout/reward",
                "oracle/helpfulness"):  # fmt: skip
        assert key in row, key
    assert set(metrics["oracle.after"]) >= {"helpfulness", "unsafe_compliance", "false_refusal"}
    assert "oracle.before" in metrics


@pytest.mark.slow
def test_safety_experiment_mixes_safety_prompts_and_uses_both_reward_models(root):
    run = make_run(root, "safety")
    result = ppo(
        root,
        "run.name=safety",
        "+experiment=safety",
        "prompts.safety_share=0.5",
        "train.iterations=1",
        "early_stop.every=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "ppo-safety" / "metrics.json").read_text())
    # The last iteration's point of the oracle curve is oracle.after, measured once: before and after only.
    assert metrics["iterations"][-1]["oracle/helpfulness"] == metrics["oracle.after"]["helpfulness"]
    assert (result.stdout + result.stderr).count("[pipeline.oracle_eval][INFO] - oracle:") == 2
    assert set(metrics["reward_models"]) == {"helpfulness", "safety"}
    assert metrics["init_from"] == str(run / "sft")
    row = metrics["iterations"][0]
    assert "reward/safety_raw" in row
    assert row["reward/used_safety_rate"] >= 0.5  # the safety-tagged half always takes the safety RM
    assert row["response/answers"] == 8 * 2  # train.samples_per_prompt=2 answers to each of the 8 prompts


@pytest.mark.slow
def test_kl_spike_stops_the_run_with_a_clear_message_and_keeps_the_last_good_checkpoint(root):
    run = make_run(root, "spike")
    result = ppo(
        root,
        "run.name=spike",
        "train.kl_max=1e-3",
        "train.lr=0.05",
        "eval.oracle=false",
        "train.iterations=4",
    )
    assert result.returncode != 0
    assert "past train.kl_max=0.001: stopping" in result.stderr and "Last good checkpoint" in result.stderr
    checkpoints = run / "ppo.partial" / "checkpoints"
    spiked = sorted(p.name for p in checkpoints.glob("kl-spike-iter-*"))
    assert len(spiked) == 1, "the checkpoint holding the policy that spiked is set aside"
    spike_iteration = int(spiked[0].rsplit("-", 1)[1]) + 1
    kept = sorted(p.name for p in checkpoints.glob("iter-*"))
    assert kept == ([f"iter-{spike_iteration - 2}"] if spike_iteration >= 2 else [])
    assert not (run / "ppo" / "metrics.json").exists()
