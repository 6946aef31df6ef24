"""The Llama 2 reward-model loss: a binary ranking loss with a margin that grows with the rating.

L = -log(sigmoid(r(x, y_chosen) - r(x, y_rejected) - m(rating)))   (Llama 2, section 3.2.2, eq. 2)

The margin tables are the paper's table 27. "large" is three times "small"; "none" is the plain
InstructGPT ranking loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from chat.dialog import RATINGS, PreferencePair

MARGINS: dict[str, dict[str, float]] = {
    "none": dict.fromkeys(RATINGS, 0.0),
    "small": {
        "significantly_better": 1.0,
        "better": 2 / 3,
        "slightly_better": 1 / 3,
        "negligibly_better": 0.0,
    },
    "large": {"significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0},
}


def margin_table(name: str) -> dict[str, float]:
    """The margin table called `name`; ValueError naming train.margin for any other name."""
    if name not in MARGINS:
        raise ValueError(
            f"train.margin: unknown margin table {name!r} (expected one of {', '.join(MARGINS)})"
        )
    return MARGINS[name]


def margin_for(pair: PreferencePair, table: dict[str, float]) -> float:
    """The margin of one pair: the dataset's own numeric margin if it has one, else the table's for its rating.

    A pair with neither (HH-RLHF has no ratings) gets 0: with no rating there is no evidence of a strong
    preference, and 0 is the margin the paper gives its weakest level.
    """
    if pair.margin is not None:
        return float(pair.margin)
    if pair.rating is None:
        return 0.0
    if pair.rating not in table:
        raise ValueError(f"rating {pair.rating!r} is not one of {', '.join(RATINGS)}")
    return table[pair.rating]


def ranking_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected - margin) over the batch (logsigmoid is the stable form)."""
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()
