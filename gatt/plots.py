"""The evaluation's figures: adherence per turn (table 30 as lines) and attention to the system message."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def adherence_plot(path: Path, curves: dict[str, dict], title: str) -> None:
    """One line per model: {label: {turn: share}} with shares in 0..1 (None where no dialog reached it)."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, by_turn in curves.items():
        points = sorted((int(t), v) for t, v in by_turn.items() if v is not None)
        ax.plot([t for t, _ in points], [100 * v for _, v in points], marker="o", label=label)
    ax.set(xlabel="turn", ylabel="answers honouring the system constraint (%)", ylim=(-2, 102), title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def attention_plot(
    path: Path, maps: dict[str, list[list[float]]], turn_starts: list[int], title: str
) -> None:
    """Panels of [layers, token bins] maps sharing one colour scale; dotted lines where user turns start."""
    top = max(max(max(row) for row in m) for m in maps.values())
    fig, axes = plt.subplots(len(maps), 1, figsize=(10, 1.6 + 1.4 * len(maps)), sharex=True, squeeze=False)
    for ax, (label, grid) in zip(axes[:, 0], maps.items()):
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
        for x in turn_starts:
            ax.axvline(x - 0.5, color="white", lw=0.6, ls=":")
        ax.set(ylabel="layer", title=label)
    axes[-1, 0].set_xlabel("dialog tokens after the system message (binned)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="max attention to the system message")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
