"""Generating the whole world from a seed, writing it atomically, and the text a tokenizer trains on."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from chat.dialog import validate_dialog
from chatworld import constraints as cons
from chatworld import dialogs, preferences, prompt_sets

FORMAT_VERSION = 5  # bump whenever generation changes: ensure_world then rebuilds an older world
# File (without .jsonl) -> (records at scale 1.0, record maker). Each file draws from its own seeded
# stream, so changing one file's size leaves the others unchanged.
FILES: dict[str, tuple[int, Callable[[random.Random], dict]]] = {
    "sft/train": (7000, dialogs.sft_dialog),
    "sft/test": (200, dialogs.sft_dialog),
    "preferences/helpfulness/train": (4000, preferences.helpfulness_pair),
    "preferences/helpfulness/test": (1000, preferences.helpfulness_pair),
    "preferences/contrast/train": (2000, preferences.contrast_pair),
    "preferences/contrast-plain/train": (4800, preferences.plain_contrast_pair),
    "preferences/safety/train": (2000, preferences.safety_pair),
    "preferences/safety/test": (500, preferences.safety_pair),
    "preferences/safety-contrast/train": (2000, preferences.safety_contrast_pair),
    "prompts/train": (2000, prompt_sets.prompt_record),
    "prompts/test": (300, prompt_sets.prompt_record),
    "gatt/dialogs": (300, dialogs.gatt_source_dialog),
}
GATT_EVAL_DIALOGS = 120
HELDOUT_EVERY = 4  # every 4th GAtt evaluation dialog uses held-out constraint values
MANIFEST = "world.json"


def _count(base: int, scale: float) -> int:
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return max(4, round(base * scale))


def _validated(name: str, index: int, record: dict) -> dict:
    """Fail loudly (file and record index) if a generated record is not a valid dialog."""
    try:
        if "messages" in record:
            validate_dialog(record["messages"], ends_with="assistant")
        elif "prompt" in record:
            validate_dialog(record["prompt"], ends_with="user")
            for side in ("chosen", "rejected"):
                if side in record:
                    validate_dialog(record["prompt"] + record[side], ends_with="assistant")
    except ValueError as err:
        raise ValueError(f"{name}.jsonl record {index}: {err}") from err
    return record


def generate_world(seed: int = 0, scale: float = 1.0) -> dict[str, list[dict]]:
    """Every jsonl file of the world: relative path (with .jsonl) -> records."""
    world = {}
    for name, (base, make) in FILES.items():
        rng = random.Random(f"chatworld:{seed}:{name}")
        world[f"{name}.jsonl"] = [_validated(name, i, make(rng)) for i in range(_count(base, scale))]
    rng = random.Random(f"chatworld:{seed}:gatt/eval")
    n_eval = _count(GATT_EVAL_DIALOGS, scale)
    world["gatt/eval.jsonl"] = [
        dialogs.gatt_eval_dialog(rng, i % HELDOUT_EVERY == HELDOUT_EVERY - 1) for i in range(n_eval)
    ]
    return world


def _message_texts(record: dict) -> Iterator[str]:
    for key in ("messages", "prompt", "chosen", "rejected"):
        for message in record.get(key, []):
            yield message["content"]
    if "system" in record:
        yield record["system"]
    yield from record.get("user_turns", [])


def corpus_text(seed: int = 0, scale: float = 1.0) -> Iterator[str]:
    """All the text a tokenizer should be trained on: every message of every file, and every constraint mark."""
    for records in generate_world(seed, scale).values():
        for record in records:
            yield from _message_texts(record)
    for family in cons.families().values():
        for value, mark in family.marks.items():
            yield f"{family.short.format(name=value)} {mark}"


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _fill(directory: Path, seed: int, scale: float) -> dict[str, int]:
    from chatworld.readme import render_readme  # the README needs the baselines, which need the records

    world = generate_world(seed, scale)
    for name, records in world.items():
        _write_jsonl(directory / name, records)
    (directory / "gatt/constraints").mkdir(parents=True, exist_ok=True)
    for family in cons.MARK_ORDER:
        shutil.copyfile(cons.DATA_DIR / f"{family}.json", directory / "gatt/constraints" / f"{family}.json")
    sizes = {name: len(records) for name, records in world.items()}
    (directory / "README.md").write_text(render_readme(world, seed, scale))
    manifest = {"format_version": FORMAT_VERSION, "seed": seed, "scale": scale, "sizes": sizes}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return sizes


def write_world(out_dir, seed: int = 0, scale: float = 1.0) -> Path:
    """Write the world into out_dir atomically (a temp dir renamed into place); replaces an older world there."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise FileExistsError(
            f"{out} exists and is not a chatworld directory (no {MANIFEST}); refusing to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _fill(tmp, seed, scale)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _is_current(out: Path) -> bool:
    try:
        return json.loads((out / MANIFEST).read_text()).get("format_version") == FORMAT_VERSION
    except (OSError, ValueError):
        return False


def ensure_world(root, seed: int = 0) -> Path:
    """`<root>/world-seed<seed>`, generated (at scale 1) if it is not there yet or was made by an older
    version of the generator (its data would not match what this code's oracle and README describe)."""
    out = Path(root) / f"world-seed{seed}"
    if _is_current(out):
        return out
    try:
        return write_world(out, seed=seed)
    except OSError:
        if _is_current(out):  # another process finished the same world first
            return out
        raise
