"""The report's plots, each a matplotlib Figure built from metrics.json contents (None when nothing to plot)."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from chat.dialog import RATINGS  # noqa: E402

# Llama 2 table 8: the helpfulness RM on Meta Helpful (%), the reference row shown beside ours.
PAPER_HELPFULNESS_RM = {
    "significantly_better": 80.7,
    "better": 67.5,
    "slightly_better": 60.9,
    "negligibly_better": 54.7,
    "average": 63.2,
}
ACCURACY_COLUMNS = (*RATINGS, "average")
PPO_PANELS = (("reward/score", "RM score of the samples"), ("kl/sequence", "KL to the reference (per sequence)"),
              ("oracle/helpfulness", "oracle helpfulness (held-out)"))  # fmt: skip


def png_data_uri(fig) -> str:
    """The figure as an inline `data:image/png;base64,...` URI (the report needs no other file)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def rm_accuracy_figure(reward_stages: dict[str, dict]):
    """Bars per reward model and test set over the rating levels, the paper's row as black marks."""
    bars = {
        f"{stage.split('/')[-1]} RM on {test_set}": result.get("accuracy", {})
        for stage, metrics in reward_stages.items()
        for test_set, result in metrics.get("eval", {}).items()
    }
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(12, 4.2))
    width = 0.8 / len(bars)
    for b, (label, accuracy) in enumerate(bars.items()):
        xs = [c + (b - (len(bars) - 1) / 2) * width for c in range(len(ACCURACY_COLUMNS))]
        heights = [100 * accuracy[c] if is_number(accuracy.get(c)) else 0.0 for c in ACCURACY_COLUMNS]
        ax.bar(xs, heights, width, label=label)
    ax.scatter(range(len(ACCURACY_COLUMNS)), [PAPER_HELPFULNESS_RM[c] for c in ACCURACY_COLUMNS],
               marker="_", s=900, color="black", label="paper: helpfulness RM, Meta Helpful")  # fmt: skip
    ax.axhline(50, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(ACCURACY_COLUMNS)), [c.replace("_", " ") for c in ACCURACY_COLUMNS])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Reward-model accuracy by rating level (table 8 layout; 50% = chance)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: the bars fill the axes
    fig.tight_layout()
    return fig


def reward_vs_n_figure(iterations: dict[str, dict]):
    """Max and median reward among the first N samples, per rejection-sampling iteration (figure 7)."""
    curves = {name: m["reward_vs_n"] for name, m in iterations.items() if m.get("reward_vs_n", {}).get("n")}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, curve in curves.items():
        (line,) = ax.plot(curve["n"], curve["max"], marker="o", label=f"{name}: max")
        ax.plot(curve["n"], curve["median"], linestyle="--", color=line.get_color(), label=f"{name}: median")
    ax.set_xlabel("N samples per prompt")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("reward (mean over prompts)")
    ax.set_title("Rejection sampling: maximum and median reward among N samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ppo_figure(ppo_stages: dict[str, dict]):
    """Reward, KL and held-out oracle helpfulness per PPO iteration, one line per PPO stage."""
    histories = {name: m.get("iterations", []) for name, m in ppo_stages.items()}
    panels = [
        (key, title)
        for key, title in PPO_PANELS
        if any(is_number(row.get(key)) for rows in histories.values() for row in rows)
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for name, rows in histories.items():
            points = [(r["iteration"], r[key]) for r in rows if is_number(r.get(key)) and "iteration" in r]
            if points:
                ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PPO iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def turn_shares(by_turn: dict) -> list[tuple[int, float]]:
    """{turn: share} (turn keys are strings once through JSON) as sorted (turn, share) with shares known."""
    return sorted((int(t), float(v)) for t, v in by_turn.items() if is_number(v))


def adherence_figure(before: dict | None, after: dict | None):
    """Share of answers honouring the system instruction by turn, before and after GAtt (table 30)."""
    series = {label: turn_shares(d) for label, d in (("before GAtt", before), ("after GAtt", after)) if d}
    series = {label: points for label, points in series.items() if points}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for label, points in series.items():
        ax.plot(*zip(*[(t, 100 * s) for t, s in points]), marker="o", label=label)
    ax.set_ylim(-5, 105)
    ax.set_xlabel("dialog turn")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("answers adhering (%)")
    ax.set_title("GAtt: instruction adherence by turn")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
