"""`orders why` and the stuck flags of `orders status`: one order's story in time order, what it waits for,
the next command per problem, the same data as JSON, at 80 columns (a fake DLQ; the store is SQLite)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orders_cli import cli
from orders_cli import dlq as cli_dlq
from shared.dlq import DeadLetter
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.sqlite import SqliteOrderStore
from tests.support.builders import body

LONG_AGO = datetime.now(UTC) - timedelta(minutes=40)


@pytest.fixture(autouse=True)
def eighty_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    for name in ("OrderStoreConnection", "ServiceBusConnection", "ORDERS_STUCK_AFTER_MINUTES"):
        monkeypatch.delenv(name, raising=False)


class FakeDlq:
    queue = "orders-with-sessions"
    endpoint = "fake.servicebus"

    def __init__(self, letters: list[DeadLetter]) -> None:
        self.letters = letters

    def peek(self, from_sequence: int, max_count: int) -> list[DeadLetter]:
        return [m for m in self.letters if m.sequence_number >= from_sequence][:max_count]


def use_dlq(monkeypatch: pytest.MonkeyPatch, letters: list[DeadLetter]) -> None:
    @contextmanager
    def connect(_args: Any) -> Iterator[FakeDlq]:
        yield FakeDlq(letters)

    monkeypatch.setattr(cli_dlq, "connect", connect)


def dead_letter(number: int, raw: bytes, message_id: str, session: str = "cust-1") -> DeadLetter:
    return DeadLetter(
        sequence_number=number, message_id=message_id, session_id=session,
        reason="MaxDeliveryCountExceeded", description="Message could not be consumed after 10 attempts.",
        enqueued_time=LONG_AGO + timedelta(minutes=1), delivery_count=10, content_type="application/json",
        correlation_id=None, subject=None, application_properties={}, body=raw,
    )  # fmt: skip


def make_store(tmp_path: Path, sent: list[tuple[Any, ...]], *, at: datetime = LONG_AGO) -> str:
    """A SQLite store after `sent` (step, sequence, order[, data]) of customer cust-1, processed at `at`."""
    path = tmp_path / "orders.db"
    store = SqliteOrderStore(path, codec=ORDERS)
    processor = OrderStepProcessor(store, clock=lambda: at)
    for number, (step, seq, order, *data) in enumerate(sent, start=1):
        raw = body(step, seq, order=order, data=data[0] if data else None)
        processor.process(SessionEnvelope(raw, "cust-1", f"{order}:{seq}", sequence_number=number))
    store.close()
    return "sqlite:///orders.db"  # relative to tmp_path, the working directory: commands fit 80 columns


GAP = [("order.placed", 1, "ord-1"), ("inventory.reserved", 3, "ord-1"), ("order.shipped", 4, "ord-1"),
       ("order.delivered", 5, "ord-1")]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def fails(capsys: pytest.CaptureFixture[str], code: int, *argv: str) -> str:
    assert cli.main(list(argv)) == code
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("orders: error: "), err
    return err


def assert_80_columns(out: str) -> None:
    for line in out.splitlines():
        assert len(line.rstrip()) <= 80, f"wider than 80 columns: {line!r}"
    assert "…" not in out


def unwrapped(out: str) -> str:
    """Printed commands joined again (a ` \\` continuation is how they stay within 80 columns)."""
    return re.sub(r" \\\n\s+", " ", out)


def test_a_gap_older_than_the_threshold_is_stuck_with_what_is_missing_and_since_when(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path, GAP)
    use_dlq(monkeypatch, [])
    out = run(capsys, "why", "ord-1", "--store", store)
    assert_80_columns(out)
    # LONG_AGO is taken when the module is imported: under a loaded parallel run this test may start
    # minutes later, so "40 min ago" may read 41 or more.
    said = re.search(
        rf"stuck: sequence 2 missing since {LONG_AGO:%H:%M} UTC \((\d+) min ago\), "
        r"3 steps parked \(3, 4, 5\)",
        " ".join(out.split()),
    )
    assert said and 40 <= int(said.group(1)) < 60, out
    assert "never sent, or still waits in the queue" in " ".join(out.split())
    rows = [line.split()[:3] for line in out.splitlines() if re.match(r"\s+\d\d:\d\d:\d\d\s", line)]
    assert [r[1:] for r in rows] == [["applied", "1"], ["parked", "3"], ["parked", "4"], ["parked", "5"]]

    doc = json.loads(run(capsys, "why", "ord-1", "--store", store, "--json"))
    assert doc["customer_id"] == "cust-1" and doc["order_id"] == "ord-1" and doc["status"] == "PLACED"
    assert doc["waiting"]["waiting_for_sequence"] == 2 and doc["waiting"]["stuck"] is True
    assert doc["waiting"]["parked_sequences"] == [3, 4, 5]
    assert [(e["kind"], e["sequence"]) for e in doc["events"]] == [
        ("applied", 1), ("parked", 3), ("parked", 4), ("parked", 5)
    ]  # fmt: skip
    assert doc["dead_letter_queue"]["checked"] is True and doc["problems"][0]["command"] is None

    # a higher threshold: waiting, not stuck (flag and setting)
    assert (
        json.loads(run(capsys, "why", "ord-1", "--store", store, "--json", "--stuck-after", "60"))["waiting"][
            "stuck"
        ]
        is False
    )
    monkeypatch.setenv("ORDERS_STUCK_AFTER_MINUTES", "90")
    assert "waiting: sequence 2 missing" in run(capsys, "why", "ord-1", "--store", store)


def test_a_missing_step_that_was_quarantined_points_at_the_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_amount = {"payment_id": "pay-1", "amount": "1.01"}
    store = make_store(tmp_path, [*GAP, ("payment.authorized", 2, "ord-1", wrong_amount)])
    use_dlq(monkeypatch, [])
    out = run(capsys, "why", "ord-1", "--store", store)
    assert_80_columns(out)
    doc = json.loads(run(capsys, "why", "ord-1", "--store", store, "--json"))
    (record,) = [e for e in doc["events"] if e["kind"] == "quarantined"]
    assert record["sequence"] == 2 and record["reason"] == "rule-violation"
    assert doc["waiting"]["waiting_for_sequence"] == 2
    (problem,) = doc["problems"]  # one problem: the quarantined step is what the gap waits for
    assert "sequence 2 was quarantined (rule-violation)" in problem["problem"]
    assert problem["command"] == f"orders quarantine show {record['ref']} --store {store}"
    assert problem["command"] in unwrapped(out)


def test_a_missing_step_in_the_dlq_points_at_dlq_show(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path, GAP)
    use_dlq(
        monkeypatch,
        [
            dead_letter(7, body("payment.authorized", 2, order="ord-1"), "ord-1:2"),
            dead_letter(8, body("order.placed", 1, order="ord-other"), "ord-other:1"),
            dead_letter(9, b"not json", "ord-1:9"),
        ],
    )
    out = run(capsys, "why", "ord-1", "--store", store)
    assert_80_columns(out)
    flat = unwrapped(out)
    assert "sequence 2 is in the dead-letter queue (MaxDeliveryCountExceeded)" in " ".join(flat.split())
    assert "$ orders dlq show seq:7" in flat
    assert "$ orders dlq show seq:9" in flat  # an unreadable body is matched by its message id
    assert "seq:8" not in flat  # another order's
    assert "dead-letter queue of orders-with-sessions at fake.servicebus: 3 messages, 2 of this order" in (
        " ".join(out.split())
    )
    doc = json.loads(run(capsys, "why", "ord-1", "--store", store, "--json", "--queue", "q2"))
    assert [p["command"] for p in doc["problems"]] == [
        "orders dlq show seq:7 --queue q2",
        "orders dlq show seq:9 --queue q2",
    ]
    kinds = [(e["kind"], e["sequence"], e["ref"]) for e in doc["events"]]
    assert ("dead-lettered", 2, "seq:7") in kinds and ("dead-lettered", 9, "seq:9") in kinds


def test_quarantined_steps_get_the_show_command_with_the_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path, [("order.placed", 1, "ord-1"), ("order.delivered", 2, "ord-1")])
    use_dlq(monkeypatch, [])
    out = run(capsys, "why", "ord-1", "--store", store)
    assert_80_columns(out)
    doc = json.loads(run(capsys, "why", "ord-1", "--store", store, "--json"))
    (record,) = [e for e in doc["events"] if e["kind"] == "quarantined"]
    assert record["reason"] == "invalid-transition" and record["sequence"] == 2
    assert doc["problems"][0]["command"] == f"orders quarantine show {record['ref']} --store {store}"
    assert f"orders quarantine show {record['ref']} --store {store}" in unwrapped(out)
    assert doc["waiting"] is None


def test_without_a_broker_the_story_is_told_from_the_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = make_store(tmp_path, GAP)
    out = run(capsys, "why", "ord-1", "--store", store)  # no ServiceBusConnection anywhere
    assert_80_columns(out)
    flat = " ".join(out.split())
    assert "dead-letter queue not checked: no Service Bus connection" in flat
    assert "$ orders dlq list" in out


def test_unknown_order_names_the_store_and_ambiguous_order_asks_for_the_customer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path, GAP)
    use_dlq(monkeypatch, [dead_letter(3, body("order.placed", 1, customer="cust-2"), "ord-1:1", "cust-2")])
    err = fails(capsys, 1, "why", "ord-9", "--store", store)
    assert f"no order 'ord-9' in {store} or the dead-letter queue" in err
    err = fails(capsys, 2, "why", "ord-1", "--store", store)
    assert "order ord-1 exists for customers cust-1, cust-2: add --customer C" in err
    assert (
        json.loads(run(capsys, "why", "ord-1", "--customer", "cust-2", "--store", store, "--json"))["events"][
            0
        ]["kind"]
        == "dead-lettered"
    )
    fails(capsys, 2, "why", "ord 1", "--store", store)
    fails(capsys, 2, "why", "ord-1", "--store", store, "--stuck-after", "0")
    monkeypatch.setenv("ORDERS_STUCK_AFTER_MINUTES", "soon")
    assert "ORDERS_STUCK_AFTER_MINUTES must be a whole number of minutes" in fails(
        capsys, 2, "why", "ord-1", "--store", store
    )


def test_status_flags_stuck_orders_and_prints_the_why_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = make_store(tmp_path, [*GAP, ("order.placed", 1, "ord-2"), ("order.shipped", 4, "ord-2")])
    path = tmp_path / "orders.db"
    fresh = SqliteOrderStore(path, codec=ORDERS)  # ord-3 parked just now: waiting, not stuck
    processor = OrderStepProcessor(fresh)
    for seq, step in ((1, "order.placed"), (3, "inventory.reserved")):
        processor.process(
            SessionEnvelope(
                body(step, seq, order="ord-3"), "cust-1", f"ord-3:{seq}", sequence_number=90 + seq
            )
        )
    fresh.close()
    doc = json.loads(run(capsys, "status", "--store", store, "--json"))
    waiting = {w["stream_key"]: w for w in doc["stuck"]["waiting"]}
    assert set(waiting) == {"ord-1", "ord-2", "ord-3"} and doc["stuck"]["stuck"] == 2
    assert waiting["ord-1"]["stuck"] and waiting["ord-2"]["stuck"] and not waiting["ord-3"]["stuck"]
    assert waiting["ord-2"]["waiting_for_sequence"] == 2 and waiting["ord-2"]["parked_sequences"] == [4]
    assert doc["stuck"]["stuck_after_minutes"] == 15
    out = run(capsys, "status", "--store", store)
    assert_80_columns(out)
    stuck_rows = [line.split()[1] for line in out.splitlines() if line.rstrip().endswith("STUCK")]
    assert sorted(stuck_rows) == ["ord-1", "ord-2"]
    assert f"orders why ord-1 --customer cust-1 --store {store}" in unwrapped(out)
    assert (
        json.loads(run(capsys, "status", "--store", store, "--json", "--stuck-after", "120"))["stuck"][
            "stuck"
        ]
        == 0
    )
