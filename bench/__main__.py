"""`python -m bench` (`make bench`): the quick benchmarks, one after another, then a summary.

Each runs in its own process so imports and warm caches do not leak between them; each is also
runnable alone with more flags (see its docstring). Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

QUICK: list[tuple[str, list[str]]] = [
    ("pipeline (in-process, SQLite)", ["-m", "bench.bench_pipeline"]),
    ("cold import of function_app", ["-m", "bench.bench_import"]),
    ("end to end (emulator -> host -> SQLite)", ["-m", "bench.bench_e2e"]),
    ("batch mode vs single (in-process, SQLite)", ["-m", "bench.bench_batch", "--stores", "sqlite"]),
]
OPTIONAL = [("Table round trips per message (Azurite)", "bench_table_roundtrips.py")]
SUMMARY_MARKERS = (
    "target",
    "ratio",
    "correctness",
    "cold `import",
    "RESULT",
    "round trip",
    "single-message path",
)


def main() -> int:
    runs = list(QUICK)
    for title, filename in OPTIONAL:
        if (REPO / "bench" / filename).is_file():
            runs.append((title, ["-m", f"bench.{Path(filename).stem}"]))
    summary: list[str] = []
    failed = 0
    for title, args in runs:
        print(f"\n=== {title}: python {' '.join(args)}", flush=True)
        proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=False)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            failed += 1
            print(proc.stderr[-3000:], file=sys.stderr)
            summary.append(f"{title}: FAILED (exit {proc.returncode})")
            continue
        picked = [ln.strip() for ln in proc.stdout.splitlines() if any(m in ln for m in SUMMARY_MARKERS)]
        summary.extend(f"{title}: {ln}" for ln in picked)
    print("\n=== summary")
    for line in summary:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
