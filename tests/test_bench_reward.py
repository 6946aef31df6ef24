"""bench/reward.py: both runs train the same steps from the same SFT model, and the ratio is theirs."""

import pytest

from tests.bench_scripts import load_bench
from tests.test_reward_train import SMALL, make_sft_checkpoint


@pytest.mark.slow
def test_bench_trains_both_ways_and_prints_their_ratio(tmp_path, capsys):
    sft = make_sft_checkpoint(tmp_path)
    overrides = [o for o in SMALL if o != "logger=none"] + ["eval.max_pairs=16", "train.max_pairs=64"]
    result = load_bench("reward").main(["--sft", str(sft), "--max-steps", "2", *overrides])
    random_run, grouped = result["random"], result["grouped"]
    assert random_run["global_step"] == grouped["global_step"] == 2
    assert random_run["init_from"] == grouped["init_from"] == str(sft.resolve())
    assert random_run["curriculum_pairs"] == grouped["curriculum_pairs"] == 0  # capped: the mixed pairs only
    per_step = [r["train_seconds"] / r["global_step"] for r in (random_run, grouped)]
    assert result["ratio"] == pytest.approx(per_step[0] / per_step[1])
    out = capsys.readouterr().out
    assert "| random | 2 |" in out and "| grouped by length | 2 |" in out and "speed ratio" in out
