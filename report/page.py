"""The whole report: one HTML file with inline CSS and plots (base64 PNGs), nothing fetched from anywhere."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from report.runfiles import RunFileError, sample_conversations, stage_metrics
from report.sections import (
    gatt_section,
    oracle_section,
    ppo_section,
    rejection_section,
    reward_section,
    samples_section,
    stage_order,
    table,
    winrate_section,
)

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; background: #fff; }
h1 { border-bottom: 2px solid #336; } h2 { color: #336; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eef; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.dialog { border: 1px solid #ccd; border-radius: 6px; padding: 0.5em; margin: 0.5em 0; white-space: pre-wrap; }
.system { color: #666; } .user { color: #124; } .answer { background: #f3f7ee; }
"""


def overview(name: str, metrics: dict[str, dict]) -> str:
    rows = [[stage, ", ".join(sorted(m)[:8]) + (" ..." if len(m) > 8 else "")] for stage, m in
            sorted(metrics.items(), key=lambda item: stage_order(item[0]))]  # fmt: skip
    return f"<h1>Run {escape(name)}</h1><p>{len(metrics)} finished stages.</p>" + table(
        ["stage", "metrics.json keys"], rows
    )


def built(name: str, run: Path, make, *args) -> str | None:
    """One section; a metrics.json of an unexpected shape is reported as such, naming the section."""
    try:
        return make(*args)
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise RunFileError(
            f"{run}: the {name} section cannot be built from the stages' metrics.json files: {err!r}"
        ) from err


def render_report(run: Path, samples_per_stage: int = 3) -> str:
    """The report of a run as one HTML string; sections only for the stages the run has."""
    run = Path(run)
    metrics = stage_metrics(run)
    sections = [
        built("oracle", run, oracle_section, metrics),
        built("reward model", run, reward_section, metrics),
        built("rejection sampling", run, rejection_section, metrics),
        built("PPO", run, ppo_section, metrics),
        built("GAtt", run, gatt_section, metrics, run),
        built("win rate", run, winrate_section, metrics),
        built("samples", run, samples_section, sample_conversations(run, samples_per_stage)),
    ]
    body = overview(run.name, metrics) + "\n".join(s for s in sections if s)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>llama-rlhf report: {escape(run.name)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(run: Path, out: Path | None = None, samples_per_stage: int = 3) -> Path:
    """Write `<run>/report.html` (or `out`) atomically and return its path."""
    out = Path(out) if out is not None else Path(run) / "report.html"
    html = render_report(run, samples_per_stage)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out
