"""The GAtt fine-tune dataset: cut points of the sampled dialogs plus replayed base dialogs, as jsonl rows.

Each row is `{"messages", "input_ids", "labels", "meta"}`: the messages re-render with
`python -m chat.render`, and the labels are explicit (-100 everywhere but the last answer of a GAtt
example; every answer of a replayed base dialog), so the file can be inspected and reused elsewhere.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from gatt.synthesis import check_row, choose_cuts, gatt_row, replay_count, replay_row, training_dialog

log = logging.getLogger(__name__)


def gatt_rows(
    encoder, records: list[dict], cut_points: int, seed: int, max_length: int
) -> tuple[list[dict], dict]:
    """Rows for every kept turn chosen as a cut point; counts of what was dropped and why."""
    rows, too_long, dropped_turns = [], 0, 0
    for record in records:
        dropped_turns += sum(not ok for ok in record["keep"])
        rng = random.Random(f"gatt-cuts:{seed}:{record['key']}")
        for cut in choose_cuts(record["keep"], cut_points, rng):
            messages = training_dialog(record["instruction"], record["users"], record["answers"], cut)
            meta = {
                "constraint": record["constraint"],
                "short": record["short"],
                "cut": cut,
                "source": record["source"],
            }
            row = gatt_row(encoder, messages, meta)
            if len(row["input_ids"]) > max_length:
                too_long += 1
                continue
            rows.append(row)
    sampled_turns = sum(len(r["keep"]) for r in records)
    stats = {
        "dialogs": len(records),
        "sampled_turns": sampled_turns,
        "dropped_turns": dropped_turns,
        "dropped_turn_rate": dropped_turns / max(sampled_turns, 1),
        "dialogs_stopped_early": sum(r["stopped_at"] is not None for r in records),
        "gatt_rows": len(rows),
        "skipped_too_long": too_long,
    }
    return rows, stats


def replay_rows(encoder, dialogs: list[list[dict]], count: int, seed: int, max_length: int) -> list[dict]:
    """`count` base dialogs drawn without replacement (all of them if fewer), too long ones passed over."""
    order = list(range(len(dialogs)))
    random.Random(f"gatt-replay:{seed}").shuffle(order)
    rows = []
    for index in order:
        if len(rows) >= count:
            break
        row = replay_row(encoder, dialogs[index], {"base_index": index})
        if len(row["input_ids"]) <= max_length:
            rows.append(row)
    if len(rows) < count:
        log.warning("replay: only %d of the %d base dialogs wanted fit", len(rows), count)
    return rows


def mixed_rows(
    gatt: list[dict], replay_pool: list[list[dict]], encoder, share: float, seed: int, max_length: int
) -> list[dict]:
    """GAtt rows and replay rows (`share` of the mix), shuffled together."""
    rows = gatt + replay_rows(encoder, replay_pool, replay_count(len(gatt), share), seed, max_length)
    random.Random(f"gatt-mix:{seed}").shuffle(rows)
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def read_training_rows(path: Path) -> tuple[list[dict], dict]:
    """`{"input_ids", "labels"}` rows of a GAtt dataset file; a bad line raises naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no GAtt dataset (run python gatt/synthesize.py first or set train_data)"
        )
    rows, replayed = [], 0
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid json: {err.msg}") from err
            rows.append(check_row(record, where))
            replayed += bool(record.get("meta", {}).get("replay"))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows, {"rows": len(rows), "replay_rows": replayed}
