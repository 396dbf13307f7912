"""The Table store (Azurite) goes away for seconds mid-run and comes back: every message is retried
(inside the invocation for ORDERS_STORE_RETRY_SECONDS, then by redelivery) until it lands, nothing is
lost or applied twice.

The broker is simulated in-process the way Service Bus sessions behave for the host: per session, the
head message is delivered; a TransientStoreError from the service abandons it (it stays at the head,
delivery_count + 1, after the host's back-off); success completes it. A message whose delivery count
passes MaxDeliveryCount would be dead-lettered: here that counts as a failure.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import pytest

from devstack.azurite import unique_table_name
from orders_cli.traffic import build_workload, check_applied
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store.base import TransientStoreError
from shared.store.table import TableOrderStore

pytestmark = [pytest.mark.azurite, pytest.mark.timeout(180)]

MESSAGES, SESSIONS, OUTAGE_S, BACKOFF_S, MAX_DELIVERY = 150, 6, 3.0, 0.5, 10


def _redelivered(env: SessionEnvelope) -> SessionEnvelope:
    return SessionEnvelope(
        env.body, env.session_id, env.message_id, env.delivery_count + 1, env.sequence_number
    )


@pytest.mark.parametrize("batch_size", [1, 8], ids=["one", "many"])
def test_table_outage_mid_run_loses_nothing_and_applies_nothing_twice(azurite: Any, batch_size: int) -> None:
    """batch_size 1: the single-message path (handle); 8: batches of a session's head messages
    (handle_batch), abandoned and redelivered together, as the host does with cardinality=many."""
    workload = build_workload(MESSAGES, SESSIONS, duplicate_rate=0.05, shuffle=True, seed=5)
    store = TableOrderStore.from_connection_string(
        azurite.connection_string,
        unique_table_name("outage"),
        client_options={"connection_timeout": 2},
        codec=ORDERS,
    )
    # A 1 s in-invocation retry budget, shorter than the outage: this test is about what happens after it,
    # the redeliveries (test_store_outage_host.py runs the default budget under the real host).
    service = OrderService(AppSettings(max_delivery_count=MAX_DELIVERY, store_retry_seconds=1.0), store)
    sessions: dict[str, deque[SessionEnvelope]] = {}
    for env in workload.messages:
        sessions.setdefault(env.session_id, deque()).append(env)

    completed, failures, dead_lettered, max_delivery = 0, 0, 0, 1
    outage = {"down_at": 0.0, "up_at": 0.0}

    def outage_thread() -> None:
        while completed < MESSAGES // 3:
            time.sleep(0.01)
        outage["down_at"] = time.monotonic()
        azurite.stop()
        time.sleep(OUTAGE_S)
        azurite.start()
        outage["up_at"] = time.monotonic()

    chaos = threading.Thread(target=outage_thread, daemon=True)
    chaos.start()
    deadline = time.monotonic() + 150
    try:
        while any(sessions.values()) and time.monotonic() < deadline:
            failed_round = False
            for queue in sessions.values():  # one delivery per session per round, like concurrent receivers
                if not queue:
                    continue
                batch = [queue[i] for i in range(min(batch_size, len(queue)))]
                try:
                    if batch_size == 1:
                        service.handle(batch[0])
                    else:
                        service.handle_batch(batch)
                except TransientStoreError:
                    failures += 1
                    failed_round = True
                    for i, env in enumerate(batch):
                        queue[i] = _redelivered(env)
                        max_delivery = max(max_delivery, queue[i].delivery_count)
                    while queue and queue[0].delivery_count > MAX_DELIVERY:
                        dead_lettered += 1
                        queue.popleft()
                    continue
                for _ in batch:
                    queue.popleft()
                completed += len(batch)
            if failed_round:
                time.sleep(BACKOFF_S)
        chaos.join(timeout=60)
    finally:
        if not azurite.running:
            azurite.start()

    print(
        f"outage {outage['up_at'] - outage['down_at']:.1f} s; transient failures {failures};"
        f" highest delivery count {max_delivery}; completed {completed}/{MESSAGES}"
    )
    assert outage["down_at"] and outage["up_at"], "the outage never happened"
    assert failures > 0, "no message met the outage: the test proved nothing"
    assert dead_lettered == 0 and completed == MESSAGES
    assert check_applied(store.list_ledgers(), workload) == []
    applied_steps = sum(len(steps) for steps in workload.expected.values())
    assert store.count_idempotency_records() == applied_steps
    assert store.list_parked() == [] and store.list_quarantine() == []
    store.close()
