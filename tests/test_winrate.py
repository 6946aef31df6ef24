"""Win rates: the win/tie/loss arithmetic on hand values, which stages are compared, the answer cache,
and `python -m winrate` end to end on very small random models."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_runs import write_fake_run
from winrate.answers import cached_answers
from winrate.outcomes import win_tie_loss
from winrate.stages import comparisons, model_stages
from winrate.table import format_winrate_table, mean_scores, winrate_rows

REPO = Path(__file__).resolve().parents[1]


def test_win_tie_loss_counts_ties_within_tolerance_as_half():
    result = win_tie_loss([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 4.0000001], tolerance=1e-6)
    assert result == {"win": 1, "tie": 2, "loss": 1, "n": 4, "win_rate": 0.5}


def test_win_tie_loss_without_ties():
    result = win_tie_loss([3, 3, 3], [1, 1, 5])
    assert (result["win"], result["tie"], result["loss"]) == (2, 0, 1)
    assert result["win_rate"] == pytest.approx(2 / 3)


def test_win_tie_loss_exact_tolerance_is_a_tie_and_just_above_is_not():
    assert win_tie_loss([1.5], [1.0], tolerance=0.5)["tie"] == 1
    assert win_tie_loss([1.5], [1.0], tolerance=0.49)["win"] == 1


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0], [1.0, 2.0], "1 scores for A but 2"),
        ([], [], "no scores"),
        ([1.0, float("nan")], [0.0, 0.0], "prompt 1"),
    ],
)
def test_win_tie_loss_rejects_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        win_tie_loss(a, b)


def test_comparisons_against_sft_and_the_previous_stage():
    stages = ["sft", "rejection_sampling/iter-1", "rejection_sampling/iter-2", "ppo"]
    assert comparisons(stages) == [
        ("rejection_sampling/iter-1", "sft"),
        ("rejection_sampling/iter-2", "sft"),
        ("rejection_sampling/iter-2", "rejection_sampling/iter-1"),
        ("ppo", "sft"),
        ("ppo", "rejection_sampling/iter-2"),
    ]
    assert comparisons(["sft"]) == []
    with pytest.raises(ValueError, match="no sft stage"):
        comparisons(["ppo"])


def finished(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text("{}")
    return folder


def test_model_stages_in_training_order_skipping_unfinished(tmp_path):
    for stage in [
        "gatt",
        "ppo",
        "sft",
        "rejection_sampling/iter-10",
        "rejection_sampling/iter-2",
        "sft-safety",
    ]:
        finished(tmp_path / stage)
    (tmp_path / "rejection_sampling" / "iter-3.partial").mkdir()  # running: not a model yet
    (tmp_path / "ppo-safety").mkdir()  # no metrics.json: not finished
    finished(tmp_path / "reward" / "helpfulness")  # not a policy
    names = [name for name, _ in model_stages(tmp_path)]
    assert names == [
        "sft",
        "rejection_sampling/iter-2",
        "rejection_sampling/iter-10",
        "ppo",
        "sft-safety",
        "gatt",
    ]


def test_winrate_rows_and_table():
    scores = {
        "sft": {"rm": [0.0, 0.0, 0.0, 0.0], "oracle": [0.5, 0.5, 0.5, 0.5]},
        "ppo": {"rm": [1.0, 1.0, -1.0, 0.0], "oracle": [0.5, 0.5, 0.5, 0.5]},
    }
    rows = winrate_rows(scores, [("ppo", "sft")], tolerance=0.0)
    assert [(r["judge"], r["win"], r["tie"], r["loss"], r["win_rate"]) for r in rows] == [
        ("rm", 2, 1, 1, 0.625),
        ("oracle", 0, 4, 0, 0.5),
    ]
    assert mean_scores(scores)["ppo"] == {"rm": 0.25, "oracle": 0.5}
    assert format_winrate_table(rows).splitlines()[2] == "| ppo | sft | 62.5 (2/1/1) | 50.0 (0/4/0) |"


def test_answers_are_generated_once_and_regenerated_when_the_model_or_prompts_change(tmp_path):
    model = finished(tmp_path / "run" / "ppo")
    work, final = tmp_path / "winrate.partial", tmp_path / "winrate"
    prompts = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "bye"}]]
    calls = []

    def generator_for(folder):
        def generate(dialogs):
            calls.append(len(dialogs))
            return [f"answer {len(calls)} to {d[-1]['content']}" for d in dialogs]

        return generate

    first = cached_answers("ppo", model, prompts, [work, final], generator_for)
    assert first == ["answer 1 to hi", "answer 1 to bye"]
    assert cached_answers("ppo", model, prompts, [work, final], generator_for) == first
    assert calls == [2]
    assert cached_answers("ppo", model, prompts[:1], [work, final], generator_for) == ["answer 2 to hi"]
    time.sleep(0.01)
    (model / "metrics.json").write_text('{"retrained": true}')  # the stage was redone
    assert cached_answers("ppo", model, prompts[:1], [work, final], generator_for) == ["answer 3 to hi"]
    header = json.loads((work / "answers" / "ppo.jsonl").read_text().splitlines()[0])
    assert header["stage"] == "ppo"
    # other sampling settings: the cached answers are not theirs
    assert cached_answers("ppo", model, prompts[:1], [work, final], generator_for, "temperature=0.0") == [
        "answer 4 to hi"
    ]
    assert cached_answers("ppo", model, prompts[:1], [work, final], generator_for, "temperature=0.0") == [
        "answer 4 to hi"
    ]


def make_run(run: Path) -> None:
    """sft and ppo policies (two random tiny models) and both reward models, as finished stages."""
    write_fake_run(run, {"sft": 0, "ppo": 5}, {"reward/helpfulness": 1, "reward/safety": 2})


def test_winrate_stage_end_to_end(tmp_path):
    make_run(tmp_path / "exp")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "winrate", f"run.root={tmp_path}", "run.name=exp", "logger=none",
               "eval.max_prompts=6", "eval.max_new_tokens=4"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "exp" / "winrate"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages"] == ["sft", "ppo"]
    assert metrics["judges"] == ["helpfulness_rm", "safety_rm", "oracle"]
    assert metrics["prompts"] == 6
    rows = {(r["model"], r["baseline"], r["judge"]): r for r in metrics["table"]}
    assert set(rows) == {("ppo", "sft", j) for j in metrics["judges"]}
    for row in rows.values():
        assert row["win"] + row["tie"] + row["loss"] == row["n"] == 6
    assert (out / "winrate.png").stat().st_size > 1000
    cached = (out / "answers" / "ppo.jsonl").read_text().splitlines()
    assert len(cached) == 1 + 6
    assert not (tmp_path / "exp" / "winrate.partial").exists()

    from report.page import render_report  # the report reads what the stage wrote

    html = render_report(tmp_path / "exp")
    assert "<h2>Win rates (model-based evaluation)</h2>" in html
    assert "<h3>sft</h3>" in html and "<h3>ppo</h3>" in html  # sample conversations from the cached answers


def test_config_takes_the_overrides_the_pipeline_gives_every_stage_and_rejects_typos():
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    import winrate.config  # noqa: F401  (registers the schema)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(
            "winrate", ["run.name=x", "logger=none", "model=llama2-7b", "peft=lora", "eval.max_prompts=7"]
        )
        assert (cfg.run.name, cfg.logger.backend, cfg.model.name, cfg.eval.max_prompts) == (
            "x",
            "none",
            "llama2-7b",
            7,
        )
        with pytest.raises(ConfigCompositionException):
            compose("winrate", ["eval.max_prompt=7"])


def test_a_reward_model_judge_ranks_an_empty_answer_last(tmp_path):
    """Sampled answers can be empty (EOS at once); the RM judge scores them below anything, not crash."""
    from reward.scoring import EMPTY_ANSWER_SCORE
    from winrate.judges import reward_model_judge

    make_run(tmp_path / "exp")
    judge = reward_model_judge(tmp_path / "exp" / "reward" / "helpfulness", batch_size=4)
    prompt = [{"role": "user", "content": "What is 2 plus 3?"}]
    scores = judge([prompt] * 3, ["2 plus 3 is 5.", "", "It is 5."])
    assert scores[1] == EMPTY_ANSWER_SCORE and min(scores[0], scores[2]) > EMPTY_ANSWER_SCORE
