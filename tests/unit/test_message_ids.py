"""shared/message_ids.py: one message-id scheme, unique per queue and legal for Service Bus for every legal
input, and the contract's id bounds checked against what Service Bus and the Table store accept."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus._common.constants import MESSAGE_PROPERTY_MAX_LENGTH
from hypothesis import given
from hypothesis import strategies as st

from orders_cli.samples import T0
from shared.contract import ID_PATTERN, MAX_ID_LENGTH, MAX_SEQUENCE, parse_order_step
from shared.engine.outcomes import Outcome
from shared.engine.records import IdempotencyRecord
from shared.message_ids import (
    HASHED_PREFIX,
    MAX_MESSAGE_ID_LENGTH,
    composite_id,
    replay_message_id,
    resubmit_message_id,
    step_message_id,
)
from shared.order_workflow import OrderStepProcessor
from shared.store.memory import InMemoryOrderStore
from shared.store.table_entities import escape_key, idem_key, idem_set_key, ledger_key, park_key
from tests.support.builders import body, envelope

ids = st.from_regex(ID_PATTERN, fullmatch=True)
sequences = st.integers(min_value=1, max_value=MAX_SEQUENCE)
LONGEST = "c" * MAX_ID_LENGTH
TABLE_KEY_LIMIT = 1024  # PartitionKey / RowKey: 1 KiB (Table service data model)


def test_two_customers_with_the_same_order_and_sequence_get_different_ids() -> None:
    assert step_message_id("cust-1", "ord-1", 1) == "cust-1:ord-1:1"
    assert step_message_id("cust-2", "ord-1", 1) == "cust-2:ord-1:1"


def test_the_longest_legal_ids_give_an_id_service_bus_accepts() -> None:
    message_id = step_message_id(LONGEST, "o" * MAX_ID_LENGTH, MAX_SEQUENCE)
    assert message_id.startswith(HASHED_PREFIX) and len(message_id) == len(HASHED_PREFIX) + 64
    assert ServiceBusMessage(b"{}", session_id=LONGEST, message_id=message_id).message_id == message_id
    with pytest.raises(ValueError, match="message_id cannot be longer"):  # what the old scheme ran into
        ServiceBusMessage(b"{}", session_id=LONGEST, message_id=f"{'o' * MAX_ID_LENGTH}:1")


def test_an_id_is_plain_up_to_128_characters_and_hashed_beyond() -> None:
    fits = step_message_id("c" * 60, "o" * 65, 1)  # 60 + 1 + 65 + 1 + 1 = 128
    assert fits == f"{'c' * 60}:{'o' * 65}:1"
    over = step_message_id("c" * 60, "o" * 66, 1)
    assert over == HASHED_PREFIX + hashlib.sha256(f"{'c' * 60}:{'o' * 66}:1".encode()).hexdigest()
    assert step_message_id("c" * 60, "o" * 66, 1) == over  # deterministic: a re-publish is deduplicated
    assert step_message_id("c" * 60, "o" * 66, 2) != over


@given(ids, ids, sequences, ids, ids, sequences)
def test_step_ids_are_legal_and_name_one_step(c1: str, o1: str, s1: int, c2: str, o2: str, s2: int) -> None:
    a, b = step_message_id(c1, o1, s1), step_message_id(c2, o2, s2)
    assert len(a) <= MAX_MESSAGE_ID_LENGTH and a.isascii()
    assert (a == b) == ((c1, o1, s1) == (c2, o2, s2))


@given(ids, ids, sequences, st.binary(max_size=64), st.integers(min_value=0, max_value=2**63))
def test_the_three_kinds_never_meet(customer: str, order: str, seq: int, raw: bytes, dlq_seq: int) -> None:
    step = step_message_id(customer, order, seq)
    replay = replay_message_id("0123456789abcdef01234567", raw, None)
    resubmit = resubmit_message_id(step, dlq_seq)
    assert ":" in step or step.startswith(HASHED_PREFIX)
    assert ":" not in replay and ":" not in resubmit and len({step, replay, resubmit}) == 3
    assert uuid.UUID(replay).version == 5 and uuid.UUID(resubmit).version == 5
    assert not replay.startswith(HASHED_PREFIX) and not resubmit.startswith(HASHED_PREFIX)


def test_parts_must_be_non_empty_and_free_of_the_separator() -> None:
    for parts in (("a:b", "c"), ("", "c"), ("only",)):
        with pytest.raises(ValueError, match="message id parts"):
            composite_id(*parts)


def test_the_resubmit_derivation_is_the_one_dlq_resubmit_always_used() -> None:
    # a resubmit interrupted before an upgrade must derive the same id after it (the broker drops the copy)
    assert resubmit_message_id("ord-1:2", 5) == "8aa1d167-dccc-5f18-8946-6419d3d35bc6"
    assert resubmit_message_id(None, 9) == "2c855309-f586-5ccf-8151-c06680267058"


def test_the_contract_bounds_fit_service_bus_and_the_table_store() -> None:
    assert MAX_ID_LENGTH == MESSAGE_PROPERTY_MAX_LENGTH  # customer_id is the session id
    assert re.fullmatch(ID_PATTERN, LONGEST) and not re.fullmatch(ID_PATTERN, LONGEST + "c")
    msg = parse_order_step(body("order.placed", 1, customer=LONGEST, order="o" * MAX_ID_LENGTH))
    assert (len(msg.customer_id), len(msg.order_id)) == (MAX_ID_LENGTH, MAX_ID_LENGTH)
    assert escape_key(LONGEST) == LONGEST  # nothing legal is escaped
    order = "o" * MAX_ID_LENGTH
    keys = [ledger_key(order), park_key(order, MAX_SEQUENCE), idem_key(order, MAX_SEQUENCE)]
    keys.append(idem_set_key(IdempotencyRecord(LONGEST, order, MAX_SEQUENCE, "h", "m", T0)))
    # even counted as UTF-16 (2 bytes a character) every key stays within 1 KiB
    assert max(len(k) for k in keys) * 2 <= TABLE_KEY_LIMIT


def test_the_app_does_not_read_the_message_id_format() -> None:
    """Messages already in flight under the old `{order_id}:{sequence}` id are processed the same, and a
    step re-sent under the new id is the same step (idempotency is (customer, order, sequence) + content)."""
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store)
    raw = body("order.placed", 1)
    old = processor.process(envelope(raw, message_id="ord-1:1"))
    new = processor.process(envelope(raw, message_id=step_message_id("cust-1", "ord-1", 1)))
    hashed = processor.process(envelope(body("payment.authorized", 2), message_id=HASHED_PREFIX + "0" * 64))
    assert (old.outcome, new.outcome, hashed.outcome) == (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.APPLIED)
