"""End to end: publisher -> embedded Service Bus emulator (real AMQP, real SDK) -> local Functions host
(function_app.py's own trigger) -> SQLite store. Nothing is mocked between the publisher and the store.

The host runs with sessionIdleTimeout lowered to 0.5 s (host.json says 5 s) so each run takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.host import LocalHost
from orders_cli.traffic import (
    OutgoingMessage,
    PublishPlan,
    expected_final_state,
    expected_outcomes,
    generate_messages,
)
from shared.order_workflow import ORDERS
from shared.service import MESSAGE_LOG_FIELDS, OrderService, reset_service
from shared.settings import AppSettings
from shared.store.base import StoreUnavailable
from shared.store.sqlite import SqliteOrderStore
from tests.support.e2e import publish
from tests.support.modes import MODES, trigger_cardinality

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_HOST = {"sessionIdleTimeout": "00:00:00.5"}
IDLE_S = 1.0
CANARY = "CANARY-e2e-5d1b7c"
REQUIRED_LOG_FIELDS = MESSAGE_LOG_FIELDS


def _orders_queue(fresh_queue: Any) -> str:
    # The shipped queue's properties (sessions, duplicate detection, MaxDeliveryCount 10), fresh per test.
    return fresh_queue(
        requires_session=True,
        requires_duplicate_detection=True,
        max_delivery_count=10,
        lock_duration="PT30S",
    )


def _settings(emulator: Any, queue: str, db: Path) -> dict[str, str]:
    return {
        "ServiceBusConnection": emulator.connection_string,
        "ORDERS_QUEUE_NAME": queue,
        "OrderStoreConnection": f"sqlite:///{db}",
        "ORDERS_MAX_DELIVERY_COUNT": "10",
    }


def _run_host(settings: dict[str, str], tmp_path: Path) -> LocalHost:
    host = LocalHost(
        REPO_ROOT,
        settings_path=tmp_path / "no-local.settings.json",  # only the overrides + environment
        settings_overrides=settings,
        host_json_overrides=FAST_HOST,
    )
    host.run_until_idle(IDLE_S, timeout=90)
    return host


def _outcome_records(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.name == "orders.processing" and hasattr(r, "outcome")]


@pytest.fixture(autouse=True)
def _fresh_service() -> Any:
    reset_service()  # the app builds its service (and store) once per worker: one per test here
    yield
    reset_service()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The trigger mode (ORDERS_TRIGGER_CARDINALITY) function_app is imported with; the settings to pass."""
    with trigger_cardinality(request.param) as setting:
        yield setting


def test_orders_flow_through_emulator_host_and_store(
    servicebus_emulator: Any,
    fresh_queue: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mode: dict[str, str],
) -> None:
    caplog.set_level("INFO", logger="orders.processing")
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    plan = PublishPlan(customers=20, orders_per_customer=3, duplicates=0.1, shuffle=True, poison=8, seed=11)
    messages = generate_messages(plan)
    publish(servicebus_emulator, queue, messages)

    host = _run_host(_settings(servicebus_emulator, queue, db) | mode, tmp_path)

    # the broker side: every message settled, nothing left, nothing dead-lettered
    assert servicebus_emulator.active_count(queue) == 0
    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert host.counters.completed == len(messages)
    assert host.counters.abandoned == 0

    store = SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS)
    try:
        ledgers = {(x.order.customer_id, x.order.order_id): x for x in store.list_ledgers()}
        expected = expected_final_state(messages)
        assert expected, "the plan produced no orders"
        for key, steps in expected.items():
            ledger = ledgers.get(key)
            assert ledger is not None, f"order {key} never reached the store"
            assert [a.step for a in ledger.applied] == steps, key
            assert [a.sequence for a in ledger.applied] == list(range(1, len(steps) + 1)), key
            assert not ledger.parked, f"order {key} still waits for a step"

        # every poison message quarantined with the reason the publisher expects
        poison = {m.message_id: m.expected_reason for m in messages if m.expected_outcome == "quarantined"}
        quarantine = {q.message_id: q.reason for q in store.list_quarantine()}
        assert quarantine == poison
    finally:
        store.close()

    # nothing lost: every published message has exactly one final outcome, the one expected
    final: dict[str, str] = {}
    for record in _outcome_records(caplog):
        if record.outcome != "retry":
            final.setdefault(
                record.message_id, record.outcome + (f":{record.reason}" if record.reason else "")
            )
    assert set(final) == {m.message_id for m in messages}
    assert dict(sorted(Counter(final.values()).items())) == expected_outcomes(messages)


