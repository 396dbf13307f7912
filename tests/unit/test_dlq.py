"""The DLQ use cases (shared/dlq.py) and `orders dlq` (orders_cli/dlq.py) against an in-memory broker
that keeps the two properties resubmit relies on: peek-lock on the DLQ and duplicate detection on the
queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from orders_cli import dlq as cli_dlq
from orders_cli.cli import main as orders
from shared.dlq import (
    RESUBMITTED_FROM,
    RESUBMITTED_REASON,
    DeadLetter,
    DlqError,
    Resubmission,
    count_by_reason,
    find,
    peek_all,
    resubmission,
    resubmit,
    resubmit_id,
    select,
)


def letter(seq: int, message_id: str | None = None, **changes: Any) -> DeadLetter:
    base = DeadLetter(
        sequence_number=seq,
        message_id=f"ord-{seq}:1" if message_id is None else message_id,
        session_id=f"cust-{seq % 3}",
        reason="MaxDeliveryCountExceeded",
        description="Message could not be consumed after 10 delivery attempts.",
        enqueued_time=datetime(2026, 1, 1, tzinfo=UTC),
        delivery_count=10,
        content_type="application/json",
        correlation_id=f"corr-{seq}",
        subject="order-step",
        application_properties={"generator": "test", "n": seq},
        body=f'{{"seq": {seq}}}'.encode(),
    )
    return replace(base, **changes)


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the use case may swallow it)."""


class FakeBus:
    """A queue with duplicate detection and its DLQ with peek-lock."""

    def __init__(self, letters: Sequence[DeadLetter], *, queue: str = "orders") -> None:
        self.queue = queue
        self.endpoint = "fake.servicebus"
        self.dlq: dict[int, DeadLetter] = {m.sequence_number: m for m in letters}
        self.locked: set[int] = set()
        self.sent: list[Resubmission] = []  # enqueued in the queue
        self.dropped: list[Resubmission] = []  # dropped by duplicate detection
        self.ids_seen: set[str] = set()
        self.fail_send: Exception | None = None
        self.crash_on_complete = 0  # complete number N (1-based) crashes the process
        self.fail_complete: Exception | None = None
        self.completes = 0
        self.abandoned: list[int] = []

    def peek(self, from_sequence: int, max_count: int) -> list[DeadLetter]:
        return [self.dlq[s] for s in sorted(self.dlq) if s >= from_sequence][:max_count]

    def receive(self, max_count: int) -> list[DeadLetter]:
        free = [s for s in sorted(self.dlq) if s not in self.locked][:max_count]
        self.locked.update(free)
        return [self.dlq[s] for s in free]

    def complete(self, m: DeadLetter) -> None:
        assert m.sequence_number in self.locked, "complete without a lock"
        self.completes += 1
        if self.completes == self.crash_on_complete:
            raise Crash()
        if self.fail_complete is not None:
            raise self.fail_complete
        self.locked.discard(m.sequence_number)
        del self.dlq[m.sequence_number]

    def abandon(self, m: DeadLetter) -> None:
        self.abandoned.append(m.sequence_number)
        self.locked.discard(m.sequence_number)

    def send(self, messages: Sequence[Resubmission]) -> None:
        if self.fail_send is not None:
            raise self.fail_send
        for m in messages:
            if m.message_id in self.ids_seen:
                self.dropped.append(m)
            else:
                self.ids_seen.add(m.message_id)
                self.sent.append(m)

    def expire_locks(self) -> None:
        self.locked.clear()


def run(bus: FakeBus, selected: Sequence[DeadLetter] | None = None, **kw: Any) -> Any:
    return resubmit(bus, bus.send, list(bus.dlq.values()) if selected is None else selected, **kw)


# --------------------------------------------------------------------------------------------------
# ids and messages


