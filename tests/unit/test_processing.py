"""The pipeline's promises, one test per line of the processing semantics (in-memory store fake)."""

from __future__ import annotations

import json

import pytest

from shared.engine.outcomes import Outcome, QuarantineReason
from shared.order_workflow import OrderStepProcessor
from shared.store.base import ConcurrencyConflict, StoreUnavailable
from shared.store.memory import InMemoryOrderStore
from tests.support.builders import HAPPY_PATH, body, envelope, happy_path, step


@pytest.fixture
def store() -> InMemoryOrderStore:
    return InMemoryOrderStore()


@pytest.fixture
def processor(store: InMemoryOrderStore) -> OrderStepProcessor:
    return OrderStepProcessor(store, park_limit=3)


def applied_steps(store: InMemoryOrderStore, order: str = "ord-1", customer: str = "cust-1") -> list[str]:
    ledger = store.get_ledger(customer, order)
    return [] if ledger is None else [a.step for a in ledger.applied]


# --- applied ---------------------------------------------------------------------------------


def test_happy_path_applies_every_step_in_order(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    results = [processor.process(env) for env in happy_path()]
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 5
    assert applied_steps(store) == HAPPY_PATH
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and ledger.order.state.value == "DELIVERED" and ledger.last_sequence == 5
    assert store.count_idempotency_records() == 5
    assert store.commits == 5  # one transaction per message


def test_effect_and_idempotency_record_are_one_commit(store: InMemoryOrderStore) -> None:
    processor = OrderStepProcessor(store)
    store.fail_next_commit = StoreUnavailable("down")
    with pytest.raises(StoreUnavailable):
        processor.process(step("order.placed", 1))
    assert store.get_ledger("cust-1", "ord-1") is None
    assert store.count_idempotency_records() == 0
    # the redelivery then applies it exactly once
    assert processor.process(step("order.placed", 1)).outcome is Outcome.APPLIED
    assert store.count_idempotency_records() == 1


def test_result_reports_ids_and_state(processor: OrderStepProcessor) -> None:
    result = processor.process(step("order.placed", 1))
    assert (result.session_key, result.stream_key, result.sequence, result.step) == (
        "cust-1",
        "ord-1",
        1,
        "order.placed",
    )
    assert result.applied_sequences == (1,) and result.status == "PLACED" and result.reason is None


# --- duplicate -------------------------------------------------------------------------------


def test_redelivered_applied_message_is_a_counted_duplicate(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    first = step("order.placed", 1)
    processor.process(first)
    again = processor.process(first)
    assert again.outcome is Outcome.DUPLICATE
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and ledger.duplicates == 1 and len(ledger.applied) == 1
    assert store.count_idempotency_records() == 1


def test_same_content_with_other_message_id_and_formatting_is_still_a_duplicate(
    processor: OrderStepProcessor,
) -> None:
    processor.process(step("order.placed", 1))
    reformatted = json.dumps(json.loads(body("order.placed", 1)), indent=2).encode()
    assert processor.process(envelope(reformatted, message_id="ord-1:1:dup")).outcome is Outcome.DUPLICATE


def test_duplicate_of_a_parked_message(processor: OrderStepProcessor, store: InMemoryOrderStore) -> None:
    ahead = step("payment.authorized", 2)
    assert processor.process(ahead).outcome is Outcome.PARKED
    assert processor.process(ahead).outcome is Outcome.DUPLICATE
    assert len(store.list_parked()) == 1


# --- parked ----------------------------------------------------------------------------------


def test_out_of_order_steps_park_then_apply_in_order_when_the_gap_fills(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    envs = happy_path()
    assert processor.process(envs[2]).outcome is Outcome.PARKED
    assert processor.process(envs[1]).outcome is Outcome.PARKED
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and sorted(ledger.parked) == [2, 3] and ledger.last_sequence == 0
    result = processor.process(envs[0])
    assert result.outcome is Outcome.APPLIED and result.applied_sequences == (1, 2, 3)
    assert applied_steps(store) == HAPPY_PATH[:3]
    assert store.list_parked() == []
    assert store.commits == 3  # the release happened in the same commit as the applied message


def test_parked_messages_are_kept_whole(processor: OrderStepProcessor, store: InMemoryOrderStore) -> None:
    env = step("order.shipped", 4)
    processor.process(env)
    parked = store.get_parked("cust-1", "ord-1", 4)
    assert parked is not None and parked.envelope.body == env.body
    assert (
        parked.envelope.message_id == env.message_id
        and parked.envelope.sequence_number == env.sequence_number
    )


def test_orders_resequence_independently(processor: OrderStepProcessor, store: InMemoryOrderStore) -> None:
    processor.process(step("payment.authorized", 2, order="ord-a"))
    assert processor.process(step("order.placed", 1, order="ord-b")).outcome is Outcome.APPLIED
    assert applied_steps(store, "ord-a") == []
    processor.process(step("order.placed", 1, order="ord-a"))
    assert applied_steps(store, "ord-a") == ["order.placed", "payment.authorized"]


def test_park_limit_overflow_is_quarantined(processor: OrderStepProcessor, store: InMemoryOrderStore) -> None:
    envs = happy_path()
    for env in envs[1:4]:  # park limit is 3
        assert processor.process(env).outcome is Outcome.PARKED
    overflow = processor.process(envs[4])
    assert overflow.outcome is Outcome.QUARANTINED and overflow.reason is QuarantineReason.RESEQUENCE_OVERFLOW
    assert [q.reason for q in store.list_quarantine()] == ["resequence-overflow"]


# --- quarantined: contract -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", QuarantineReason.MALFORMED_JSON),
        (b"\xff\xfe\x00garbage", QuarantineReason.MALFORMED_JSON),
        (b"", QuarantineReason.MALFORMED_JSON),
        (b"[1, 2]", QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, schema="order-step/v2"), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 0), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, data={"items": [], "currency": "EUR"}), QuarantineReason.SCHEMA_VIOLATION),
        (
            body(
                "order.placed",
                1,
                data={"items": [{"sku": "a", "quantity": 0, "unit_price": 1}], "currency": "EUR"},
            ),
            QuarantineReason.SCHEMA_VIOLATION,
        ),
        (
            body(
                "order.placed",
                1,
                data={"items": [{"sku": "a", "quantity": 1, "unit_price": -1}], "currency": "EUR"},
            ),
            QuarantineReason.SCHEMA_VIOLATION,
        ),
        (
            body(
                "order.placed",
                1,
                data={"items": [{"sku": "a", "quantity": 1, "unit_price": 1}], "currency": "euro"},
            ),
            QuarantineReason.SCHEMA_VIOLATION,
        ),
        (body("payment.authorized", 1, data={"amount": "1.00"}), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.shipped", 1, data={"carrier": "DHL"}), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, step="order.teleported"), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, occurred_at="yesterday"), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, occurred_at="2026-11-01T10:00:00"), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, sequence="1"), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, order="bad/id"), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, surprise=True), QuarantineReason.SCHEMA_VIOLATION),
        (body("order.placed", 1, customer="someone-else"), QuarantineReason.SESSION_MISMATCH),
    ],
)
def test_bad_messages_are_quarantined_with_their_reason_and_kept_whole(
    processor: OrderStepProcessor, store: InMemoryOrderStore, raw: bytes, reason: QuarantineReason
) -> None:
    env = envelope(raw, message_id="m-1", delivery_count=2, sequence_number=77)
    result = processor.process(env)
    assert result.outcome is Outcome.QUARANTINED and result.reason is reason
    [record] = store.list_quarantine()
    assert record.reason == reason.value and record.detail
    assert record.raw_body == raw  # nothing is lost, also for non-UTF-8 bodies
    assert record.body_encoding == ("utf-8" if raw != b"\xff\xfe\x00garbage" else "base64")
    assert record.metadata["message_id"] == "m-1" and record.metadata["delivery_count"] == 2
    assert record.metadata["sequence_number"] == 77 and record.session_id == "cust-1"
    assert store.get_ledger("cust-1", "ord-1") is None