class _FlakyStore:
    """The real SQLite store, whose first `failures` commits fail the way an outage does."""

    def __init__(self, inner: SqliteOrderStore, failures: int) -> None:
        self._inner = inner
        self.failures_left = failures
        self.commits = 0

    def commit(self, changes: Any) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise StoreUnavailable("simulated outage")
        self.commits += 1
        self._inner.commit(changes)

    def commit_batch(self, session_id: str, units: Any) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise StoreUnavailable("simulated outage")
        self.commits += 1
        self._inner.commit_batch(session_id, units)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_transient_store_failure_is_abandoned_redelivered_and_applied_once(
    servicebus_emulator: Any,
    fresh_queue: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mode: dict[str, str],
) -> None:
    caplog.set_level("INFO", logger="orders.processing")
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    settings = _settings(servicebus_emulator, queue, db) | mode
    flaky = _FlakyStore(SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS), failures=1)
    # no in-invocation retry: this test is about the abandon/redeliver path (see test_store_outage_host)
    no_retry = {**settings, "ORDERS_STORE_RETRY_SECONDS": "0"}
    reset_service(OrderService(AppSettings.from_values(no_retry), flaky))

    messages = generate_messages(PublishPlan(customers=1, orders_per_customer=1, seed=5))
    publish(servicebus_emulator, queue, messages)
    host = _run_host(settings, tmp_path)

    first = messages[0].message_id
    seen = [(r.outcome, r.delivery_count) for r in _outcome_records(caplog) if r.message_id == first]
    assert seen == [("retry", 1), ("applied", 2)]
    assert host.counters.completed == len(messages)
    if mode["ORDERS_TRIGGER_CARDINALITY"] == "one":
        assert host.counters.abandoned == 1
        assert flaky.commits == len(messages)  # each message committed exactly once
    else:  # the whole first batch was abandoned and redelivered; one commit per batch
        batch = [r for r in _outcome_records(caplog) if r.outcome == "retry"]
        assert host.counters.abandoned == len(batch) >= 1
        assert {r.delivery_count for r in batch} == {1}
        assert flaky.commits < len(messages)
    assert servicebus_emulator.active_count(queue) == 0
    assert servicebus_emulator.dead_letter_count(queue) == 0

    store = SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS)
    try:
        (ledger,) = store.list_ledgers()
        ((_, steps),) = expected_final_state(messages).items()
        assert [a.step for a in ledger.applied] == steps
        assert [a.message_id for a in ledger.applied].count(first) == 1
    finally:
        store.close()


def _with_canary(messages: list[OutgoingMessage]) -> list[OutgoingMessage]:
    """Plant the canary in every step body (as extra step data, which the contract allows) and in a
    malformed body, which is quarantined whole."""
    from dataclasses import replace

    out = []
    for m in messages:
        if m.kind == "step":
            doc = json.loads(m.body)
            doc["data"] = {**doc.get("data", {}), "note": CANARY}
            m = replace(m, body=json.dumps(doc).encode())
        out.append(m)
    first = out[0]
    bad = replace(
        first, message_id="poison-canary-bad", body=f'{{"schema": "{CANARY}'.encode(), kind="poison"
    )
    return [*out, bad]


def test_host_cli_logs_json_lines_with_required_fields_and_no_body_content(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path
) -> None:
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    messages = _with_canary(generate_messages(PublishPlan(customers=2, orders_per_customer=1, seed=3)))
    publish(servicebus_emulator, queue, messages)
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(
        json.dumps({"IsEncrypted": False, "Values": _settings(servicebus_emulator, queue, db)})
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ServiceBusConnection", "OrderStoreConnection")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.host",
            "--app-dir",
            str(REPO_ROOT),
            "--settings",
            str(settings_file),
            "--until-idle",
            str(IDLE_S),
            "--session-idle-timeout",
            "0.5",
            "--log-format",
            "json",
            "--port",
            "0",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert CANARY not in output

    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]  # every line is JSON
    steps = [x for x in lines if x["logger"] == "orders.processing" and "outcome" in (x.get("extra") or {})]
    assert {x["extra"]["message_id"] for x in steps} == {m.message_id for m in messages}
    for line in steps:
        missing = [f for f in REQUIRED_LOG_FIELDS if f not in line["extra"]]
        assert not missing, (missing, line)
        assert line["invocation_id"] and line["function_name"] == "process_order_step"
    host_lines = {x["message"] for x in lines if x["logger"] == "devstack.host"}
    assert {"local host started", "session acquired", "session released", "local host stopped"} <= host_lines
    assert servicebus_emulator.active_count(queue) == 0


class _LostAckStore(_FlakyStore):
    """Its first batch commit is written, then fails: the host died after the commit, before settling."""

    def commit_batch(self, session_id: str, units: Any) -> None:
        self._inner.commit_batch(session_id, units)
        self.commits += 1
        if self.failures_left > 0:
            self.failures_left -= 1
            raise StoreUnavailable("simulated crash after the commit")


def test_a_batch_committed_but_never_settled_comes_back_as_duplicates(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="orders.processing")
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    with trigger_cardinality("many") as mode:
        settings = _settings(servicebus_emulator, queue, db) | mode | {"ORDERS_STORE_RETRY_SECONDS": "0"}
        store = _LostAckStore(SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS), failures=1)
        reset_service(OrderService(AppSettings.from_values(settings), store))
        messages = generate_messages(PublishPlan(customers=1, orders_per_customer=2, seed=9))
        publish(servicebus_emulator, queue, messages)
        host = _run_host(settings, tmp_path)

    first_batch = [r for r in _outcome_records(caplog) if r.outcome == "retry"]
    assert first_batch and host.counters.abandoned == len(first_batch)
    again = {r.message_id: r.outcome for r in _outcome_records(caplog) if r.delivery_count == 2}
    assert set(again) == {r.message_id for r in first_batch}
    assert set(again.values()) == {"duplicate"}  # its effects were already stored: nothing applied twice
    assert servicebus_emulator.active_count(queue) == 0
    assert servicebus_emulator.dead_letter_count(queue) == 0
    reader = SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS)
    try:
        applied = {(x.customer_id, x.order_id): [a.step for a in x.applied] for x in reader.list_ledgers()}
        assert applied == expected_final_state(messages)
    finally:
        reader.close()
