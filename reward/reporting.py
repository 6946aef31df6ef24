"""Putting a reward model's evaluation where people look: wandb tables / histograms, and the baselines
it has to beat on the built-in world (chatworld.baselines: length only, bag of words)."""

from __future__ import annotations

from chat.dialog import RATINGS, PreferencePair
from pipeline.tracking import Tracker
from reward.data import BUILTIN_OBJECTIVES, builtin_file, read_pairs

COLUMNS = ["test_set", *RATINGS, "average", "pairs"]


def as_world_records(pairs: list[PreferencePair]) -> list[dict]:
    """Pairs in the record layout chatworld.baselines reads (answers as one-message lists, the rating)."""
    return [
        {
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
            "rating": p.rating,
        }
        for p in pairs
    ]


def baseline_rows(cfg) -> dict[str, dict[str, dict]]:
    """Per built-in test set, the per-rating accuracy of the length-only and bag-of-words baselines,
    each fitted on the train pairs of the same kind."""
    from chatworld.baselines import bag_of_words_baseline, length_baseline

    rows = {}
    for objective in BUILTIN_OBJECTIVES:
        train = as_world_records(
            read_pairs([builtin_file(cfg.run, cfg.data, objective, "train")], "train", "auto")
        )
        test = as_world_records(
            read_pairs([builtin_file(cfg.run, cfg.data, objective, "test")], "test", "auto")
        )
        if cfg.eval.max_pairs:
            test = test[: cfg.eval.max_pairs]
        rows[objective] = {
            "length": length_baseline(train, test),
            "bag_of_words": bag_of_words_baseline(train, test),
        }
    return rows


def accuracy_table_rows(evaluation: dict) -> list[list]:
    return [
        [name, *[result["accuracy"][c] for c in (*RATINGS, "average")], sum(result["pairs"].values())]
        for name, result in evaluation.items()
    ]


def log_evaluation(tracker: Tracker, metrics: dict) -> None:
    """Accuracy table (paper table 8 layout), score histograms and flagging rates into wandb."""
    if not tracker.enabled:
        return
    import numpy as np
    import wandb

    evaluation = metrics["eval"]
    tracker.log_table("eval/accuracy_by_rating", COLUMNS, accuracy_table_rows(evaluation))
    summary = {}
    for name, result in evaluation.items():
        for column, value in result["accuracy"].items():
            summary[f"eval/{name}/accuracy/{column}"] = value
        histogram = result["histogram"]
        if histogram["edges"]:
            edges = np.asarray(histogram["edges"])
            for side in ("chosen", "rejected"):
                counts = np.asarray(histogram[side])
                tracker.log({f"eval/{name}/scores_{side}": wandb.Histogram(np_histogram=(counts, edges))})
        for key in ("precision", "recall"):
            if "unsafe_flagging" in result:
                summary[f"eval/{name}/unsafe_flagging/{key}"] = result["unsafe_flagging"][key]
    for test_set, baselines in metrics.get("baselines", {}).items():
        for baseline, row in baselines.items():
            summary[f"baselines/{test_set}/{baseline}/average"] = row.get("average")
    tracker.summary(summary)
