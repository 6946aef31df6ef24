"""Where a stage's data comes from: the built-in world (generated on first use) or the user's files."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def world_dir(run_cfg, data_cfg) -> Path:
    """The built-in world for this data seed, generated once under `<run.root>/_world` and shared by runs."""
    from chatworld import ensure_world

    return ensure_world(Path(run_cfg.root) / "_world", seed=data_cfg.seed)


def data_sources(run_cfg, data_cfg, split: str, builtin_path: str) -> list[str]:
    """Paths (or hub names) for a split: the world's file when data=builtin, else the configured list."""
    if data_cfg.name == "builtin":
        return [str(world_dir(run_cfg, data_cfg) / builtin_path.format(split=split))]
    sources = list(data_cfg.train if split == "train" else data_cfg.test)
    if split == "train" and not sources:
        raise ValueError(f"data.train: no training data given for data={data_cfg.name}")
    return sources


def describe(data_cfg) -> str:
    if data_cfg.name == "builtin":
        return f"the built-in chat world (seed {data_cfg.seed})"
    return f"{data_cfg.name}: {', '.join(data_cfg.train)}"


def read_sft_dialogs(sources: list[str], fmt: str, split: str) -> list[list[dict]]:
    """Dialogs to fine-tune on: `messages` / prompt-completion records as they are, or, from preference
    data (HH-RLHF, TRL preference sets), the prompt followed by the chosen answer."""
    from chat.readers import read_dialogs, read_preferences

    if fmt == "auto":
        fmt = guess_format(sources)
    if fmt == "messages":
        return read_dialogs(sources, split=split)[0]
    if fmt in ("hh_rlhf", "preferences"):
        pairs, _ = read_preferences(sources, split=split)
        return [[*pair.prompt, {"role": "assistant", "content": pair.chosen}] for pair in pairs]
    raise ValueError(
        f"data.format: {fmt!r} cannot give SFT dialogs (expected auto, messages, hh_rlhf or preferences)"
    )


def guess_format(sources: list[str]) -> str:
    """'messages' or 'preferences', from the keys of the first record (hub names: preferences)."""
    from chat.readers.sources import open_source

    records, name = open_source(sources)
    try:
        _, first = next(records)
    except StopIteration:
        raise ValueError(f"{name}: no records") from None
    if "messages" in first or "completion" in first:
        return "messages"
    if "chosen" in first:
        return "preferences"
    raise ValueError(f"{name}: cannot tell the format from the keys {sorted(first)}; set data.format")
