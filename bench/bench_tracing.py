"""Tracing cost per message: CPU time of the spans the function makes for one message (the processing
span and two store-call spans, as at steady state: one ledger read, one commit), no exporter.

`python -m bench.bench_tracing`; `OTEL_SDK_DISABLED=true python -m bench.bench_tracing` for the
disabled path. CPU time (time.process_time), best of 5 rounds, so other load on the machine matters
less than for wall-clock figures. Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import time

from shared import tracing
from shared.envelope import SessionEnvelope
from shared.store.memory import InMemoryOrderStore

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def main(rounds: int = 5, per_round: int = 5000) -> int:
    envelope = SessionEnvelope(
        b"{}", "cust-1", "m-1", sequence_number=3, application_properties={"traceparent": TRACEPARENT}
    )
    store = tracing.traced_store(InMemoryOrderStore())

    def one() -> None:
        with tracing.message_span(envelope) as span:
            span.log_fields()
            store.get_ledger("cust-1", "ord-1")
            store.get_ledger("cust-1", "ord-1")  # stands in for the commit: same span cost
            span.record({"outcome": "applied", "order_id": "ord-1", "sequence": 1, "step": "order.placed"})

    for _ in range(1000):
        one()
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round):
            one()
        best = min(best, (time.process_time() - started) / per_round)
    state = "on" if tracing.enabled() else "off (OTEL_SDK_DISABLED)"
    print(f"tracing {state}: {best * 1e6:.0f} us CPU per message (1 processing + 2 store spans, no exporter)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
