"""Which model stages a run has, in the order they were trained, and which pairs to compare."""

from __future__ import annotations

from pathlib import Path

from pipeline.stage import COMPLETE_MARKER, POLICY_STAGES

BASELINE = "sft"
ITERATED = "rejection_sampling"  # one model per iteration, in iter-<k> subfolders
CHRONOLOGICAL = tuple(reversed(POLICY_STAGES))  # POLICY_STAGES is newest first


def finished_iterations(folder: Path) -> list[Path]:
    """`iter-<k>` subfolders holding a finished stage, by k (an `iter-3.partial` is not one)."""
    iters = [
        p for p in Path(folder).glob("iter-*") if p.name[5:].isdigit() and (p / COMPLETE_MARKER).is_file()
    ]
    return sorted(iters, key=lambda p: int(p.name[5:]))


def model_stages(run: Path) -> list[tuple[str, Path]]:
    """(stage name, folder) of every finished model stage, oldest first; rejection sampling per iteration."""
    run = Path(run)
    found = []
    for stage in CHRONOLOGICAL:
        if stage == ITERATED:
            found += [(f"{stage}/{p.name}", p) for p in finished_iterations(run / stage)]
        elif (run / stage / COMPLETE_MARKER).is_file():
            found.append((stage, run / stage))
    return found


def comparisons(stages: list[str]) -> list[tuple[str, str]]:
    """(model, baseline) pairs: every later stage against SFT, and against the stage just before it
    (once, where the stage before is SFT itself)."""
    if BASELINE not in stages:
        raise ValueError(f"win rates are measured against the SFT model: the run has no {BASELINE} stage")
    pairs = []
    for index, stage in enumerate(stages):
        if stage == BASELINE:
            continue
        pairs.append((stage, BASELINE))
        previous = stages[index - 1]
        if previous != BASELINE:
            pairs.append((stage, previous))
    return pairs
