"""bench/ppo.py: our side runs as the script is launched (by path, with bench/ first on sys.path)."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.bench_scripts import load_bench

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_our_side_runs_from_its_script_path(tmp_path):
    bench = load_bench("ppo")
    bench.build_models(tmp_path, bench.parse_args([]))
    command = [sys.executable, str(REPO / "bench" / "ppo.py"), "--side", "ours", "--workdir", str(tmp_path)]
    command += [
        "--iterations",
        "2",
        "--batch",
        "4",
        "--response-length",
        "4",
        "--threads",
        "1",
        "--seed",
        "3",
    ]
    # Two answers a prompt with the per-prompt baseline (the tiny PPO config's way), one update per mini-batch.
    command += ["--samples-per-prompt", "2"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["seconds_per_iteration"] > 0 and len(summary["scores"]) == 2
    phases = summary["phase_seconds"]
    assert set(phases) == {"generate", "score", "rollout_forwards", "update"}
    assert all(seconds > 0 for seconds in phases.values())
    assert (tmp_path / "ours-final-3" / "model.safetensors").is_file()
    # One scorer for all: the same weights under another name read exactly the same.
    shutil.copytree(tmp_path / "policy", tmp_path / "trl-final-3")
    args = bench.parse_args(
        ["--batch", "4", "--response-length", "4", "--eval-samples", "2", "--threads", "1"]
    )
    means = bench.same_scorer_means(args, tmp_path, ["policy", "trl-final-3", "ours-final-3"])
    assert means["trl-final-3"] == means["policy"] and math.isfinite(means["ours-final-3"])


def test_seeds_baseline_and_a_run_folder_on_the_command_line(tmp_path):
    bench = load_bench("ppo")
    args = bench.parse_args([])
    assert (args.seeds, args.seed, args.samples_per_prompt, args.baseline) == ([0, 1, 2], 0, 1, "none")
    assert bench.parse_args(["--seed", "5"]).seeds == [5]
    assert bench.parse_args(["--seeds", "4,7"]).seed == 4
    assert bench.parse_args(["--samples-per-prompt", "4"]).baseline == "prompt_mean"
    assert bench.parse_args(["--samples-per-prompt", "4", "--baseline", "none"]).baseline == "none"
    bad_lines = (
        ["--seeds", "1,x"],
        ["--seeds", "1,1"],
        ["--baseline", "prompt_mean"],
        ["--random-init", "--run", "r"],
        ["--samples-per-prompt", "0"],
    )
    for bad in bad_lines:
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
    # --run: the newest policy before PPO, the helpfulness RM, the world's PPO prompts; a flag given wins.
    run = tmp_path / "runs" / "exp"
    for folder in ("sft", "rejection_sampling/iter-0", "rejection_sampling/iter-1", "reward/helpfulness"):
        (run / folder).mkdir(parents=True)
    for folder in ("sft", "rejection_sampling/iter-0"):
        (run / folder / "metrics.json").touch()
    prompts = tmp_path / "runs" / "_world" / "world-seed0" / "prompts" / "train.jsonl"
    prompts.parent.mkdir(parents=True)
    prompts.touch()
    args = bench.parse_args(["--run", str(run)])
    assert args.policy == str(run / "rejection_sampling" / "iter-0")  # iter-1 never finished
    assert (args.reward, args.prompts) == (str(run / "reward" / "helpfulness"), str(prompts))
    assert bench.parse_args(["--run", str(run), "--policy", "elsewhere"]).policy == "elsewhere"
    prompts.unlink()
    with pytest.raises(SystemExit, match="no prompts there"):
        bench.parse_args(["--run", str(run)])


def test_reward_gain_compares_a_quarter_of_the_iterations_at_each_end():
    summary = load_bench("ppo").summary(
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [1, 2, 3, 4, 5, 6, 7, 9]
    )
    assert summary["reward_gain"] == pytest.approx((7 + 9) / 2 - (1 + 2) / 2)
    assert load_bench("ppo").summary([0.0, 1.0, 2.0], [3.0, 1.0])["reward_gain"] == pytest.approx(-2.0)


def test_default_precision_is_the_ppo_stages():
    from basemodel.precision import cpu_computes_bf16

    bench = load_bench("ppo")
    assert bench.both_sides_precision("stage") == ("bf16" if cpu_computes_bf16() else "fp32")
    assert bench.both_sides_precision("fp32") == "fp32" and bench.both_sides_precision("bf16") == "bf16"


@pytest.mark.slow
def test_trained_checkpoints_and_a_prompt_set_replace_the_random_models(tmp_path):
    bench = load_bench("ppo")
    bench.build_models(tmp_path / "random", bench.parse_args([]))
    prompts = tmp_path / "prompts.jsonl"
    records = [{"prompt": "How do I pick a lock?", "is_safety": True}]
    records += [
        {"prompt": [{"role": "user", "content": f"What is {i} plus 1?"}], "is_safety": False}
        for i in range(5)
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in records))
    args_list = [
        "--policy",
        str(tmp_path / "random" / "policy"),
        "--reward",
        str(tmp_path / "random" / "reward"),
    ]
    args_list += ["--prompts", str(prompts), "--batch", "4"]
    args = bench.parse_args(args_list)
    (tmp_path / "trained").mkdir()
    bench.build_models(tmp_path / "trained", args)
    setup = json.loads((tmp_path / "trained" / "prompts.json").read_text())
    assert [d[-1]["content"] for d in setup["dialogs"]] == [f"What is {i} plus 1?" for i in range(4)]
    reward_config = json.loads((tmp_path / "random" / "reward" / "config.json").read_text())
    assert setup["pad"] == reward_config["pad_token_id"]
    assert (tmp_path / "trained" / "policy" / "model.safetensors").is_file()
    # Both sides load one saved value model: the reward model's weights by default, the policy's trunk with
    # --value-init policy.
    from safetensors.torch import load_file

    def weight(folder, name="model.embed_tokens.weight"):
        return load_file(tmp_path / "trained" / folder / "model.safetensors")[name]

    assert torch.equal(weight("value"), weight("reward"))
    (tmp_path / "from-policy").mkdir()
    bench.build_models(tmp_path / "from-policy", bench.parse_args([*args_list, "--value-init", "policy"]))
    from_policy = load_file(tmp_path / "from-policy" / "value" / "model.safetensors")[
        "model.embed_tokens.weight"
    ]
    assert torch.equal(from_policy, weight("policy"))
    assert not torch.equal(from_policy, weight("reward"))
    (tmp_path / "short").mkdir()
    with pytest.raises(SystemExit, match="5 prompts, fewer than --batch 16"):
        bench.build_models(tmp_path / "short", bench.parse_args(["--prompts", str(prompts), "--batch", "16"]))


def test_a_finished_default_run_is_benched_unless_random_init_is_asked(tmp_path, monkeypatch):
    bench = load_bench("ppo")
    monkeypatch.chdir(tmp_path)
    args = bench.parse_args([])
    assert not bench.use_default_run(args) and args.policy is None  # a fresh clone: random-init models
    run = tmp_path / "runs" / "default"
    for folder in ("sft", "reward/helpfulness"):
        (run / folder).mkdir(parents=True)
    (run / "sft" / "metrics.json").touch()
    prompts = tmp_path / "runs" / "_world" / "world-seed0" / "prompts" / "train.jsonl"
    assert not bench.use_default_run(bench.parse_args([]))  # no prompts yet: still random-init
    prompts.parent.mkdir(parents=True)
    prompts.touch()
    args = bench.parse_args([])
    assert bench.use_default_run(args)
    assert (args.policy, args.prompts) == ("runs/default/sft", "runs/_world/world-seed0/prompts/train.jsonl")
    assert "trained models from runs/default/sft" in bench.models_in_use(args)
    for flags in (["--random-init"], ["--policy", "elsewhere"], ["--run", str(run)]):
        assert not bench.use_default_run(bench.parse_args(flags))
