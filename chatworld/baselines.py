"""Baselines that show the helpfulness pairs are not solved by surface features.

Both score each answer alone and prefer the higher score: a length-only rule (the better direction,
longer or shorter, chosen on the train pairs) and a bag-of-words logistic regression trained on the
train pairs (numpy, no bias: a pair and its swap must get opposite predictions). Ties count as half.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from chat.dialog import RATINGS


def _answer(record: dict, side: str) -> str:
    return record[side][-1]["content"]


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+|\d+|[^\sa-z\d]", text.lower())


def accuracy_by_rating(records: list[dict], margins: np.ndarray) -> dict[str, float]:
    """Share of pairs where margin (chosen score - rejected score) > 0, ties half; per rating and 'average'."""
    wins = np.where(margins > 0, 1.0, np.where(margins == 0, 0.5, 0.0))
    by = defaultdict(list)
    for record, win in zip(records, wins):
        by[record.get("rating")].append(win)
    out = {r: round(float(np.mean(by[r])), 4) for r in RATINGS if by[r]}
    out["average"] = round(float(np.mean(wins)), 4) if len(wins) else float("nan")
    return out


def length_baseline(train: list[dict], test: list[dict]) -> dict[str, float]:
    def gaps(records):
        return np.array(
            [len(_answer(r, "chosen")) - len(_answer(r, "rejected")) for r in records], dtype=float
        )

    direction = 1.0 if np.mean(np.sign(gaps(train))) >= 0 else -1.0  # longer-is-better or shorter-is-better
    return accuracy_by_rating(test, direction * gaps(test))


def _bow_matrix(records: list[dict], vocab: dict[str, int]) -> np.ndarray:
    x = np.zeros((len(records), len(vocab)))
    for i, record in enumerate(records):
        for side, sign in (("chosen", 1.0), ("rejected", -1.0)):
            for token in _tokens(_answer(record, side)):
                if token in vocab:
                    x[i, vocab[token]] += sign
    return x


def bag_of_words_baseline(
    train: list[dict], test: list[dict], steps: int = 500, lr: float = 0.5, l2: float = 1e-3
) -> dict[str, float]:
    vocab = {}
    for record in train:
        for side in ("chosen", "rejected"):
            for token in _tokens(_answer(record, side)):
                vocab.setdefault(token, len(vocab))
    x = _bow_matrix(train, vocab)
    w = np.zeros(len(vocab))
    for _ in range(steps):  # full-batch gradient descent on -log sigmoid(w . x)
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        w -= lr * ((x.T @ (p - 1.0)) / len(x) + l2 * w)
    return accuracy_by_rating(test, _bow_matrix(test, vocab) @ w)


def oracle_ceiling(test: list[dict]) -> dict[str, float]:
    """Accuracy of the true oracle scores themselves: the best any reward model can do (ties count half),
    below 100% only where the annotator noise decided a near-tie."""
    margins = np.array([r["meta"]["chosen_score"] - r["meta"]["rejected_score"] for r in test])
    return accuracy_by_rating(test, margins)
