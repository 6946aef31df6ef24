"""Iteration checkpoints: everything a killed PPO run needs to carry on exactly where it stopped.

`<work>/checkpoints/iter-N/` holds policy.safetensors and value.safetensors (the weights), optimizer.pt and
rng.pt (tensors and plain containers only, so they load with ``torch.load(weights_only=True)``) and
state.json (iteration, running whitening statistics, early-stopping state, history). A checkpoint is
written into a hidden temporary folder and renamed into place, so a kill mid-write leaves no half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from pipeline.stage import write_json

PREFIX = "iter-"
FILES = ("policy.safetensors", "value.safetensors", "optimizer.pt", "rng.pt", "state.json")


def rng_state(generator: torch.Generator) -> dict:
    """Every random state the loop touches, as tensors and plain containers (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "gauss": [has_gauss, cached],
        },
        "update_generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), None))
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], *numpy["gauss"]))
    generator.set_state(state["update_generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    folder: Path, iteration: int, policy, value_model, optimizers: dict, state: dict, generator, keep: int = 2
) -> Path:
    """Write iter-<iteration> atomically and prune older ones to the newest ``keep``; return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{iteration}"
    tmp = folder / f".tmp-{PREFIX}{iteration}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(policy, str(tmp / "policy.safetensors"))
    save_model(value_model, str(tmp / "value.safetensors"))
    torch.save({name: opt.state_dict() for name, opt in optimizers.items()}, tmp / "optimizer.pt")
    torch.save(rng_state(generator), tmp / "rng.pt")
    write_json(tmp / "state.json", {**state, "iteration": iteration})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(folder: Path) -> list[Path]:
    """Finished iteration checkpoints, oldest first (temporary folders are not listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint with every file present and a state.json that parses."""
    for candidate in reversed(checkpoints(folder)):
        try:
            json.loads((candidate / "state.json").read_text())
        except (OSError, ValueError):
            continue
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    return None


def load_checkpoint(path: Path, policy, value_model, optimizers: dict, generator) -> dict:
    """Load weights, optimizer and RNG states in place; return state.json's content."""
    path = Path(path)
    load_model(policy, str(path / "policy.safetensors"))
    load_model(value_model, str(path / "value.safetensors"))
    saved = torch.load(path / "optimizer.pt", weights_only=True)
    if set(saved) != set(optimizers):
        raise ValueError(
            f"{path}/optimizer.pt holds optimizers {sorted(saved)}, expected {sorted(optimizers)}"
        )
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(saved[name])
    restore_rng(torch.load(path / "rng.pt", weights_only=True), generator)
    return json.loads((path / "state.json").read_text())
