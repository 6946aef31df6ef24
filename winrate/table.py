"""The win-rate table (the paper's figure 11 as rows) from every model's scores under every judge."""

from __future__ import annotations

from winrate.outcomes import win_tie_loss


def winrate_rows(
    scores: dict[str, dict[str, list[float]]], pairs: list[tuple[str, str]], tolerance: float
) -> list[dict]:
    """One row per (model, baseline, judge): `scores[stage][judge]` are the judge's scores of that stage's
    answers to the same prompts, in the same order."""
    rows = []
    for model, baseline in pairs:
        for judge in scores[model]:
            outcome = win_tie_loss(scores[model][judge], scores[baseline][judge], tolerance)
            rows.append({"model": model, "baseline": baseline, "judge": judge, **outcome})
    return rows


def mean_scores(scores: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Mean score per stage and judge, to read beside the win rates (a win can be by a hair)."""
    return {
        stage: {judge: sum(values) / len(values) for judge, values in by_judge.items()}
        for stage, by_judge in scores.items()
    }


def format_winrate_table(rows: list[dict]) -> str:
    """Markdown: one line per model and baseline, one column per judge, cells `win% (W/T/L)`."""
    judges = list(dict.fromkeys(r["judge"] for r in rows))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        text = f"{100 * r['win_rate']:.1f} ({r['win']}/{r['tie']}/{r['loss']})"
        cells.setdefault((r["model"], r["baseline"]), {})[r["judge"]] = text
    lines = ["| model | vs | " + " | ".join(judges) + " |", "|---|---|" + "---|" * len(judges)]
    for (model, baseline), by_judge in cells.items():
        lines.append(f"| {model} | {baseline} | " + " | ".join(by_judge.get(j, "-") for j in judges) + " |")
    return "\n".join(lines)
