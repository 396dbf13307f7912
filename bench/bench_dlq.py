"""`orders dlq` against a full dead-letter queue on the embedded emulator: how long list, a dry run, a
resubmit of everything and a repeated resubmit take, each as its own `orders` process (start-up included).

    python -m bench.bench_dlq                  # 20 sessions x 10 orders = 1,000 messages
    python -m bench.bench_dlq --customers 50   # 2,500

The DLQ is filled by dead-lettering every published message through session receivers (reason
`BenchReason`). Figures only; correctness is asserted in tests/e2e/test_dlq_resubmit.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUEUE = "orders-bench-dlq"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--orders-per-customer", type=int, default=10)
    args = parser.parse_args(argv)

    from azure.servicebus import ServiceBusClient

    from devstack.emulator.config import QueueProperties
    from devstack.emulator.server import EmulatorServer
    from orders_cli.sender import send_messages
    from orders_cli.traffic import PublishPlan, customer_id, generate_messages

    server = EmulatorServer(REPO / "dev" / "servicebus" / "Config.json", host="127.0.0.1", port=0)
    server.start()
    try:
        server.create_queue(
            QUEUE,
            QueueProperties(requires_session=True, requires_duplicate_detection=True, max_delivery_count=10),
        )
        plan = PublishPlan(customers=args.customers, orders_per_customer=args.orders_per_customer, seed=3)
        messages = generate_messages(plan)
        conn = server.connection_string
        send_messages(messages, connection_string=conn, namespace=None, queue=QUEUE, progress=False)
        with ServiceBusClient.from_connection_string(conn) as client:
            for n in range(1, plan.customers + 1):
                receiver = client.get_queue_receiver(
                    QUEUE, session_id=customer_id(plan, n), max_wait_time=0.5
                )
                with receiver:
                    while got := receiver.receive_messages(max_message_count=50):
                        for m in got:
                            receiver.dead_letter_message(m, reason="BenchReason")
        print(f"published {len(messages)}, dead-lettered {server.dead_letter_count(QUEUE)}")
        env = dict(os.environ, ServiceBusConnection=conn, ORDERS_QUEUE_NAME=QUEUE)
        orders = [sys.executable, "-m", "orders_cli.cli"]
        for action in (
            ["list"],
            ["resubmit", "--all", "--dry-run"],
            ["resubmit", "--all"],
            ["resubmit", "--all"],
        ):
            started = time.perf_counter()
            run = subprocess.run([*orders, "dlq", *action, "--json"], env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            doc = json.loads(run.stdout) if run.returncode == 0 else {"error": run.stderr.strip()}
            what = doc.get("counts", doc.get("by_reason", doc))
            counts = server.queue_counts(QUEUE)
            print(
                f"orders dlq {' '.join(action):<24} {elapsed:6.2f} s  {what}  "
                f"queue active {counts['active']}, DLQ {counts['dead_lettered']}"
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
