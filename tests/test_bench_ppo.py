"""bench/ppo.py: our side runs as the script is launched (by path, with bench/ first on sys.path)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench_scripts import load_bench

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_our_side_runs_from_its_script_path(tmp_path):
    load_bench("ppo").build_models(tmp_path)
    command = [sys.executable, str(REPO / "bench" / "ppo.py"), "--side", "ours", "--workdir", str(tmp_path)]
    command += ["--iterations", "2", "--batch", "4", "--response-length", "4", "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["seconds_per_iteration"] > 0 and len(summary["scores"]) == 2
