"""Each model's answers to the held-out prompts, generated once and cached in the stage's output.

The cache (`answers/<stage>.jsonl`, one {"prompt", "answer"} per line after a header line naming the
stage, the model's fingerprint and the sampling settings) lets every judge score the same answers and lets
an interrupted evaluation resume without regenerating the models it had finished. A cache made for other
prompts, other sampling settings or a model that has since been retrained is ignored, never silently reused.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pipeline.stage import COMPLETE_MARKER

log = logging.getLogger(__name__)

Generate = Callable[[list[list[dict]]], list[str]]


def cache_name(stage: str) -> str:
    """`rejection_sampling/iter-2` -> `rejection_sampling-iter-2.jsonl` (one flat folder of caches)."""
    return stage.replace("/", "-") + ".jsonl"


def model_fingerprint(stage_dir: Path) -> str:
    """Changes whenever the stage is redone: the size and modification time of its completion marker."""
    marker = Path(stage_dir) / COMPLETE_MARKER
    info = marker.stat()
    return f"{info.st_size}-{info.st_mtime_ns}"


def read_cache(path: Path, prompts: list[list[dict]], fingerprint: str) -> list[str] | None:
    """The cached answers if the file holds exactly these prompts for this model, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header, rows = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    except (IndexError, json.JSONDecodeError) as err:
        log.warning("%s: unreadable answer cache (%s): generating again", path, err)
        return None
    if header.get("model") != fingerprint or [r.get("prompt") for r in rows] != prompts:
        log.info("%s: made for another model or other prompts: generating again", path)
        return None
    return [r["answer"] for r in rows]


def write_cache(
    path: Path, stage: str, prompts: list[list[dict]], answers: list[str], fingerprint: str
) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"stage": stage, "model": fingerprint})]
    lines += [json.dumps({"prompt": p, "answer": a}, ensure_ascii=False) for p, a in zip(prompts, answers)]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def cached_answers(
    stage: str,
    stage_dir: Path,
    prompts: list[list[dict]],
    folders: list[Path],
    generate_for: Callable[[Path], Generate],
    settings: str = "",
) -> list[str]:
    """Answers of the model in `stage_dir` under the sampling `settings`: from the first valid cache in
    `folders`, else generated and cached in `folders[0]` (the work folder)."""
    fingerprint = f"{model_fingerprint(stage_dir)} {settings}".strip()
    for folder in folders:
        answers = read_cache(Path(folder) / "answers" / cache_name(stage), prompts, fingerprint)
        if answers is not None:
            log.info("%s: reusing %d cached answers from %s", stage, len(answers), folder)
            return answers
    answers = list(generate_for(stage_dir)(prompts))
    if len(answers) != len(prompts):
        raise ValueError(f"{stage}: generated {len(answers)} answers for {len(prompts)} prompts")
    write_cache(Path(folders[0]) / "answers" / cache_name(stage), stage, prompts, answers, fingerprint)
    return answers
