"""A plain SDK session consumer: N threads, each accepts the next available session, receives one
message at a time and completes it, until the queue stays empty. The ceiling the local host is
compared with in bench_e2e (same process model: a subprocess next to the emulator).

    python -m bench.raw_consumer --connection "Endpoint=..." --queue q --concurrency 16 --expect 1000

Prints one JSON line: {"messages": n, "seconds": first receive -> last complete}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient
from azure.servicebus.exceptions import OperationTimeoutError, SessionCannotBeLockedError


def consume(connection: str, queue: str, concurrency: int, expect: int, idle_s: float) -> dict[str, float]:
    lock = threading.Lock()
    state = {"count": 0, "first": 0.0, "last": 0.0, "quiet_since": time.monotonic()}

    def worker() -> None:
        with ServiceBusClient.from_connection_string(connection) as client:
            while True:
                with lock:
                    done = state["count"] >= expect or time.monotonic() - state["quiet_since"] > idle_s
                if done:
                    return
                try:
                    receiver = client.get_queue_receiver(
                        queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=0.5, prefetch_count=0
                    )
                    with receiver:
                        while True:
                            batch = receiver.receive_messages(max_message_count=1, max_wait_time=0.5)
                            if not batch:
                                break
                            for message in batch:
                                receiver.complete_message(message)
                                now = time.monotonic()
                                with lock:
                                    state["first"] = state["first"] or now
                                    state["last"] = now
                                    state["quiet_since"] = now
                                    state["count"] += 1
                except (OperationTimeoutError, SessionCannotBeLockedError):
                    continue

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"messages": state["count"], "seconds": max(1e-9, state["last"] - state["first"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connection", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args(argv)
    print(json.dumps(consume(args.connection, args.queue, args.concurrency, args.expect, args.idle)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
