"""Pipeline throughput in-process: OrderService.handle over a SQLite store, JSON logging included.

    python -m bench.bench_pipeline                      # 10,000 msgs / 200 sessions, ours vs baseline
    python -m bench.bench_pipeline --scaling            # + 1/8/32/128 sessions and 1k/10k messages
    python -m bench.bench_pipeline --scaling --big      # + 100k messages
    python -m bench.bench_pipeline --profile out.prof   # cProfile the main run, print the top functions

"Baseline" is what the original recipe's trigger does per message: parse the JSON body and write one
log line. Both runs format their log lines with the same JsonFormatter and discard the text.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import pstats
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import json_logs_discarded, machine, percentile, print_table
from orders_cli.traffic import Workload, build_workload, check_applied
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store.sqlite import SqliteOrderStore

baseline_log = logging.getLogger("orders.baseline")


@dataclass(slots=True)
class RunResult:
    name: str
    messages: int
    sessions: int
    seconds: float
    per_message: list[float] = field(repr=False, default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    log_lines: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else float("inf")

    @property
    def p50_ms(self) -> float:
        return percentile(self.per_message, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.per_message, 99) * 1000

    def row(self) -> list[object]:
        return [self.name, self.messages, self.sessions, self.rate, self.p50_ms, self.p99_ms]


HEADER = ["run", "messages", "sessions", "msg/s", "p50 ms", "p99 ms"]


def baseline_handle(envelope: SessionEnvelope) -> None:
    """The original recipe: decode and parse the body, log one line."""
    doc = json.loads(envelope.body)
    baseline_log.info(
        "Processing message",
        extra={
            "session_id": envelope.session_id,
            "message_id": envelope.message_id,
            "sequence": doc.get("sequence"),
        },
    )


def run_ours(
    workload: Workload, workdir: Path, name: str = "ours (sqlite)", profile: Path | None = None
) -> RunResult:
    store = SqliteOrderStore(workdir / f"bench-{time.monotonic_ns()}.db", codec=ORDERS)
    service = OrderService(AppSettings(), store)
    result = RunResult(name, len(workload.messages), workload.sessions, 0.0)
    timings = result.per_message
    outcomes = result.outcomes
    profiler = cProfile.Profile() if profile else None
    with json_logs_discarded("orders.processing") as handler:
        if profiler:
            profiler.enable()
        clock = time.perf_counter
        started = clock()
        for env in workload.messages:
            t0 = clock()
            outcome = service.handle(env).outcome
            timings.append(clock() - t0)
            outcomes[outcome.value] += 1
        result.seconds = clock() - started
        if profiler:
            profiler.disable()
        result.log_lines = handler.records
    if profiler and profile:
        profiler.dump_stats(str(profile))
    result.problems = check_applied(store.list_ledgers(), workload)
    store.close()
    return result


def run_baseline(workload: Workload) -> RunResult:
    result = RunResult("baseline (parse+log)", len(workload.messages), workload.sessions, 0.0)
    timings = result.per_message
    with json_logs_discarded("orders.baseline") as handler:
        clock = time.perf_counter
        started = clock()
        for env in workload.messages:
            t0 = clock()
            baseline_handle(env)
            timings.append(clock() - t0)
        result.seconds = clock() - started
        result.log_lines = handler.records
    return result


def main_run(messages: int, sessions: int, workdir: Path, profile: Path | None = None) -> dict[str, Any]:
    workload = build_workload(messages, sessions, duplicate_rate=0.05, shuffle=True)
    run_ours(build_workload(500, 20, seed=99), workdir, "warm-up")  # imports, pydantic schema build, SQLite
    ours = run_ours(workload, workdir, profile=profile)
    base = run_baseline(workload)
    return {"ours": ours, "baseline": base, "ratio": ours.rate / base.rate, "workload": workload}


def scaling(workdir: Path, big: bool) -> list[RunResult]:
    rows: list[RunResult] = []
    for sessions in (1, 8, 32, 128):
        rows.append(run_ours(build_workload(10_000, sessions), workdir, f"sessions={sessions}"))
    for messages in (1_000, 10_000, *((100_000,) if big else ())):
        rows.append(run_ours(build_workload(messages, 200), workdir, f"messages={messages}"))
    return rows


def report(main: dict[str, Any], out_rows: list[RunResult] | None = None) -> None:
    ours: RunResult = main["ours"]
    base: RunResult = main["baseline"]
    wl: Workload = main["workload"]
    print(f"machine: {machine()}")
    print(
        f"workload: {len(wl.messages)} messages, {wl.sessions} sessions, {wl.duplicates} duplicates,"
        " shuffled within session; store: SQLite (WAL, synchronous=NORMAL) in a temp dir;"
        " logs: JsonFormatter -> discarded"
    )
    print_table([ours.row(), base.row()], HEADER)
    print(f"ratio ours/baseline: {main['ratio']:.3f}")
    print(f"outcomes: {dict(ours.outcomes)}; log lines: {ours.log_lines}")
    print(
        "correctness: "
        + (
            "every order applied exactly as published"
            if not ours.problems
            else f"{len(ours.problems)} PROBLEMS: {ours.problems[:3]}"
        )
    )
    target = 5000
    print(f"target >= {target} msg/s: {'met' if ours.rate >= target else 'MISSED'} ({ours.rate:,.0f})")
    if out_rows:
        print("\nscaling (ours, SQLite, 5% duplicates, shuffled):")
        print_table([r.row() for r in out_rows], HEADER)
        bad = [r.name for r in out_rows if r.problems]
        if bad:
            print(f"PROBLEMS in {bad}")


def print_profile(path: Path, limit: int = 25) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--scaling", action="store_true", help="also 1/8/32/128 sessions, 1k/10k messages")
    parser.add_argument("--big", action="store_true", help="with --scaling: add the 100k-message run")
    parser.add_argument("--profile", type=Path, help="cProfile the main run into this file and print it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(tmp)
        result = main_run(args.messages, args.sessions, workdir, args.profile)
        rows = scaling(workdir, args.big) if args.scaling else None
    report(result, rows)
    if args.profile:
        print_profile(args.profile)
    return 1 if result["ours"].problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
