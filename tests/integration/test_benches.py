"""The benchmarks still run and print their figures (tiny sizes; nothing here asserts on time)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_single_floor_prints_a_row_per_tracing_set_up_and_ablation() -> None:
    out = _run("bench.bench_single_floor", "--messages", "20", "--rounds", "1", "--ablate")
    rows = re.findall(r"^(\w+(?: -\w+)?)\s+(\d+)\s+(\d+)\s+([\d.]+)x$", out, re.MULTILINE)
    expected = ["default", "exported", "off", "default -log", "default -hash", "default -span"]
    assert [row[0] for row in rows] == expected, out
    assert all(int(floor) > 0 and int(ours) > 0 for _, floor, ours, _ in rows), out


def test_single_floor_refuses_a_bad_argument_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_single_floor", "--messages", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--messages must be at least 5" in done.stderr


def test_tracing_bench_prints_the_three_set_ups() -> None:
    out = _run("bench.bench_tracing")
    modes = re.findall(r"^tracing (default|exported|off)\s*:\s+[\d.]+ us CPU per message", out, re.MULTILINE)
    assert modes == ["default", "exported", "off"], out