def test_resubmit_id_is_deterministic_new_and_distinct_per_dlq_copy() -> None:
    a = letter(7, "ord-1:2")
    assert resubmit_id(a) == resubmit_id(replace(a, body=b"other", delivery_count=1))
    assert resubmit_id(a) != a.message_id
    assert uuid.UUID(resubmit_id(a)).version == 5
    assert resubmit_id(a) != resubmit_id(replace(a, sequence_number=8))  # same id, another copy
    assert resubmit_id(a) != resubmit_id(replace(a, message_id="ord-1:3"))
    # a resubmitted message that is dead-lettered again gets yet another id
    again = replace(a, message_id=resubmit_id(a), sequence_number=90)
    assert resubmit_id(again) not in (resubmit_id(a), a.message_id)


def test_resubmission_keeps_content_and_metadata_drops_dead_letter_properties() -> None:
    m = letter(
        4,
        application_properties={"generator": "t", "n": 4},
        reason="TTLExpiredException",
    )
    out = resubmission(m)
    assert out.message_id == resubmit_id(m)
    assert (out.session_id, out.body, out.content_type, out.correlation_id, out.subject) == (
        m.session_id,
        m.body,
        "application/json",
        "corr-4",
        "order-step",
    )
    assert out.application_properties == {
        "generator": "t",
        "n": 4,
        RESUBMITTED_FROM: "ord-4:1",
        RESUBMITTED_REASON: "TTLExpiredException",
    }


# --------------------------------------------------------------------------------------------------
# resubmit


def test_resubmit_all_sends_each_once_then_completes_it() -> None:
    letters = [letter(s) for s in (3, 5, 9)]
    bus = FakeBus(letters)
    ticks: list[int] = []
    report = run(bus, progress=ticks.append, batch_size=2)
    assert report.ok and report.counts() == {"resubmitted": 3}
    assert [m.message_id for m in bus.sent] == [resubmit_id(m) for m in letters]  # DLQ order kept
    assert [m.application_properties[RESUBMITTED_FROM] for m in bus.sent] == ["ord-3:1", "ord-5:1", "ord-9:1"]
    assert bus.dlq == {} and bus.locked == set()
    assert sum(ticks) == 3


def test_repeated_resubmit_is_harmless() -> None:
    bus = FakeBus([letter(1), letter(2)])
    run(bus)
    report = run(bus)  # the DLQ is empty now: nothing selected, nothing sent
    assert report.items == [] and len(bus.sent) == 2 and bus.dropped == []


def test_crash_between_send_and_complete_rerun_is_dropped_as_duplicate_then_completed() -> None:
    letters = [letter(s) for s in (1, 2, 3)]
    bus = FakeBus(letters)
    bus.crash_on_complete = 2  # the first copy is completed, the process dies completing the second
    with pytest.raises(Crash):
        run(bus)
    assert [m.message_id for m in bus.sent] == [resubmit_id(m) for m in letters]  # all three were sent
    assert sorted(bus.dlq) == [2, 3]  # two DLQ copies remain, locked until their locks expire
    bus.expire_locks()

    report = run(bus, list(bus.dlq.values()))
    assert report.counts() == {"resubmitted": 2}
    assert [m.message_id for m in bus.dropped] == [resubmit_id(letters[1]), resubmit_id(letters[2])]
    assert len(bus.sent) == 3  # each message reached the queue exactly once
    assert bus.dlq == {}


def test_failed_complete_is_reported_and_the_next_run_finishes_it() -> None:
    bus = FakeBus([letter(1)])
    bus.fail_complete = RuntimeError("lock lost")
    report = run(bus)
    [item] = report.items
    assert not report.ok and item.status == "failed" and "run resubmit again" in (item.detail or "")
    bus.fail_complete = None
    bus.expire_locks()
    assert run(bus).counts() == {"resubmitted": 1}
    assert len(bus.sent) == 1 and len(bus.dropped) == 1 and bus.dlq == {}


