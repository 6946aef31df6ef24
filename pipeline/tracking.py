"""Experiment tracking: wandb when wanted (offline when no API key is set), nothing otherwise.

One wandb run per stage: project `llama-rlhf`, group = run name, job type = stage, so every stage of
a run shows up in one group. The resolved Hydra config is logged; secrets never are (the API key is read
by wandb from the environment and never passes through our config).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_mode(requested: str | None) -> str:
    """online only when asked or when an API key is present; offline needs no network."""
    if requested:
        return requested
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class Tracker:
    """A thin face over a wandb run; every method is a no-op when tracking is off."""

    def __init__(self, run=None):
        self.run = run

    @property
    def enabled(self) -> bool:
        return self.run is not None

    @property
    def report_to(self) -> list[str]:
        """What to pass to transformers' TrainingArguments.report_to (its callback reuses our run)."""
        return ["wandb"] if self.enabled else []

    def log(self, values: dict, step: int | None = None) -> None:
        if self.enabled:
            self.run.log(values, step=step)

    def log_table(self, key: str, columns: list[str], rows: list[list], step: int | None = None) -> None:
        if self.enabled:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows)}, step=step)

    def summary(self, values: dict) -> None:
        """Final numbers of the stage; nested dicts become dotted keys (oracle.after.helpfulness)."""
        if self.enabled:
            self.run.summary.update(flatten(values))

    def finish(self) -> None:
        if self.enabled:
            self.run.finish()
            self.run = None


def start_tracking(cfg: DictConfig, stage: str, folder: Path) -> Tracker:
    if cfg.logger.backend == "none":
        return Tracker(None)
    if cfg.logger.backend != "wandb":
        raise ValueError(f"logger.backend: unknown backend {cfg.logger.backend!r} (expected wandb or none)")
    if int(os.environ.get("RANK", "0")) != 0:
        return Tracker(None)
    import wandb

    mode = wandb_mode(cfg.logger.mode)
    os.environ.setdefault("WANDB_DIR", str(Path(folder).resolve().parents[0]))
    run = wandb.init(
        project=cfg.logger.project,
        group=cfg.run.name,
        job_type=stage,
        name=f"{cfg.run.name}-{stage}",
        config=OmegaConf.to_container(cfg, resolve=True),
        mode=mode,
        reinit="finish_previous",
    )
    if mode == "offline":
        log.info("wandb is offline (no WANDB_API_KEY); sync later with: wandb sync %s", run.dir)
    return Tracker(run)


def flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
