"""Reading what a run's stages left: every finished stage's metrics.json, and a few sample conversations."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.stage import COMPLETE_MARKER

UNFINISHED = (".partial", ".old-")  # a stage still running, or an old copy about to be removed


class RunFileError(ValueError):
    """A run file that cannot be read; the message names the file (and line)."""


def read_json(path: Path) -> dict:
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunFileError(f"{path}:{err.lineno}: invalid json: {err.msg}") from err
    if not isinstance(value, dict):
        raise RunFileError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def stage_metrics(run: Path) -> dict[str, dict]:
    """{stage name ("sft", "reward/helpfulness", "rejection_sampling/iter-1", ...): its metrics}, sorted."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder {run}")
    found = {}
    for marker in [*run.glob(f"*/{COMPLETE_MARKER}"), *run.glob(f"*/*/{COMPLETE_MARKER}")]:
        stage = marker.parent.relative_to(run)
        if any(tag in part for part in stage.parts for tag in UNFINISHED) or stage.parts[0] in (
            "logs",
            "_world",
        ):
            continue
        found[stage.as_posix()] = read_json(marker)
    return dict(sorted(found.items()))


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    """The first `limit` records of a jsonl file; a bad line raises naming file:line."""
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise RunFileError(f"{path}:{line_no}: invalid json: {err.msg}") from err
    return rows


def sample_conversations(run: Path, per_stage: int) -> dict[str, list[dict]]:
    """{stage: [{"prompt": [...], "answer": str}]}: the win-rate evaluation's cached answers (the same
    held-out prompts for every model), else the answers rejection sampling selected."""
    run = Path(run)
    samples: dict[str, list[dict]] = {}
    answers = run / "winrate" / "answers"
    if answers.is_dir():
        for path in sorted(answers.glob("*.jsonl")):
            rows = read_jsonl(path, per_stage + 1)
            if rows:  # the first line names the stage and the model, the rest are answers
                samples[rows[0].get("stage", path.stem)] = rows[1:]
        return samples
    for path in sorted((run / "rejection_sampling").glob("iter-*/samples/best.jsonl")):
        if not any(tag in path.parent.parent.name for tag in UNFINISHED):
            samples[f"rejection_sampling/{path.parent.parent.name}"] = read_jsonl(path, per_stage)
    return samples
