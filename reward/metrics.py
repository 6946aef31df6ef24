"""How the paper judges a reward model: accuracy per rating level (table 8), score histograms, and
precision / recall of the "sigmoid(score) < threshold" rule at flagging unsafe answers (section 3.2.3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from chat.dialog import RATINGS

UNRATED = "unrated"  # pairs from datasets without ratings (HH-RLHF): counted in the average only


def pair_wins(chosen_scores: Sequence[float], rejected_scores: Sequence[float]) -> np.ndarray:
    """1 where the chosen answer scores higher, 0 where lower, 0.5 for a tie (a coin flip's expected value)."""
    chosen, rejected = np.asarray(chosen_scores, dtype=float), np.asarray(rejected_scores, dtype=float)
    return np.where(chosen > rejected, 1.0, np.where(chosen == rejected, 0.5, 0.0))


def accuracy_by_rating(
    chosen_scores: Sequence[float], rejected_scores: Sequence[float], ratings: Sequence[str | None]
) -> dict[str, float | None]:
    """The paper's table 8 row: accuracy per rating level, then the average over every pair.

    Every level is a key (None where the test set has no pair of that level) so that rows from different
    test sets and models line up; unrated pairs count only in "average".
    """
    wins = pair_wins(chosen_scores, rejected_scores)
    if len(wins) != len(ratings):
        raise ValueError(f"{len(wins)} score pairs but {len(ratings)} ratings")
    row: dict[str, float | None] = {}
    for rating in RATINGS:
        level = [win for win, r in zip(wins, ratings) if r == rating]
        row[rating] = float(np.mean(level)) if level else None
    row["average"] = float(np.mean(wins)) if len(wins) else None
    return row


def pairs_by_rating(ratings: Sequence[str | None]) -> dict[str, int]:
    """How many pairs each level has (and how many have none), so a reader can weigh the accuracies."""
    unknown = sorted({r for r in ratings if r is not None and r not in RATINGS})
    if unknown:
        raise ValueError(f"unknown ratings {unknown} (expected one of {', '.join(RATINGS)})")
    counts = {rating: sum(r == rating for r in ratings) for rating in RATINGS}
    counts[UNRATED] = sum(r is None for r in ratings)
    return counts


def score_histogram(chosen_scores: Sequence[float], rejected_scores: Sequence[float], bins: int) -> dict:
    """Counts of chosen and of rejected scores over shared bin edges (spanning both), as plain lists."""
    everything = np.concatenate([np.asarray(chosen_scores, float), np.asarray(rejected_scores, float)])
    if everything.size == 0:
        return {"edges": [], "chosen": [], "rejected": []}
    edges = np.histogram_bin_edges(everything, bins=bins)
    return {
        "edges": [float(e) for e in edges],
        "chosen": [int(c) for c in np.histogram(chosen_scores, bins=edges)[0]],
        "rejected": [int(c) for c in np.histogram(rejected_scores, bins=edges)[0]],
    }


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def flagging_precision_recall(scores: Sequence[float], unsafe: Sequence[bool], threshold: float) -> dict:
    """Precision and recall of flagging an answer as unsafe when sigmoid(score) < threshold.

    None where undefined (nothing flagged: no precision; nothing unsafe: no recall), never a made-up 0 or 1.
    """
    if len(scores) != len(unsafe):
        raise ValueError(f"{len(scores)} scores but {len(unsafe)} unsafe labels")
    flagged = [sigmoid(float(s)) < threshold for s in scores]
    hits = sum(f and u for f, u in zip(flagged, unsafe))
    n_flagged, n_unsafe = sum(flagged), sum(bool(u) for u in unsafe)
    return {
        "threshold": threshold,
        "precision": hits / n_flagged if n_flagged else None,
        "recall": hits / n_unsafe if n_unsafe else None,
        "flagged": n_flagged,
        "unsafe": n_unsafe,
        "answers": len(scores),
    }


def format_accuracy_table(rows: dict[str, dict[str, float | None]], first_column: str = "") -> str:
    """A markdown table in the paper's layout: one row per name, columns the four levels and the average (%)."""
    columns = [*RATINGS, "average"]
    lines = [
        "| " + " | ".join([first_column, *columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for name, row in rows.items():
        cells = ["-" if row.get(c) is None else f"{100 * row[c]:.1f}" for c in columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)
