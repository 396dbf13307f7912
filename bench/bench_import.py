"""Cold `import function_app` time: median of fresh processes, plus the -X importtime top offenders.

    python -m bench.bench_import                 # 7 fresh processes, top 15 offenders
    python -m bench.bench_import --runs 15 --top 25

Each run is `python -c "import function_app"` in a new interpreter from the repo root, timed inside the
child (perf_counter around the import), so interpreter start-up is not counted; the whole process wall
time is printed too. Bytecode caches are warm (as on a deployed worker after the first start).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 400.0
_CHILD = "import time; t=time.perf_counter(); import function_app; print((time.perf_counter()-t)*1000)"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env["PYTHONPATH"] = str(REPO)
    return env


def one_run() -> tuple[float, float]:
    """(import ms measured in the child, whole process wall ms)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=REPO, env=_env(), capture_output=True, text=True, check=True
    )
    wall = (time.perf_counter() - started) * 1000
    return float(out.stdout.strip().splitlines()[-1]), wall


def importtime(top: int) -> list[tuple[float, float, str]]:
    """(self ms, cumulative ms, module) for the slowest top-level-ish imports, by cumulative time."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[float, float, str, int]] = []
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m[1]) / 1000, int(m[2]) / 1000, m[4], len(m[3]) // 2))
    # offenders: packages imported directly (depth <= 2) ranked by cumulative time
    shallow = [(s, c, name) for s, c, name, depth in rows if depth <= 2]
    return sorted(shallow, key=lambda r: r[1], reverse=True)[:top]


def measure(runs: int) -> dict[str, float]:
    one_run()  # warm the bytecode cache and the OS page cache
    samples = [one_run() for _ in range(runs)]
    imports = [s[0] for s in samples]
    walls = [s[1] for s in samples]
    return {
        "median_ms": statistics.median(imports),
        "min_ms": min(imports),
        "max_ms": max(imports),
        "median_process_ms": statistics.median(walls),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    figures = measure(args.runs)
    print(f"machine: {machine()}")
    print(
        f"cold `import function_app`: median {figures['median_ms']:.0f} ms"
        f" (min {figures['min_ms']:.0f}, max {figures['max_ms']:.0f}, {args.runs} fresh processes);"
        f" whole process incl. interpreter start: median {figures['median_process_ms']:.0f} ms"
    )
    verdict = "met" if figures["median_ms"] <= TARGET_MS else "MISSED"
    print(f"target <= {TARGET_MS:.0f} ms: {verdict}")
    print("\n-X importtime, imports at depth <= 2 by cumulative time (one run; ms):")
    print(f"{'cumulative':>10}  {'self':>8}  module")
    for self_ms, cum_ms, name in importtime(args.top):
        print(f"{cum_ms:10.1f}  {self_ms:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