def test_send_failure_leaves_the_messages_in_the_dlq_unlocked() -> None:
    bus = FakeBus([letter(s) for s in (1, 2, 3, 4)])
    bus.fail_send = ConnectionError("network down")
    report = run(bus, batch_size=2)
    assert not report.ok
    assert [i.status for i in report.items] == ["failed"] * 4
    assert "ConnectionError: network down" in (report.items[0].detail or "")
    assert "stopped" in (report.items[3].detail or "")
    assert sorted(bus.dlq) == [1, 2, 3, 4] and bus.locked == set() and bus.sent == []


def test_only_selected_messages_leave_the_dlq_others_are_abandoned() -> None:
    letters = [
        letter(1),
        letter(2, reason="TTLExpiredException"),
        letter(3),
        letter(4, reason="TTLExpiredException"),
    ]
    bus = FakeBus(letters)
    chosen, missing = select(letters, reason="TTLExpiredException", everything=False)
    report = run(bus, chosen)
    assert missing == [] and report.counts() == {"resubmitted": 2}
    assert sorted(bus.dlq) == [1, 3] and bus.locked == set() and 1 in bus.abandoned
    assert {m.application_properties[RESUBMITTED_REASON] for m in bus.sent} == {"TTLExpiredException"}


def test_dry_run_sends_and_settles_nothing() -> None:
    bus = FakeBus([letter(1), letter(2, session_id=None)])
    report = run(bus, dry_run=True)
    assert [i.status for i in report.items] == ["would-resubmit", "skipped"]
    assert bus.sent == [] and bus.completes == 0 and sorted(bus.dlq) == [1, 2] and bus.locked == set()


def test_messages_that_cannot_be_resent_are_skipped_and_stay() -> None:
    bus = FakeBus([letter(1, session_id=None), letter(2, body=None), letter(3)])
    report = run(bus)
    assert [(i.sequence_number, i.status) for i in report.items] == [
        (1, "skipped"),
        (2, "skipped"),
        (3, "resubmitted"),
    ]
    assert "session id" in (report.items[0].detail or "")
    assert sorted(bus.dlq) == [1, 2] and bus.locked == set()


def test_selected_message_gone_meanwhile_is_not_found() -> None:
    a, b = letter(1), letter(2)
    bus = FakeBus([a])  # b was peeked, then someone else removed it
    report = run(bus, [a, b])
    assert [(i.sequence_number, i.status) for i in report.items] == [(1, "resubmitted"), (2, "not-found")]
    assert not report.ok


def test_select_by_ids_and_sequence_numbers() -> None:
    letters = [letter(1, "m-a"), letter(2, "m-b"), letter(3, "m-a")]
    chosen, missing = select(letters, refs=["m-a", "seq:2", "nope", "seq:99"], everything=False)
    assert [m.sequence_number for m in chosen] == [1, 2, 3] and missing == ["nope", "seq:99"]
    assert [m.sequence_number for m in find(letters, "seq:3")] == [3]
    with pytest.raises(DlqError):
        select(letters, refs=["m-a"], everything=True)
    with pytest.raises(DlqError):
        select(letters, everything=False)


def test_peek_all_pages_through_the_whole_dlq() -> None:
    bus = FakeBus([letter(s) for s in range(1, 601)])
    assert [m.sequence_number for m in peek_all(bus, page=7)] == list(range(1, 601))
    assert bus.locked == set()


def test_count_by_reason_most_frequent_first() -> None:
    letters = [letter(1, reason="B"), letter(2, reason="A"), letter(3, reason="B"), letter(4, reason="C")]
    assert list(count_by_reason(letters).items()) == [("B", 2), ("A", 1), ("C", 1)]


# --------------------------------------------------------------------------------------------------
# orders dlq (CLI) over the fake


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> FakeBus:
    fake = FakeBus(
        [
            letter(1),
            letter(2, reason="TTLExpiredException", description="The message expired and was dead lettered."),
            letter(3),
            letter(4, body=b"\xff\xfe not utf-8"),
        ]
    )

    @contextmanager
    def connect(_args: Any) -> Iterator[FakeBus]:
        yield fake

    monkeypatch.setattr(cli_dlq, "connect", connect)
    return fake


