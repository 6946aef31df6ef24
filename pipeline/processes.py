"""Facts about the process group a stage runs in (torchrun / accelerate launch set the variables)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def accumulation_steps(per_optimizer_step: int, per_device_batch_size: int, key: str) -> int:
    """Gradient accumulation that makes one optimizer step see `per_optimizer_step` examples in all.

    The paper states batch sizes per optimizer step (64 sequences, 512 pairs); how many processes run is
    the launcher's business, so accumulation is derived from both. `key` names the config value in the
    warning when the numbers do not divide.
    """
    per_pass = per_device_batch_size * world_size()
    steps = max(1, round(per_optimizer_step / per_pass))
    if steps * per_pass != per_optimizer_step:
        log.warning(
            "%s=%d is not a multiple of %d (batch x processes); using %d",
            key,
            per_optimizer_step,
            per_pass,
            steps * per_pass,
        )
    return steps
