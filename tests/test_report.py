"""The run report: sections present exactly for the stages a run has, inline plots, clear errors on bad
files, and (with chromium installed) a headless screenshot that shows the plots, not a blank page."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from report.page import render_report, write_report
from report.runfiles import RunFileError, stage_metrics
from report.sections import adherence

REPO = Path(__file__).resolve().parents[1]
ACCURACY = {"significantly_better": 0.9, "better": 0.7, "slightly_better": 0.6, "negligibly_better": 0.52,
            "average": 0.64}  # fmt: skip
ORACLE = {"helpfulness": 0.4, "unsafe_compliance": 0.3, "false_refusal": 0.1, "constraint_added": 0.0}


def write(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def attention_png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(np.arange(64).reshape(8, 8), cmap="magma")
    fig.savefig(path)
    plt.close(fig)


def full_run(root: Path) -> Path:
    """Every stage's metrics.json in the layout the stages write, with small made-up numbers."""
    run = root / "exp"
    write(
        run / "sft" / "metrics.json",
        {"oracle.before": ORACLE, "oracle.after": {**ORACLE, "helpfulness": 0.6}},
    )
    write(run / "reward/helpfulness/metrics.json", {"eval": {"helpfulness": {"accuracy": ACCURACY}}})
    flagging = {"threshold": 0.15, "precision": 0.8, "recall": 0.5}
    write(
        run / "reward/safety/metrics.json",
        {"eval": {"safety": {"accuracy": ACCURACY, "unsafe_flagging": flagging}}},
    )
    for k in (1, 2):
        curve = {"n": [1, 2, 3, 4], "max": [0.1 * k, 0.3 * k, 0.4 * k, 0.45 * k], "median": [0.1 * k] * 4}
        selection = {"oracle_of_rm_pick": 0.5, "oracle_of_oracle_pick": 0.7, "oracle_of_first_sample": 0.4,
                     "rm_pick_is_an_oracle_best": 0.6}  # fmt: skip
        write(
            run / f"rejection_sampling/iter-{k}/metrics.json",
            {"reward_vs_n": curve, "selection_oracle": selection},
        )
    iterations = [{"iteration": i, "reward/score": 0.1 * i, "kl/sequence": 0.02 * i} for i in range(6)]
    iterations[3]["oracle/helpfulness"] = 0.5
    iterations[5]["oracle/helpfulness"] = 0.55
    write(
        run / "ppo/metrics.json", {"iterations": iterations, "iterations_run": 6, "stopped_by": "iterations"}
    )
    adherence = {"before": {"1": 1.0, "2": 0.5, "4": 0.1}, "after": {"1": 1.0, "2": 1.0, "4": 0.9}}
    write(run / "gatt/metrics.json", {"adherence_by_turn": adherence})  # as gatt/evaluate.py writes it
    attention_png(run / "gatt" / "attention.png")
    table = [
        {
            "model": "ppo",
            "baseline": "sft",
            "judge": j,
            "win": 6,
            "tie": 2,
            "loss": 2,
            "n": 10,
            "win_rate": 0.7,
        }
        for j in ("helpfulness_rm", "safety_rm", "oracle")
    ]
    write(run / "winrate/metrics.json", {"table": table, "prompts": 10, "tie_tolerance": 1e-6})
    answers = [
        {"stage": "ppo", "model": "x"},
        {"prompt": [{"role": "user", "content": "Hi <b>"}], "answer": "<script>x</script>"},
    ]
    (run / "winrate/answers").mkdir()
    (run / "winrate/answers/ppo.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    write(run / "ppo-safety.partial" / "metrics.json", {"status": "running"})  # unfinished: not reported
    return run


SECTIONS = ("Oracle evaluation per stage", "Reward models", "Rejection sampling", "PPO", "Ghost Attention",
            "Win rates (model-based evaluation)", "Sample conversations")  # fmt: skip


def test_full_run_has_every_section_and_inline_plots(tmp_path):
    html = render_report(full_run(tmp_path))
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html
    # rm accuracy, reward vs N, PPO curves, adherence, attention heat map, win rate
    assert html.count('<img src="data:image/png;base64,') == 6
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html  # sample text is escaped
    assert "<td>70.000</td>" in html  # the win rate in %
    assert "ppo-safety" not in html


def test_stage_metrics_skips_unfinished_and_names_stages(tmp_path):
    names = list(stage_metrics(full_run(tmp_path)))
    assert names == [
        "gatt", "ppo", "rejection_sampling/iter-1", "rejection_sampling/iter-2",
        "reward/helpfulness", "reward/safety", "sft", "winrate",
    ]  # fmt: skip


def test_sft_only_run_renders_without_the_later_sections(tmp_path):
    write(tmp_path / "solo" / "sft" / "metrics.json", {"train_loss": 1.5})
    html = render_report(tmp_path / "solo")
    assert "<h1>Run solo</h1>" in html and "<td>sft</td>" in html
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" not in html
    assert "<img" not in html


def test_bad_metrics_file_is_named_with_its_line(tmp_path):
    (tmp_path / "bad" / "ppo").mkdir(parents=True)
    (tmp_path / "bad" / "ppo" / "metrics.json").write_text('{\n  "iterations": [1,\n}')
    with pytest.raises(RunFileError, match=r"ppo/metrics.json:3: invalid json"):
        render_report(tmp_path / "bad")
    done = subprocess.run([sys.executable, "-m", "report", str(tmp_path / "bad")], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1 and "metrics.json:3: invalid json" in done.stderr


def test_command_line_writes_report_html(tmp_path):
    run = full_run(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "report", str(run)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(report: Path, out: Path, profile: Path) -> None:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1200,2400",
               f"file://{report.resolve()}"]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert out.is_file(), "chromium wrote no screenshot"


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_screenshot_shows_the_plots(tmp_path):
    import matplotlib.image

    report = write_report(full_run(tmp_path))
    shot = tmp_path / "shot.png"
    screenshot(report, shot, tmp_path / "profile")
    pixels = matplotlib.image.imread(shot)[..., :3]  # floats in [0, 1]
    assert pixels.shape[:2] == (2400, 1200)
    non_white = (pixels < 0.95).any(axis=2)
    colours = {tuple(p) for p in (pixels[::4, ::4] * 255).astype(int).reshape(-1, 3)}
    # Text and table borders alone stay well under these; the bar, line and heat-map plots exceed them.
    assert non_white.mean() > 0.05, f"only {non_white.mean():.1%} of the page is not white"
    assert len(colours) > 200, f"only {len(colours)} distinct colours"

    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body><h1>Run x</h1><p>nothing</p></body></html>")
    screenshot(blank, tmp_path / "blank.png", tmp_path / "profile2")
    blank_pixels = matplotlib.image.imread(tmp_path / "blank.png")[..., :3]
    assert (blank_pixels < 0.95).any(axis=2).mean() < 0.02  # the check can fail: a blank page does


def test_metrics_of_an_unexpected_shape_name_the_section(tmp_path):
    write(tmp_path / "odd" / "ppo" / "metrics.json", {"iterations": 5})  # a count, not the per-iteration list
    with pytest.raises(RunFileError, match="the PPO section"):
        render_report(tmp_path / "odd")


def test_adherence_read_from_either_layout():
    turns = {"2": 0.5}
    assert adherence({"adherence_by_turn": {"before": turns}}, "before") == turns
    assert adherence({"adherence_by_turn.after": {"by_turn": turns, "count": {"2": 3}}}, "after") == turns
    assert adherence({"adherence_by_turn": {"before": turns}}, "after") is None
