"""shared/replay.py, the quarantine replay use case, with a fake send: what is sent (always under a new
derived message id), and that the record is marked replayed only after the send succeeded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.engine.records import QuarantineRecord, SessionChanges
from shared.envelope import SessionEnvelope
from shared.message_ids import MAX_MESSAGE_ID_LENGTH, replay_message_id
from shared.order_workflow import ORDERS
from shared.replay import REPLAYED_FROM, ReplayError, ReplayMessage, replay
from shared.store.memory import InMemoryOrderStore
from tests.support.builders import body

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def quarantined(store: InMemoryOrderStore, raw: bytes, session: str = "cust-1") -> QuarantineRecord:
    envelope = SessionEnvelope(raw, session, "ord-1:2", application_properties={"kind": "step", "n": 3})
    record = QuarantineRecord.from_envelope(
        envelope,
        "rule-violation",
        "amount",
        at=NOW,
        stream_key="ord-1",
        sequence=2,
        step="payment.authorized",
    )
    store.commit(SessionChanges(session, quarantine=[record]))
    return record


def test_the_original_body_goes_out_under_a_new_derived_id_then_the_record_is_replayed() -> None:
    store = InMemoryOrderStore()
    raw = body("payment.authorized", 2, data={"payment_id": "p", "amount": "1.01"})
    record = quarantined(store, raw)
    sent: list[ReplayMessage] = []
    message = replay(store, record, sent.append, parse=ORDERS.parse, now=NOW)
    assert sent == [message]
    # never the original id "ord-1:2": the queue's duplicate detection would drop it for 10 minutes
    assert (message.session_id, message.message_id, message.body) == (
        "cust-1",
        replay_message_id(record.id, raw, None),
        raw,
    )
    assert message.message_id != record.message_id
    assert message.application_properties == {"kind": "step", "n": 3, REPLAYED_FROM: record.id}
    stored = store.get_quarantine(record.id)
    assert stored is not None and stored.status == "replayed" and stored.replayed_at == NOW


def test_a_failed_send_leaves_the_record_open() -> None:
    store = InMemoryOrderStore()
    record = quarantined(store, body("payment.authorized", 2))

    def fail(_message: ReplayMessage) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        replay(store, record, fail, parse=ORDERS.parse, now=NOW)
    stored = store.get_quarantine(record.id)
    assert stored is not None and stored.status == "open"


def test_a_corrected_body_gets_a_new_id_and_a_bad_one_is_refused_unless_forced() -> None:
    store = InMemoryOrderStore()
    record = quarantined(store, body("payment.authorized", 2))
    sent: list[ReplayMessage] = []
    bad = json.dumps({"schema": "order-step/v1"}).encode()
    with pytest.raises(ReplayError, match="would be quarantined again"):
        replay(store, record, sent.append, parse=ORDERS.parse, corrected=bad, now=NOW)
    assert sent == []
    good = body("payment.authorized", 2, order="ord-1")
    message = replay(store, record, sent.append, parse=ORDERS.parse, corrected=good, now=NOW)
    assert message.corrected and message.message_id == replay_message_id(record.id, good, None)
    replayed = store.get_quarantine(record.id)
    assert replayed is not None
    with pytest.raises(ReplayError, match="already replayed"):
        replay(store, replayed, sent.append, parse=ORDERS.parse, now=NOW)
    replay(store, replayed, sent.append, parse=ORDERS.parse, corrected=bad, force=True, now=NOW)
    assert [m.body for m in sent] == [good, bad]


def test_a_record_without_a_session_cannot_be_replayed() -> None:
    store = InMemoryOrderStore()
    record = quarantined(store, b"{", session="")
    with pytest.raises(ReplayError, match="no session id"):
        replay(store, record, lambda m: None, parse=ORDERS.parse, now=NOW)


class _MarkFailsOnce(InMemoryOrderStore):
    """A store whose first mark_replayed fails (the run stopped after the send, before the mark)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def mark_replayed(self, quarantine_id: str, at: datetime) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        super().mark_replayed(quarantine_id, at)


def test_a_rerun_after_an_unmarked_send_repeats_the_id_and_a_forced_replay_gets_another() -> None:
    store = _MarkFailsOnce()
    raw = body("payment.authorized", 2)
    record = quarantined(store, raw)
    sent: list[ReplayMessage] = []
    with pytest.raises(ReplayError, match=r"was sent as message id .* marking it replayed failed \(Conn"):
        replay(store, record, sent.append, parse=ORDERS.parse, now=NOW)
    open_record = store.get_quarantine(record.id)
    assert open_record is not None and open_record.status == "open"
    # run again: the same id, so the broker drops this second copy and the app sees the replay once
    replay(store, open_record, sent.append, parse=ORDERS.parse, now=NOW)
    assert sent[0].message_id == sent[1].message_id
    replayed = store.get_quarantine(record.id)
    assert replayed is not None and replayed.status == "replayed"
    # a forced replay after a recorded one is a new send: a new id, or the broker would drop it
    later = replay(store, replayed, sent.append, parse=ORDERS.parse, force=True, now=NOW.replace(minute=31))
    assert later.message_id not in {sent[0].message_id, record.message_id}
    again = store.get_quarantine(record.id)
    assert again is not None
    third = replay(store, again, sent.append, parse=ORDERS.parse, force=True, now=NOW.replace(minute=32))
    assert len({m.message_id for m in sent}) == 3 and third.message_id == sent[-1].message_id
    assert all(len(m.message_id) <= MAX_MESSAGE_ID_LENGTH and ":" not in m.message_id for m in sent)


def test_two_records_of_one_step_replay_under_different_ids() -> None:
    store = InMemoryOrderStore()
    raw = body("payment.authorized", 2)
    first = quarantined(store, raw)
    other = QuarantineRecord.from_envelope(
        SessionEnvelope(raw, "cust-1", "ord-1:2", sequence_number=77), "rule-violation", "amount", at=NOW
    )
    store.commit(SessionChanges("cust-1", quarantine=[other]))
    sent: list[ReplayMessage] = []
    replay(store, first, sent.append, parse=ORDERS.parse, now=NOW)
    replay(store, other, sent.append, parse=ORDERS.parse, now=NOW)
    assert first.id != other.id and sent[0].message_id != sent[1].message_id