def test_cli_list_json_counts_by_reason(bus: FakeBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert orders(["dlq", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"] == 4 and doc["by_reason"] == {"MaxDeliveryCountExceeded": 3, "TTLExpiredException": 1}
    assert [m["sequence_number"] for m in doc["messages"]] == [1, 2, 3, 4]
    assert "body" not in doc["messages"][0]  # list never prints bodies
    assert orders(["dlq", "list", "--json", "--reason", "TTLExpiredException"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 1


def test_cli_list_table(bus: FakeBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert orders(["dlq", "list"]) == 0
    out = capsys.readouterr().out
    assert "MaxDeliveryCountExceeded" in out and "TTLExpiredException" in out and "ord-3:1" in out


def test_cli_show(bus: FakeBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert orders(["dlq", "show", "seq:4", "--json"]) == 0
    [m] = json.loads(capsys.readouterr().out)["messages"]
    assert m["body_encoding"] == "base64" and m["resubmit_message_id"] == resubmit_id(bus.dlq[4])
    assert orders(["dlq", "show", "ord-1:1"]) == 0
    assert '{"seq": 1}' in capsys.readouterr().out
    assert orders(["dlq", "show", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("orders: error: no dead-lettered message 'nope'") and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "resubmit"],
        ["dlq", "resubmit", "--all", "--reason", "X"],
        ["dlq", "resubmit", "ord-1:1", "--all"],
        ["dlq", "resubmit", "--all", "--batch-size", "0"],
        ["dlq", "list", "--limit", "0"],
        ["dlq", "frobnicate"],
    ],
)
def test_cli_bad_arguments_are_one_line_exit_2(
    bus: FakeBus, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert orders(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("orders: error:") and err.count("\n") == 1
    assert bus.sent == [] and len(bus.dlq) == 4


def test_cli_resubmit_unknown_id_sends_nothing(bus: FakeBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert orders(["dlq", "resubmit", "ord-1:1", "nope"]) == 1
    assert "'nope'" in capsys.readouterr().err
    assert bus.sent == [] and len(bus.dlq) == 4


def test_cli_resubmit_dry_run_then_reason_then_all(bus: FakeBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert orders(["dlq", "resubmit", "--all", "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] and doc["counts"] == {"would-resubmit": 4} and bus.sent == []

    assert orders(["dlq", "resubmit", "--reason", "TTLExpiredException", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"resubmitted": 1} and sorted(bus.dlq) == [1, 3, 4]

    assert orders(["dlq", "resubmit", "--all"]) == 0
    assert "resubmitted" in capsys.readouterr().out
    assert bus.dlq == {} and len(bus.sent) == 4

    assert orders(["dlq", "resubmit", "--all"]) == 0
    assert "nothing to resubmit" in capsys.readouterr().out


def test_cli_resubmit_failure_exits_1(bus: FakeBus, capsys: pytest.CaptureFixture[str]) -> None:
    bus.fail_send = ConnectionError("down")
    assert orders(["dlq", "resubmit", "seq:1"]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "still in the DLQ" in out and len(bus.dlq) == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dlq", "list"], "no Service Bus connection"),
        (["dlq", "list", "--connection", "bogus"], "bad Service Bus connection string"),
        (["dlq", "resubmit", "--all", "--connection", "Endpoint=;"], "bad Service Bus connection string"),
    ],
)
def test_cli_without_a_usable_connection_is_one_line_exit_1(
    argv: list[str],
    message: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no local.settings.json
    for name in ("ServiceBusConnection", "ServiceBusConnection__fullyQualifiedNamespace"):
        monkeypatch.delenv(name, raising=False)
    assert orders(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"orders: error: {message}") and err.count("\n") == 1
