"""Tracing cost per message: CPU time of the spans the function makes for one message (the processing
span and two store-call spans: a ledger read that misses the cache, and the commit), in three set-ups,
each in a fresh process:

  default   tracing on, no exporter (local runs): ids made and logged, spans dropped, no store spans;
  exported  a span processor attached (as with Application Insights): spans recorded and handed to a
            batching exporter that discards them;
  off       OTEL_SDK_DISABLED=true.

`python -m bench.bench_tracing`. CPU time (time.process_time), best of 5 rounds, so other load on the
machine matters less than for wall-clock figures. Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.common import export_and_discard_spans, machine, tracing_environment
from shared import tracing
from shared.envelope import SessionEnvelope
from shared.store.memory import InMemoryOrderStore
from shared.workflows import ORDERS

ATTRIBUTES = ORDERS.span_attributes()

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MODES = ("default", "exported", "off")


def measure(mode: str, rounds: int = 5, per_round: int = 5000) -> float:
    """Seconds of CPU per message in this process, set up as `mode`."""
    if mode == "exported":
        export_and_discard_spans()
    envelope = SessionEnvelope(
        b"{}", "cust-1", "m-1", sequence_number=3, application_properties={"traceparent": TRACEPARENT}
    )
    store = tracing.traced_store(InMemoryOrderStore())  # no cache: every ledger read is a round trip

    def one() -> None:
        with tracing.message_span(envelope) as span:
            span.log_fields()
            store.get_ledger("cust-1", "ord-1")
            store.get_ledger("cust-1", "ord-1")  # stands in for the commit: same span cost
            span.record(
                {"outcome": "applied", "order_id": "ord-1", "sequence": 1, "step": "order.placed"}, ATTRIBUTES
            )

    for _ in range(1000):
        one()
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round):
            one()
        best = min(best, (time.process_time() - started) / per_round)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one set-up, in this process
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps({"cpu_s": measure(args.mode)}))
        return 0
    print(f"machine: {machine()}")
    print("command: python -m bench.bench_tracing")
    for mode in MODES:
        env = tracing_environment(mode)
        command = [sys.executable, "-m", "bench.bench_tracing", "--mode", mode]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        cpu = json.loads(done.stdout.strip().splitlines()[-1])["cpu_s"]
        print(f"tracing {mode:<9}: {cpu * 1e6:5.1f} us CPU per message (1 processing + 2 store-call spans)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
