"""End to end: a DLQ filled the ways Service Bus fills it (MaxDeliveryCount exhausted; dead-lettered with a
reason) is drained by `orders dlq resubmit` back into applied orders, real SDK against the emulator, the
local host, SQLite. Nothing is lost, nothing applied twice, and running resubmit again changes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from orders_cli import traffic
from orders_cli.cli import main as orders
from orders_cli.deadletters import ServiceBusDeadLetters
from orders_cli.sender import send_messages
from orders_cli.traffic import PublishPlan, expected_final_state, generate_messages
from shared.dlq import RESUBMITTED_FROM, peek_all, resubmit, resubmit_id
from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore
from tests.e2e.test_end_to_end import _orders_queue, _run_host, _settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

APP_REASON = "OperatorParked"  # a reason an application (or Service Bus Explorer user) gives


def _drain_session(
    connection: str, queue: str, session: str, *, exhaust: bool = False, pick: Any = lambda _m: True
) -> list[str]:
    """Dead-letter the session's messages chosen by `pick`: by abandoning each until MaxDeliveryCount
    moves it (exhaust=True), or explicitly with APP_REASON. The others stay in the queue."""
    dead: list[str] = []
    with ServiceBusClient.from_connection_string(connection) as client:
        receiver = client.get_queue_receiver(queue, session_id=session, max_wait_time=1, prefetch_count=0)
        with receiver:
            keep: list[Any] = []
            while True:
                got = receiver.receive_messages(max_message_count=1)
                if not got:
                    break
                m = got[0]
                if not pick(m):
                    keep.append(m)  # held locked so the loop moves on; released at the end
                elif exhaust:
                    receiver.abandon_message(m)  # delivered again until the broker dead-letters it
                    if (m.delivery_count or 0) + 1 >= 10:
                        dead.append(str(m.message_id))
                else:
                    receiver.dead_letter_message(m, reason=APP_REASON, error_description="held back by test")
                    dead.append(str(m.message_id))
            for m in keep:
                receiver.abandon_message(m)
    return dead


def _cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code = orders(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _ledgers(db: Path) -> dict[tuple[str, str], Any]:
    store = SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS)
    try:
        assert store.list_quarantine() == []
        return {(x.order.customer_id, x.order.order_id): x for x in store.list_ledgers()}
    finally:
        store.close()


def test_resubmit_drains_the_dlq_into_applied_orders_and_a_rerun_is_harmless(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = servicebus_emulator.connection_string
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    settings = _settings(servicebus_emulator, queue, db)
    plan = PublishPlan(customers=3, orders_per_customer=2, duplicates=0.3, seed=21, id_prefix="dlq")
    messages = generate_messages(plan)
    send_messages(messages, connection_string=conn, namespace=None, queue=queue, progress=False)
    c1, c2, c3 = (traffic.customer_id(plan, n) for n in (1, 2, 3))

    # customer 1: every message burns its 10 deliveries (MaxDeliveryCountExceeded);
    # customer 2: each order's step 2 and every resent duplicate are dead-lettered with a reason, so its
    # later steps arrive first and wait parked; customer 3 is left alone.
    dead_1 = _drain_session(conn, queue, c1, exhaust=True)
    dead_2 = _drain_session(conn, queue, c2, pick=lambda m: str(m.message_id).endswith((":2", ":dup-1")))
    assert len(dead_1) == sum(m.session_id == c1 for m in messages)
    assert any(i.endswith(":dup-1") for i in dead_2) and any(i.endswith(":2") for i in dead_2)
    dead = len(dead_1) + len(dead_2)
    assert servicebus_emulator.dead_letter_count(queue) == dead

    _run_host(settings, tmp_path)
    ledgers = _ledgers(db)
    expected = expected_final_state(messages)
    assert {k for k in ledgers if k[0] == c1} == set()  # nothing of customer 1 arrived
    stalled = [k for k in expected if k[0] == c2]
    assert all(ledgers[k].last_sequence == 1 and ledgers[k].parked for k in stalled)  # waits for step 2
    assert all([a.step for a in ledgers[k].applied] == expected[k] for k in expected if k[0] == c3)

    target = ["--queue", queue, "--connection", conn]
    listed = _cli_json(["dlq", "list", "--json", *target], capsys)
    assert listed["total"] == dead
    assert listed["by_reason"] == {"MaxDeliveryCountExceeded": len(dead_1), APP_REASON: len(dead_2)}

    dry = _cli_json(["dlq", "resubmit", "--all", "--dry-run", "--json", *target], capsys)
    assert dry["counts"] == {"would-resubmit": dead}
    assert servicebus_emulator.dead_letter_count(queue) == dead  # --dry-run sends and removes nothing
    assert servicebus_emulator.active_count(queue) == 0

    done = _cli_json(["dlq", "resubmit", "--all", "--json", *target], capsys)
    assert done["counts"] == {"resubmitted": dead}
    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert servicebus_emulator.active_count(queue) == dead  # none dropped as a duplicate

    _run_host(settings, tmp_path)
    ledgers = _ledgers(db)
    assert set(ledgers) == set(expected)  # 0 lost
    for key, steps in expected.items():  # each step applied once, in order, nothing left parked
        assert [a.step for a in ledgers[key].applied] == steps, key
        assert [a.sequence for a in ledgers[key].applied] == list(range(1, len(steps) + 1)), key
        assert not ledgers[key].parked, key
    assert servicebus_emulator.counts(queue)["total"] == 0
    assert servicebus_emulator.dead_letter_count(queue) == 0

    again = _cli_json(["dlq", "resubmit", "--all", "--json", *target], capsys)
    assert again["selected"] == 0 and servicebus_emulator.active_count(queue) == 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Crash(BaseException):
    """The operator's process dies (not an Exception: nothing may swallow it)."""


