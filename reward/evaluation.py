"""Judging a reward model on its test sets the way the paper does (tables 8 and 28, section 3.2.3).

Per test set: accuracy per rating level and on average, the number of pairs per level, the histogram of
chosen and rejected scores, and for the safety RM the precision / recall of "sigmoid(score) < 0.15" at
flagging unsafe answers. Which answers are unsafe:
- built-in world: the oracle's verdict, `chatworld.oracle.safety(prompt, answer)["unsafe_compliance"]`
  (an answer that complies with a harmful request), for both answers of every pair;
- other data (no oracle): the rejected answer of every pair counts as unsafe and the chosen one as safe,
  which is right for harmlessness pairs (HH-RLHF harmless-base) and only an approximation elsewhere.
Pairs without a rating (HH-RLHF) count in the average only; their number is reported as "unrated".
On the built-in world, also the accuracy on pairs whose chosen answer is correct, by what the rejected one
is (a refusal, a hedge between two values, a wrong value): whether the RM checks the claimed value or only
the answer's shape.
"""

from __future__ import annotations

from chat.dialog import PreferencePair
from reward.encoding import AnswerTooLong, encode_pair
from reward.metrics import (
    accuracy_by_rating,
    flagging_precision_recall,
    pair_wins,
    pairs_by_rating,
    score_histogram,
)
from reward.scoring import RewardScorer

UNSAFE_BY_ORACLE = "oracle: unsafe_compliance of each answer"
UNSAFE_BY_PAIR = "pairs: the rejected answer of each pair"


def oracle_unsafe_labels(pairs: list[PreferencePair]) -> tuple[list[bool], list[bool]]:
    """(chosen unsafe?, rejected unsafe?) per pair, by the built-in world's oracle."""
    from chatworld.oracle import safety

    chosen = [safety(p.prompt, p.chosen)["unsafe_compliance"] for p in pairs]
    rejected = [safety(p.prompt, p.rejected)["unsafe_compliance"] for p in pairs]
    return chosen, rejected


def pair_unsafe_labels(pairs: list[PreferencePair]) -> tuple[list[bool], list[bool]]:
    """Without an oracle: the rejected answer is taken as the unsafe one."""
    return [False] * len(pairs), [True] * len(pairs)


def accuracy_against_correct(
    pairs: list[PreferencePair], chosen: list[float], rejected: list[float]
) -> dict[str, dict]:
    """Built-in world: {rejected verdict: {"accuracy", "pairs"}} over the pairs whose chosen answer the
    oracle grades correct (verdicts: refusal / partly / wrong; harmful requests left out).

    The wrong-value pairs are also split by style, as "wrong, rejected <better|same|worse> style": an RM
    that checks values wins all three, one that ranks by style loses the first (the wrong answer is
    written better than the right one)."""
    from chatworld.oracle import style_factor, task_verdict

    wins: dict[str, list[float]] = {}
    for pair, win in zip(pairs, pair_wins(chosen, rejected)):
        if task_verdict(pair.prompt, pair.chosen) != "correct":
            continue
        verdict = task_verdict(pair.prompt, pair.rejected)
        if verdict == "correct":
            continue
        wins.setdefault(verdict, []).append(float(win))
        if verdict == "wrong":
            gap = style_factor(pair.rejected) - style_factor(pair.chosen)
            style = "better" if gap > 0 else "worse" if gap < 0 else "same"
            wins.setdefault(f"wrong, rejected {style} style", []).append(float(win))
    return {v: {"accuracy": sum(w) / len(w), "pairs": len(w)} for v, w in sorted(wins.items())}


def score_pairs(
    scorer: RewardScorer, pairs: list[PreferencePair]
) -> tuple[list[PreferencePair], list[float], list[float]]:
    """(the pairs scored, their chosen scores, their rejected scores), pairs encoded as in training.

    A pair whose answers cannot fit is left out, as training leaves it out; the caller reports how many.
    """
    sequences, kept = [], []
    for pair in pairs:
        try:
            chosen_ids, rejected_ids, _ = encode_pair(scorer.encoder, pair, scorer.max_length)
        except AnswerTooLong:
            continue
        sequences += [chosen_ids, rejected_ids]
        kept.append(pair)
    scores = scorer.score_ids(sequences).tolist() if sequences else []
    return kept, scores[0::2], scores[1::2]


def evaluate_pairs(
    scorer: RewardScorer,
    pairs: list[PreferencePair],
    *,
    bins: int,
    unsafe_threshold: float | None = None,
    builtin: bool = False,
) -> dict:
    """The metrics of one test set; `unsafe_threshold` set (the safety RM) adds the flagging precision/recall."""
    encodable, chosen, rejected = score_pairs(scorer, pairs)
    ratings = [p.rating for p in encodable]
    result = {
        "accuracy": accuracy_by_rating(chosen, rejected, ratings),
        "pairs": pairs_by_rating(ratings),
        "skipped_answer_too_long": len(pairs) - len(encodable),
        "histogram": score_histogram(chosen, rejected, bins),
    }
    if builtin:
        result["correct_vs"] = accuracy_against_correct(encodable, chosen, rejected)
    if unsafe_threshold is not None:
        unsafe_chosen, unsafe_rejected = (oracle_unsafe_labels if builtin else pair_unsafe_labels)(encodable)
        result["unsafe_flagging"] = {
            **flagging_precision_recall(chosen + rejected, unsafe_chosen + unsafe_rejected, unsafe_threshold),
            "unsafe_means": UNSAFE_BY_ORACLE if builtin else UNSAFE_BY_PAIR,
        }
    return result
