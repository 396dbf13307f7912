"""What the SQLite store's file-identity check costs on the per-message path (issue 19, point 5).

    python -m bench.bench_sqlite_identity [--messages 3000] [--rounds 5]

The store stats its file after each commit (shared/store/sqlite.py `_verify_identity`). This
runs the same ordered messages through `OrderStepProcessor` over the SQLite store (WAL, synchronous=NORMAL,
as shipped) with the check as shipped and with it replaced by a no-op, alternating for `--rounds`
rounds (each goes first in every other round; the fastest round of each counts), and times a bare
`os.stat` of the file. Figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_batch import workload
from bench.common import machine
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.sqlite import SqliteOrderStore


def run_once(envelopes: list, directory: Path, check: bool) -> float:
    path = directory / f"orders-{time.monotonic_ns()}.db"
    store = SqliteOrderStore(path, codec=ORDERS)
    if not check:
        store._verify_identity = lambda: None  # type: ignore[method-assign]
    processor = OrderStepProcessor(store)
    started = time.perf_counter()
    for envelope in envelopes:
        processor.process(envelope)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.messages < 5 or args.rounds < 1:
        parser.error("--messages must be at least 5 and --rounds at least 1")
    orders = max(1, args.messages // 5)
    envelopes = [e for session in workload("ident", 1, orders).sessions for e in session]
    best = {True: float("inf"), False: float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for n in range(args.rounds):
            for check in (True, False) if n % 2 else (False, True):  # neither always goes first
                best[check] = min(best[check], run_once(envelopes, directory, check))
        probe = directory / "probe.db"
        probe.write_bytes(b"")
        stats = 100_000
        started = time.perf_counter()
        for _ in range(stats):
            os.stat(probe)
        stat_us = (time.perf_counter() - started) / stats * 1e6
    count = len(envelopes)
    with_check, without = best[True] / count * 1e6, best[False] / count * 1e6
    print(machine())
    print(f"messages: {count}, rounds: {args.rounds} (fastest round counts)")
    print(f"os.stat of the store file: {stat_us:.2f} us")
    print(f"per message, identity check as shipped (1 stat) : {with_check:.1f} us")
    print(f"per message, check replaced by a no-op:           {without:.1f} us")
    print(f"ratio: {with_check / without:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
