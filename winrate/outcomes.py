"""Win / tie / loss of one model against another from the scores a judge gave their answers."""

from __future__ import annotations

import math
from collections.abc import Sequence


def win_tie_loss(scores_a: Sequence[float], scores_b: Sequence[float], tolerance: float = 0.0) -> dict:
    """Per prompt: A wins when its score is above B's by more than `tolerance`, ties within it, loses otherwise.

    `win_rate` counts a tie as half a win (the paper's figure 11 reads win rate this way), so two identical
    models get exactly 0.5 rather than 0.
    """
    if len(scores_a) != len(scores_b):
        raise ValueError(f"win_tie_loss: {len(scores_a)} scores for A but {len(scores_b)} for B")
    if not scores_a:
        raise ValueError("win_tie_loss: no scores to compare")
    if tolerance < 0:
        raise ValueError(f"win_tie_loss: tolerance must be >= 0, got {tolerance}")
    win = tie = loss = 0
    for index, (a, b) in enumerate(zip(scores_a, scores_b)):
        a, b = float(a), float(b)
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"win_tie_loss: prompt {index} has a non-finite score ({a}, {b})")
        if abs(a - b) <= tolerance:
            tie += 1
        elif a > b:
            win += 1
        else:
            loss += 1
    n = win + tie + loss
    return {"win": win, "tie": tie, "loss": loss, "n": n, "win_rate": (win + tie / 2) / n}
