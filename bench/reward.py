"""Reward-model training with random batches vs batches grouped by length, side by side.

    python bench/reward.py --sft runs/default/sft                # the tiny defaults, both ways
    python bench/reward.py --sft runs/default/sft --max-steps 100 eval.max_pairs=200   # + any overrides

Runs `python reward/train.py` twice from the same SFT checkpoint into a temporary run, once with
train.length_bin_width=0 (random batches, padded to the longest sequence) and once with the default
grouping, and prints training seconds per step, the accuracy per rating level on the helpfulness test
pairs, and the speed ratio last. Grouping must not cost accuracy: batches still mix tasks (see
reward/batching.py), so the two accuracy rows should differ by noise only. With --max-steps both runs
skip the helpfulness RM's curriculum, so the capped steps train on the mixed pairs whose lengths vary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RATINGS = ("significantly_better", "better", "slightly_better", "negligibly_better")


def train_once(sft: Path, root: Path, name: str, overrides: list[str]) -> dict:
    command = [
        sys.executable,
        str(REPO / "reward" / "train.py"),
        f"init_from={sft}",
        f"run.root={root}",
        f"run.name={name}",
        "logger=none",
        "eval.baselines=false",
        *overrides,
    ]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench: {name} failed:\n{result.stderr[-4000:]}")
    return json.loads((root / name / "reward" / "helpfulness" / "metrics.json").read_text())


def seconds_per_step(metrics: dict) -> float:
    return metrics["train_seconds"] / metrics["global_step"]


def row(label: str, metrics: dict) -> str:
    accuracy = metrics["eval"]["helpfulness"]["accuracy"]
    cells = " | ".join(f"{100 * accuracy[r]:.1f}" for r in RATINGS)
    return f"| {label} | {metrics['global_step']} | {seconds_per_step(metrics):.3f} | {cells} |"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft", required=True, help="an SFT checkpoint directory (runs/<name>/sft)")
    parser.add_argument("--max-steps", type=int, default=-1, help="cap both runs (default: the config's)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both runs of reward/train.py")
    args = parser.parse_args(argv)
    sft = Path(args.sft).resolve()
    if not sft.is_dir():
        raise SystemExit(f"bench: --sft {sft}: no such directory")
    capped = [f"train.max_steps={args.max_steps}"] if args.max_steps > 0 else []
    # A capped run would spend its steps on the curriculum, whose short pairs all fall in one length bin.
    capped += ["curriculum.helpfulness=[]"] if capped else []
    extra = [*capped, *args.overrides]
    with tempfile.TemporaryDirectory(prefix="bench-reward-") as tmp:
        random_batches = train_once(sft, Path(tmp), "random", ["train.length_bin_width=0", *extra])
        grouped = train_once(sft, Path(tmp), "grouped", extra)
    print("| batches | steps | train s / step | " + " | ".join(RATINGS) + " |")
    print("|---|---|---|" + "---|" * len(RATINGS))
    print(row("random", random_batches))
    print(row("grouped by length", grouped))
    ratio = seconds_per_step(random_batches) / seconds_per_step(grouped)
    print(f"speed ratio (random s/step / grouped s/step): {ratio:.2f}x")
    return {"random": random_batches, "grouped": grouped, "ratio": ratio}


if __name__ == "__main__":
    main()
