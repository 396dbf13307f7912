"""shared/replay.py, the quarantine replay use case, with a fake send: what is sent, and that the record is
marked replayed only after the send succeeded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.engine.records import QuarantineRecord, SessionChanges
from shared.envelope import SessionEnvelope
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


def test_the_original_body_goes_out_under_its_id_then_the_record_is_replayed() -> None:
    store = InMemoryOrderStore()
    raw = body("payment.authorized", 2, data={"payment_id": "p", "amount": "1.01"})
    record = quarantined(store, raw)
    sent: list[ReplayMessage] = []
    message = replay(store, record, sent.append, parse=ORDERS.parse, now=NOW)
    assert sent == [message]
    assert (message.session_id, message.message_id, message.body) == ("cust-1", "ord-1:2", raw)
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
    assert message.corrected and message.message_id == "ord-1:2:replay-20261102T093000Z"
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
