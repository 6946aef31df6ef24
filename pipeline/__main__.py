"""The whole recipe in one command: `python -m pipeline [overrides]`.

Runs every stage in order as its own process, each a Hydra app reading the previous stage's output.
A finished stage is skipped, an interrupted one resumes from its checkpoint, a failed one stops the
pipeline with its exit code and leaves the earlier stages' results as they are.

Overrides go to every stage (`run.name=exp1 logger=none`); prefix one with a stage name to send it to
that stage alone (`sft:train.epochs=1`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (name shown and used in prefixes, script, stage-specific arguments); extended as stages land.
STAGES: list[tuple[str, str, list[str]]] = [
    ("sft", "sft/train.py", []),
    ("reward", "reward/train.py", []),
    ("reward-safety", "reward/train.py", ["+experiment=safety"]),
    ("rejection_sampling", "ppo/rejection_sampling.py", []),
    ("ppo", "ppo/train.py", []),
    ("ppo-safety", "ppo/train.py", ["+experiment=safety"]),
    ("sft-safety", "sft/train.py", ["+experiment=safety"]),
    ("gatt-data", "gatt/synthesize.py", []),
    ("gatt", "gatt/train.py", []),
    ("gatt-eval", "gatt/evaluate.py", []),
    ("winrate", "winrate/evaluate.py", []),
]


def run_folder(overrides: list[str]) -> Path:
    """<run.root>/<run.name> as the overrides set them (defaults runs/default)."""
    values = {"run.root": "runs", "run.name": "default"}
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in values:
            values[key] = value
    return Path(values["run.root"]) / values["run.name"]


def stage_overrides(stage: str, overrides: list[str]) -> list[str]:
    """Overrides for one stage: the unprefixed ones plus those prefixed with `<stage>:`."""
    chosen = []
    for override in overrides:
        prefix, sep, rest = override.partition(":")
        if sep and "=" not in prefix:
            if prefix == stage:
                chosen.append(rest)
        else:
            chosen.append(override)
    return chosen


def main(argv: list[str]) -> int:
    known = {name for name, _, _ in STAGES}
    for override in argv:
        prefix, sep, _ = override.partition(":")
        if sep and "=" not in prefix and prefix not in known:
            print(f"pipeline: unknown stage prefix {prefix!r} in {override!r} (stages: {', '.join(known)})")
            return 2
    timings: list[str] = []
    for name, script, extra in STAGES:
        command = [sys.executable, str(REPO / script), *extra, *stage_overrides(name, argv)]
        print(f"== pipeline: {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(command, cwd=Path.cwd())
        seconds = time.perf_counter() - started
        timings.append(f"{name} {seconds:.0f} s")
        print(f"== pipeline: {name} took {seconds:.0f} s", flush=True)
        if code != 0:
            print(
                f"pipeline: stage {name} failed (exit {code}); earlier stages' outputs are intact", flush=True
            )
            return code
    folder = run_folder(argv)
    code = subprocess.call([sys.executable, "-m", "report", str(folder)], cwd=Path.cwd())
    print(
        f"== pipeline: all stages complete ({', '.join(timings)}); report: {folder / 'report.html'}",
        flush=True,
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
