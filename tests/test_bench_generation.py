"""bench/generation.py: both paths generate the same number of samples, and the ratio is theirs."""

import statistics
import subprocess
import sys
from pathlib import Path

from basemodel.precision import cpu_computes_bf16
from tests.bench_scripts import load_bench

REPO = Path(__file__).resolve().parents[1]


def test_bench_prompts_vary_in_length():
    prompts = load_bench("generation").bench_prompts(32)
    assert len(prompts) == 32 and all(p[-1]["role"] == "user" for p in prompts)
    assert len({len(p[0]["content"]) for p in prompts}) > 8


def test_bench_reports_both_paths_and_the_median_of_their_paired_ratios():
    result = load_bench("generation").main(
        ["--prompts", "6", "--k", "2", "--max-new-tokens", "3", "--batch-size", "8", "--rounds", "3"]
    )
    assert result["samples"] == 12
    assert len(result["ratios"]) == 3 and all(r > 0 for r in result["ratios"])
    assert result["ratio"] == statistics.median(result["ratios"])
    assert result["batched_samples_per_s"] > 0 and result["one_at_a_time_samples_per_s"] > 0


def test_bench_precision_is_the_stages_unless_asked():
    bench = load_bench("generation")
    args = ["--prompts", "2", "--k", "2", "--max-new-tokens", "2", "--rounds", "1"]
    stage = "bf16 autocast" if cpu_computes_bf16() else "float32"
    assert bench.main(args)["precision"] == stage
    assert bench.main([*args, "--precision", "fp32"])["precision"] == "float32"
    assert bench.main([*args, "--precision", "bf16"])["precision"] == "bf16 autocast"


def test_bench_runs_as_a_script_despite_its_name(tmp_path):
    # run as a script, the way users run it
    command = [
        sys.executable,
        str(REPO / "bench/generation.py"),
        "--prompts",
        "2",
        "--k",
        "2",
        "--max-new-tokens",
        "2",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert "batched" in last and "one prompt at a time" in last and last.rstrip().endswith("x")
    assert last.split("|")[-1].strip().startswith("ratio")