def test_crash_between_send_and_complete_the_rerun_is_dropped_then_completed(
    servicebus_emulator: Any, fresh_queue: Any
) -> None:
    conn = servicebus_emulator.connection_string
    queue = _orders_queue(fresh_queue)
    with ServiceBusClient.from_connection_string(conn) as client, client.get_queue_sender(queue) as sender:
        sender.send_messages(
            [
                ServiceBusMessage(
                    f'{{"n": {n}}}'.encode(),
                    session_id="cust-crash",
                    message_id=f"m-{n}",
                    content_type="application/json",
                    correlation_id=f"c-{n}",
                    application_properties={"kind": "step"},
                )
                for n in range(3)
            ]
        )
    assert len(_drain_session(conn, queue, "cust-crash")) == 3

    with ServiceBusDeadLetters(ServiceBusClient.from_connection_string(conn), queue) as dlq:
        letters = peek_all(dlq)

        def complete_then_die(letter: Any) -> None:
            raise Crash()

        dlq.complete = complete_then_die  # type: ignore[method-assign]
        with pytest.raises(Crash):
            resubmit(dlq, dlq.send, letters)
    assert servicebus_emulator.active_count(queue) == 3  # all sent ...
    assert servicebus_emulator.dead_letter_count(queue) == 3  # ... none completed
    servicebus_emulator.expire_locks(f"{queue}/$DeadLetterQueue")

    with ServiceBusDeadLetters(ServiceBusClient.from_connection_string(conn), queue) as dlq:
        report = resubmit(dlq, dlq.send, peek_all(dlq))
    assert report.counts() == {"resubmitted": 3}
    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert servicebus_emulator.active_count(queue) == 3  # the second sends were dropped as duplicates

    with (
        ServiceBusClient.from_connection_string(conn) as client,
        client.get_queue_receiver(queue, session_id="cust-crash", max_wait_time=1) as receiver,
    ):
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            for m in receiver.receive_messages(max_message_count=3):
                got.append(m)
                receiver.complete_message(m)
    assert [m.message_id for m in got] == [resubmit_id(x) for x in letters]
    assert [b"".join(m.body) for m in got] == [f'{{"n": {n}}}'.encode() for n in range(3)]
    assert [m.correlation_id for m in got] == ["c-0", "c-1", "c-2"]
    assert [m.content_type for m in got] == ["application/json"] * 3
    props = [{_text(k): _text(v) for k, v in (m.application_properties or {}).items()} for m in got]
    assert [p[RESUBMITTED_FROM] for p in props] == ["m-0", "m-1", "m-2"]
    assert all(p["kind"] == "step" and "DeadLetterReason" not in p for p in props)
