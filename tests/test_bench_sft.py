"""bench/sft.py: every mode trains the same rows and gets a row of the table."""

import pytest

from tests.bench_scripts import load_bench


@pytest.mark.slow
def test_bench_measures_each_mode_against_padded(capsys):
    modes = ["padded", "padding_free+bf16"]
    speeds = load_bench("sft").main(["--steps", "2", "--batch", "2", "--repeats", "1", "--modes", *modes])
    assert set(speeds) == set(modes) and all(v > 0 for v in speeds.values())
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["padded"][2] == "1.00x"
    assert rows["padding_free+bf16"][2] == f"{speeds['padding_free+bf16'] / speeds['padded']:.2f}x"
