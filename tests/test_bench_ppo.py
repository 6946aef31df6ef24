"""bench/ppo.py: our side runs as the script is launched (by path, with bench/ first on sys.path)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_our_side_runs_from_its_script_path(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_ppo", REPO / "bench" / "ppo.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.build_models(tmp_path)
    command = [sys.executable, str(REPO / "bench" / "ppo.py"), "--side", "ours", "--workdir", str(tmp_path)]
    command += ["--iterations", "2", "--batch", "4", "--response-length", "4", "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["seconds_per_iteration"] > 0 and len(summary["scores"]) == 2
