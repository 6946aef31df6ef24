"""The report's sections as HTML fragments; each returns None when its stage is not in the run."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from report.figures import (
    ACCURACY_COLUMNS,
    adherence_figure,
    is_number,
    png_data_uri,
    ppo_figure,
    reward_vs_n_figure,
    rm_accuracy_figure,
)
from winrate.plot import winrate_figure
from winrate.stages import CHRONOLOGICAL

ORACLE_COLUMNS = ("helpfulness", "unsafe_compliance", "evasive", "false_refusal", "constraint_added")
PPO_STAGES = ("ppo", "ppo-safety")


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def image(uri: str, alt: str) -> str:
    return f'<figure><img src="{uri}" alt="{escape(alt)}"><figcaption>{escape(alt)}</figcaption></figure>'


def plot(fig, alt: str) -> str:
    return image(png_data_uri(fig), alt) if fig is not None else ""


def cell(value) -> str:
    if is_number(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    return "-" if value is None else escape(str(value))


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def stage_order(name: str) -> tuple[int, int, str]:
    """Sort key: the order stages are trained in (rejection sampling iterations by number), then the rest."""
    top, _, sub = name.partition("/")
    rank = CHRONOLOGICAL.index(top) if top in CHRONOLOGICAL else len(CHRONOLOGICAL)
    return rank, int(sub[5:]) if sub.startswith("iter-") and sub[5:].isdigit() else 0, name


def oracle_section(metrics: dict[str, dict]) -> str | None:
    """Held-out oracle numbers of every model stage before and after it trained."""
    rows = []
    for name in sorted(metrics, key=stage_order):
        for when in ("before", "after"):
            result = metrics[name].get(f"oracle.{when}")
            if isinstance(result, dict):
                rows.append([name, when, *[result.get(c) for c in ORACLE_COLUMNS]])
    if not rows:
        return None
    note = (
        "<p>Each stage's input (before) and output (after) model answering the built-in world's held-out "
        "prompts, judged by the oracle; answers sampled as the stage's <code>eval</code> settings say "
        "(by default temperature 1, 4 answers a prompt).</p>"
    )
    return section("Oracle evaluation per stage", note, table(["stage", "when", *ORACLE_COLUMNS], rows))


def reward_section(metrics: dict[str, dict]) -> str | None:
    rms = {name: m for name, m in metrics.items() if name.startswith("reward/")}
    if not rms:
        return None
    rows, flagging = [], []
    for name, m in rms.items():
        for test_set, result in m.get("eval", {}).items():
            accuracy = result.get("accuracy", {})
            rows.append([name, test_set, *[accuracy.get(c) for c in ACCURACY_COLUMNS]])
            if isinstance(result.get("unsafe_flagging"), dict):
                f = result["unsafe_flagging"]
                flagging.append([name, test_set, f.get("threshold"), f.get("precision"), f.get("recall")])
    parts = [
        plot(rm_accuracy_figure(rms), "Reward-model accuracy by rating level"),
        table(["reward model", "test set", *ACCURACY_COLUMNS], rows),
    ]
    if flagging:
        parts += [
            "<h3>Flagging unsafe answers: sigmoid(score) &lt; threshold</h3>",
            table(["reward model", "test set", "threshold", "precision", "recall"], flagging),
        ]
    return section("Reward models", *parts)


def rejection_section(metrics: dict[str, dict]) -> str | None:
    iters = {
        n: m
        for n, m in sorted(metrics.items(), key=lambda i: stage_order(i[0]))
        if n.startswith("rejection_sampling/")
    }
    if not iters:
        return None
    columns = [
        "oracle_of_rm_pick",
        "oracle_of_oracle_pick",
        "oracle_of_first_sample",
        "rm_pick_is_an_oracle_best",
    ]
    rows = [
        [n, *[m["selection_oracle"].get(c) for c in columns]]
        for n, m in iters.items()
        if "selection_oracle" in m
    ]
    parts = [plot(reward_vs_n_figure(iters), "Maximum and median reward vs number of samples")]
    if rows:
        parts += ["<h3>The RM as a selector, judged by the oracle</h3>", table(["iteration", *columns], rows)]
    return section("Rejection sampling", *parts)


def ppo_section(metrics: dict[str, dict]) -> str | None:
    stages = {n: metrics[n] for n in PPO_STAGES if n in metrics}
    if not stages:
        return None
    rows = [[n, m.get("iterations_run"), m.get("stopped_by")] for n, m in stages.items()]
    return section(
        "PPO",
        plot(ppo_figure(stages), "PPO reward, KL and oracle helpfulness per iteration"),
        table(["stage", "iterations run", "stopped by"], rows),
    )


def adherence(metrics: dict, when: str) -> dict | None:
    """GAtt adherence by turn, written as `adherence_by_turn.<when>` or nested; the turn map or the full
    chatworld.evaluation result (its `by_turn`)."""
    value = metrics.get(f"adherence_by_turn.{when}")
    if value is None and isinstance(metrics.get("adherence_by_turn"), dict):
        value = metrics["adherence_by_turn"].get(when)
    if isinstance(value, dict) and isinstance(value.get("by_turn"), dict):
        value = value["by_turn"]
    return value if isinstance(value, dict) else None


def gatt_section(metrics: dict[str, dict], run: Path) -> str | None:
    if "gatt" not in metrics:
        return None
    parts = [plot(adherence_figure(adherence(metrics["gatt"], "before"), adherence(metrics["gatt"], "after")),
                  "GAtt: instruction adherence by turn")]  # fmt: skip
    heat_map = Path(run) / "gatt" / "attention.png"
    if heat_map.is_file():
        uri = "data:image/png;base64," + base64.b64encode(heat_map.read_bytes()).decode("ascii")
        parts.append(image(uri, "Attention to the system message (gatt/attention.png)"))
    return section("Ghost Attention", *parts)


def winrate_section(metrics: dict[str, dict]) -> str | None:
    result = metrics.get("winrate")
    if not result or not result.get("table"):
        return None
    rows = [
        [r["model"], r["baseline"], r["judge"], 100 * r["win_rate"], r["win"], r["tie"], r["loss"]]
        for r in result["table"]
    ]
    note = (
        f"<p>{result.get('prompts', '?')} held-out prompts, sampled answers (the win-rate stage's eval settings); a tie (scores within "
        f"{result.get('tie_tolerance', '?')}) counts as half a win.</p>"
    )
    header = ["model", "vs", "judge", "win rate %", "win", "tie", "loss"]
    return section(
        "Win rates (model-based evaluation)",
        note,
        table(header, rows),
        plot(winrate_figure(result["table"]), "Win rate against SFT"),
    )


def conversation(prompt: list[dict], answer: str) -> str:
    turns = [f'<div class="{escape(m["role"])}"><b>{escape(m["role"])}</b>: {escape(m["content"])}</div>'
             for m in prompt]  # fmt: skip
    turns.append(f'<div class="assistant answer"><b>answer</b>: {escape(answer)}</div>')
    return '<div class="dialog">' + "".join(turns) + "</div>"


def samples_section(samples: dict[str, list[dict]]) -> str | None:
    parts = []
    for stage in sorted(samples, key=stage_order):
        rows = [r for r in samples[stage] if isinstance(r.get("prompt"), list) and "answer" in r]
        if rows:
            parts.append(
                f"<h3>{escape(stage)}</h3>"
                + "".join(conversation(r["prompt"], str(r["answer"])) for r in rows)
            )
    return section("Sample conversations", *parts) if parts else None