def test_quarantine_detail_never_echoes_payload_values(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    canary = "CANARY-4242"
    processor.process(envelope(body("order.placed", 1, step=canary)))
    processor.process(envelope(body("order.placed", 1, data={"items": canary, "currency": canary})))
    for record in store.list_quarantine():
        assert canary not in record.detail


def test_decimal_amounts_accept_strings_and_numbers_compared_exactly(processor: OrderStepProcessor) -> None:
    processor.process(step("order.placed", 1))
    paid = processor.process(step("payment.authorized", 2, data={"payment_id": "p", "amount": 25.5}))
    assert paid.outcome is Outcome.APPLIED


def test_redelivered_poison_message_is_quarantined_once(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    env = envelope(b"{oops", message_id="m-9", sequence_number=9)
    processor.process(env)
    processor.process(env)
    assert len(store.list_quarantine()) == 1


# --- quarantined: domain ---------------------------------------------------------------------


def test_rule_violation_does_not_advance_and_later_steps_wait_for_a_corrected_replay(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    processor.process(step("order.placed", 1))
    bad = processor.process(step("payment.authorized", 2, data={"payment_id": "p", "amount": "99.99"}))
    assert bad.outcome is Outcome.QUARANTINED and bad.reason is QuarantineReason.RULE_VIOLATION
    assert processor.process(step("inventory.reserved", 3)).outcome is Outcome.PARKED
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and ledger.last_sequence == 1
    # the operator replays a corrected message for sequence 2: it applies and releases 3
    fixed = processor.process(envelope(body("payment.authorized", 2), message_id="ord-1:2:replay-1"))
    assert fixed.outcome is Outcome.APPLIED and fixed.applied_sequences == (2, 3)
    assert applied_steps(store) == HAPPY_PATH[:3]


def test_invalid_transition_in_sequence_is_quarantined_without_advancing(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    processor.process(step("order.placed", 1))
    result = processor.process(step("order.shipped", 2))
    assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.INVALID_TRANSITION
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and ledger.last_sequence == 1 and ledger.order.state.value == "PLACED"


def test_messages_for_a_terminal_order_are_quarantined_not_parked(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    processor.process(step("order.placed", 1))
    processor.process(step("order.cancelled", 2))
    late = processor.process(step("payment.authorized", 7))
    assert late.outcome is Outcome.QUARANTINED and late.reason is QuarantineReason.INVALID_TRANSITION
    assert store.list_parked() == []


def test_parked_steps_that_can_never_apply_are_quarantined_when_the_order_ends(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    processor.process(step("inventory.reserved", 3))
    processor.process(step("order.cancelled", 2))
    result = processor.process(step("order.placed", 1))
    assert result.outcome is Outcome.APPLIED and result.applied_sequences == (1, 2)
    assert len(result.quarantine_ids) == 1
    [record] = store.list_quarantine()
    assert (record.reason, record.sequence, record.step) == ("invalid-transition", 3, "inventory.reserved")
    assert store.list_parked() == []


def test_a_released_parked_step_that_breaks_a_rule_is_quarantined_and_stops_the_release(
    processor: OrderStepProcessor, store: InMemoryOrderStore
) -> None:
    processor.process(step("payment.authorized", 2, data={"payment_id": "p", "amount": "1.00"}))
    processor.process(step("inventory.reserved", 3))
    result = processor.process(step("order.placed", 1))
    assert result.outcome is Outcome.APPLIED and result.applied_sequences == (1,)
    assert [q.reason for q in store.list_quarantine()] == ["rule-violation"]
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and sorted(ledger.parked) == [3] and ledger.last_sequence == 1


@pytest.mark.parametrize("parked_first", [False, True])
def test_conflicting_duplicate_is_quarantined(
    processor: OrderStepProcessor, store: InMemoryOrderStore, parked_first: bool
) -> None:
    if parked_first:
        processor.process(step("payment.authorized", 2))
        clash = step("payment.authorized", 2, data={"payment_id": "other", "amount": "25.50"})
    else:
        processor.process(step("order.placed", 1))
        clash = step(
            "order.placed",
            1,
            data={"items": [{"sku": "x", "quantity": 1, "unit_price": 1}], "currency": "USD"},
        )
    result = processor.process(clash)
    assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.CONFLICTING_DUPLICATE
    assert len(store.list_quarantine()) == 1


# --- transient failures ----------------------------------------------------------------------


def test_concurrency_conflict_raises_and_writes_nothing(store: InMemoryOrderStore) -> None:
    processor = OrderStepProcessor(store)
    processor.process(step("order.placed", 1))
    store.fail_next_commit = ConcurrencyConflict("someone else wrote")
    with pytest.raises(ConcurrencyConflict):
        processor.process(step("payment.authorized", 2))
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and ledger.last_sequence == 1


def test_a_stale_read_loses_the_race_instead_of_double_applying(store: InMemoryOrderStore) -> None:
    """Two workers read the same ledger; only the first commit wins, the second must retry."""
    processor = OrderStepProcessor(store)
    processor.process(step("order.placed", 1))
    stale = store.get_ledger("cust-1", "ord-1")
    processor.process(step("payment.authorized", 2))
    assert stale is not None
    from shared.engine.records import SessionChanges

    with pytest.raises(ConcurrencyConflict):
        store.commit(SessionChanges("cust-1", ledger=stale))


def test_park_limit_must_be_positive(store: InMemoryOrderStore) -> None:
    with pytest.raises(ValueError):
        OrderStepProcessor(store, park_limit=0)
