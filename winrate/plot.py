"""The win-rate figure: win rate against SFT per model and judge (bars, 50% = no change), and where both
reward models judged, helpfulness against safety win rate per model as in the paper's figure 11."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402


def winrate_figure(rows: list[dict], baseline: str = "sft"):
    """A matplotlib Figure of the rows against `baseline` (None when there are none)."""
    rows = [r for r in rows if r["baseline"] == baseline]
    if not rows:
        return None
    models = list(dict.fromkeys(r["model"] for r in rows))
    judges = list(dict.fromkeys(r["judge"] for r in rows))
    rate = {(r["model"], r["judge"]): 100 * r["win_rate"] for r in rows}
    scatter = {"helpfulness_rm", "safety_rm"} <= set(judges)
    fig, axes = plt.subplots(1, 2 if scatter else 1, figsize=(11 if scatter else 7, 4.2), squeeze=False)
    bars = axes[0][0]
    width = 0.8 / len(judges)
    for j, judge in enumerate(judges):
        xs = [m + (j - (len(judges) - 1) / 2) * width for m in range(len(models))]
        bars.bar(xs, [rate.get((model, judge), 0.0) for model in models], width, label=judge)
    bars.axhline(50, color="black", linewidth=0.8, linestyle="--")
    bars.set_xticks(range(len(models)), models, rotation=20, ha="right", fontsize=8)
    bars.set_ylim(0, 100)
    bars.set_ylabel(f"win rate vs {baseline} (%)")
    bars.set_title(f"Win rate against {baseline} (ties count half)")
    bars.legend(fontsize=8)
    if scatter:
        ax = axes[0][1]
        for model in models:
            x, y = rate[(model, "safety_rm")], rate[(model, "helpfulness_rm")]
            ax.scatter([x], [y], s=40)
            ax.annotate(model, (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.axhline(50, color="grey", linewidth=0.8, linestyle="--")
        ax.axvline(50, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_xlabel("safety win rate (%, safety RM)")
        ax.set_ylabel("helpfulness win rate (%, helpfulness RM)")
        ax.set_title(f"Figure 11 view: each model against {baseline}")
    fig.tight_layout()
    return fig


def save_winrate_plot(rows: list[dict], path, baseline: str = "sft") -> bool:
    """Write the figure as a PNG; False (nothing written) when no model was compared with the baseline."""
    fig = winrate_figure(rows, baseline)
    if fig is None:
        return False
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
