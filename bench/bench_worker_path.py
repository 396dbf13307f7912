"""Per-message cost of running function_app.py in Azure's worker library (the local host's path since
issue 18) against the in-process call it replaced, same messages, same store, one run.

    python -m bench.bench_worker_path [--messages 2000] [--rounds 5]

in-process  the old local host: the host's trigger input decoded by azure.functions' converter in the
            caller's thread (the worker library's `from_incoming_proto`, no protobuf round trip through
            its handlers), then `process_order_step(msg, context)` called on a thread pool.
worker      the local host now: one FunctionRpc InvocationRequest per message to azure-functions-runtime
            (`invocation_request`: context, conversion, the library's thread pool, InvocationResponse).
Both build the same TypedData payload from the same received messages and commit to a fresh SQLite store;
each round processes one order (5 ordered steps) per customer over `--messages` messages. Rounds
alternate; the fastest round of each counts. Figures only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import machine

REPO = Path(__file__).resolve().parents[1]


def _received(count: int, run: str) -> list[Any]:
    """The publisher's messages (one 5-step order per customer) as the SDK would hand them over."""
    from devstack.host.invoke import received_message
    from orders_cli.traffic import PublishPlan, generate_messages

    plan = PublishPlan(customers=max(1, count // 5), orders_per_customer=1, seed=3, id_prefix=run)
    return [
        received_message(
            m.body,
            message_id=m.message_id,
            session_id=m.session_id,
            sequence_number=n,
            application_properties={b"source": b"bench"},
        )
        for n, m in enumerate(generate_messages(plan), start=1)
    ]


def _fresh_service(workdir: Path) -> None:
    from shared.order_workflow import ORDERS
    from shared.service import OrderService, reset_service
    from shared.settings import AppSettings
    from shared.store.sqlite import SqliteOrderStore

    store = SqliteOrderStore(workdir / f"{uuid.uuid4().hex}.db", codec=ORDERS)
    reset_service(OrderService(AppSettings(store_retry_seconds=0), store))


def _in_process(messages: list[Any], pool: concurrent.futures.ThreadPoolExecutor) -> float:
    import azure.functions as func
    from azure_functions_runtime.bindings import meta

    import function_app
    from devstack.host.payload import servicebus_invocation
    from devstack.host.rpc import protos

    meta.load_binding_registry()

    class Context:
        invocation_id = "bench"
        function_name = "process_order_step"
        function_directory = str(REPO)
        trace_context = None
        retry_context = None
        thread_local_storage = None

    started = time.perf_counter()
    for received in messages:
        trigger = servicebus_invocation(received, "binary")
        msg = meta.from_incoming_proto(
            "serviceBusTrigger",
            protos.ParameterBinding(name="msg", data=trigger.data),
            pytype=func.ServiceBusMessage,
            trigger_metadata=trigger.metadata,
            function_name="process_order_step",
        )
        pool.submit(function_app.process_order_step, msg, Context()).result()
    return time.perf_counter() - started


def _worker(messages: list[Any], worker: Any) -> float:
    from devstack.host.invoke import FunctionsWorker

    harness = FunctionsWorker(worker)
    started = time.perf_counter()
    for received in messages:
        harness.servicebus(received)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("orders").propagate = False  # the log line is formatted, not printed (both paths)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.update(
            {
                "FUNCTIONS_WORKER_RUNTIME": "python",
                "ServiceBusConnection": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=x;"
                "UseDevelopmentEmulator=true",
                "ORDERS_QUEUE_NAME": "bench",
                "OrderStoreConnection": f"sqlite:///{workdir / 'unused.db'}",
                "ORDERS_TRIGGER_CARDINALITY": "one",
            }
        )
        from devstack.host.worker import LanguageWorker

        worker = LanguageWorker(REPO)
        worker.start()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4))
        best = {"in-process": float("inf"), "worker": float("inf")}
        try:
            for r in range(args.rounds):
                for name in ("in-process", "worker"):
                    _fresh_service(workdir)
                    messages = _received(args.messages, f"r{r}{name[0]}")
                    took = _in_process(messages, pool) if name == "in-process" else _worker(messages, worker)
                    best[name] = min(best[name], took / len(messages))
        finally:
            pool.shutdown()
            worker.stop()
    print(machine())
    print(f"messages per round: {args.messages // 5 * 5}, rounds: {args.rounds} (fastest round counts)")
    for name, per in best.items():
        print(f"  {name:<11} {per * 1e6:8.0f} µs/message  {1 / per:8.0f} msg/s")
    print(
        f"  worker path costs {(best['worker'] - best['in-process']) * 1e6:.0f} µs more per message "
        f"({best['worker'] / best['in-process']:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
