"""The stage contract: where a stage writes, how it resumes, and how it lands its output atomically.

Every stage writes to `<run.root>/<run.name>/<stage>/`. While it runs, everything goes to a sibling
`<stage>.partial/` folder (checkpoints included, so a killed run resumes from there); only when the
stage has finished is that folder renamed into place. A finished stage is never overwritten unless the
user passes `run.overwrite=true`, and even then the old output is only removed once the new one is in place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

COMPLETE_MARKER = "metrics.json"  # written last, so its presence means the stage finished

# Model stages of a run, newest first: later stages start from the first one that exists.
POLICY_STAGES = ("gatt", "sft-safety", "ppo-safety", "ppo", "rejection_sampling", "sft")


class StageAlreadyComplete(RuntimeError):
    """The stage's output exists; rerun with run.overwrite=true to redo it."""


def run_dir(run_cfg) -> Path:
    return Path(run_cfg.root) / run_cfg.name


class Stage:
    """One stage's output folder: `final` once done, `work` (the `.partial` sibling) while running."""

    def __init__(self, run_cfg, name: str):
        self.name = name
        self.run_dir = run_dir(run_cfg)
        self.final = self.run_dir / name
        self.work = self.final.with_name(self.final.name + ".partial")
        self.overwrite = bool(run_cfg.overwrite)

    @property
    def checkpoints(self) -> Path:
        return self.work / "checkpoints"

    def is_complete(self) -> bool:
        return (self.final / COMPLETE_MARKER).is_file()

    def begin(self) -> Path:
        """Check the stage may run and return its work folder (kept from an interrupted run, for resume)."""
        if self.is_complete() and not self.overwrite:
            raise StageAlreadyComplete(
                f"stage '{self.name}' is already complete in {self.final}; "
                "pass run.overwrite=true to redo it (the old output is replaced only once the new one is done)"
            )
        if self.work.exists():
            log.info("resuming stage %s from %s", self.name, self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        return self.work

    def begin_or_skip(self) -> bool:
        """`begin()`, or log why a finished stage is left alone and return False: rerunning a pipeline over
        finished stages is not an error, so the stage scripts exit quietly with status 0."""
        try:
            self.begin()
        except StageAlreadyComplete as done:
            log.warning("%s", done)
            return False
        return True

    def finish(self, metrics: dict, keep_checkpoints: bool = False) -> Path:
        """Write metrics.json (the completion marker) and move the work folder into place atomically."""
        write_json(self.work / COMPLETE_MARKER, metrics)
        old = None
        if self.final.exists():
            old = self.final.with_name(f"{self.final.name}.old-{int(time.time())}")
            os.replace(self.final, old)
        os.replace(self.work, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if not keep_checkpoints:
            shutil.rmtree(self.final / "checkpoints", ignore_errors=True)
        log.info("stage %s complete: %s", self.name, self.final)
        return self.final


def write_json(path: Path, payload) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=float) + "\n")
    os.replace(tmp, path)


def write_resolved_config(cfg: DictConfig, folder: Path) -> None:
    (Path(folder) / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-N` whose trainer_state.json (saved last by the Trainer) parses.

    A run killed while saving leaves a checkpoint folder without it; resuming from that would crash
    or, worse, load a half-written optimizer state, so such folders are passed over.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    candidates = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-") and child.name[11:].isdigit():
            candidates.append((int(child.name[11:]), child))
    for _, child in sorted(candidates, reverse=True):
        try:
            json.loads((child / "trainer_state.json").read_text())
            return child
        except (OSError, ValueError):
            log.warning("skipping incomplete checkpoint %s", child)
    return None


def find_policy(run_cfg, before: str | None = None) -> Path | None:
    """The newest finished model stage of the run (optionally only stages older than `before`)."""
    stages = POLICY_STAGES
    if before is not None:
        if before not in stages:
            raise ValueError(
                f"stage {before!r} is not one of the run's policy stages ({', '.join(reversed(stages))}), so "
                "which policy it starts from is not defined: pass init_from=PATH"
            )
        stages = stages[stages.index(before) + 1 :]
    root = run_dir(run_cfg)
    for stage in stages:
        if stage == "rejection_sampling":
            iters = sorted(
                (
                    p
                    for p in (root / stage).glob("iter-*")
                    if p.name[5:].isdigit() and (p / COMPLETE_MARKER).is_file()  # not iter-3.partial
                ),
                key=lambda p: int(p.name[5:]),
            )
            if iters:
                return iters[-1]
        elif (root / stage / COMPLETE_MARKER).is_file():
            return root / stage
    return None
