"""Batch mode over the in-memory store: one outcome per message, one commit per batch, and the same
results and the same stored state as processing the messages one by one."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.engine.batch import process_batch
from shared.engine.changes import chain_version, coalesce
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.records import SessionChanges
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS as ORDERS_CODEC
from shared.order_workflow import OrderStepProcessor
from shared.store.base import StoreUnavailable
from shared.store.memory import InMemoryOrderStore
from tests.support.builders import HAPPY_PATH, body, envelope, happy_path, step

FIXED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def processor_for(store: InMemoryOrderStore, park_limit: int = 50) -> OrderStepProcessor:
    return OrderStepProcessor(store, park_limit=park_limit, clock=lambda: FIXED)


def redelivered(env: SessionEnvelope) -> SessionEnvelope:
    return SessionEnvelope(
        env.body,
        env.session_id,
        env.message_id,
        env.delivery_count + 1,
        env.sequence_number,
        env.enqueued_time,
    )


def test_a_batch_applies_every_message_in_one_commit() -> None:
    store = InMemoryOrderStore()
    results = process_batch(processor_for(store), happy_path())
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 5
    assert [r.sequence for r in results] == [1, 2, 3, 4, 5]
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and [a.step for a in ledger.applied] == HAPPY_PATH
    assert store.count_idempotency_records() == 5
    assert store.commits == 1


def test_parked_and_released_inside_one_batch_never_reach_the_store() -> None:
    store = InMemoryOrderStore()
    envs = happy_path()
    results = process_batch(processor_for(store), [envs[2], envs[1], envs[0], envs[3]])
    assert [r.outcome for r in results] == [Outcome.PARKED, Outcome.PARKED, Outcome.APPLIED, Outcome.APPLIED]
    assert results[2].applied_sequences == (1, 2, 3)
    assert store.list_parked() == [] and store.commits == 1
    runs = coalesce(_staged_units(envs[2], envs[1], envs[0]))
    assert len(runs) == 1 and runs[0].park == [] and runs[0].unpark == []  # the rows cancel out


def test_a_bad_message_is_quarantined_without_affecting_the_others() -> None:
    store = InMemoryOrderStore()
    envs = happy_path()
    bad = envelope(b'{"schema": "order-step/v1", "truncated', session="cust-1", message_id="bad-1")
    mismatched = envelope(body("order.placed", 1, customer="cust-2", order="ord-9"), session="cust-1")
    results = process_batch(processor_for(store), [envs[0], bad, envs[1], mismatched, envs[2]])
    outcomes = [(r.outcome, r.reason) for r in results]
    assert outcomes == [
        (Outcome.APPLIED, None),
        (Outcome.QUARANTINED, QuarantineReason.MALFORMED_JSON),
        (Outcome.APPLIED, None),
        (Outcome.QUARANTINED, QuarantineReason.SESSION_MISMATCH),
        (Outcome.APPLIED, None),
    ]
    assert {q.message_id for q in store.list_quarantine()} == {"bad-1", mismatched.message_id}
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and ledger.last_sequence == 3 and store.commits == 1


def test_a_transient_failure_writes_nothing_and_the_redelivered_batch_applies_once() -> None:
    store = InMemoryOrderStore()
    processor = processor_for(store)
    envs = happy_path()
    store.fail_next_commit = StoreUnavailable("down")
    with pytest.raises(StoreUnavailable):
        process_batch(processor, envs)
    assert store.list_ledgers() == [] and store.count_idempotency_records() == 0
    results = process_batch(processor, [redelivered(e) for e in envs])
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 5
    again = process_batch(processor, [redelivered(e) for e in envs])  # the settle was lost: all duplicates
    assert [r.outcome for r in again] == [Outcome.DUPLICATE] * 5
    assert store.count_idempotency_records() == 5


def test_duplicates_inside_one_batch_are_duplicates() -> None:
    store = InMemoryOrderStore()
    first = step("order.placed", 1)
    results = process_batch(processor_for(store), [first, first, step("order.shipped", 4), first])
    assert [r.outcome for r in results] == [
        Outcome.APPLIED,
        Outcome.DUPLICATE,
        Outcome.PARKED,
        Outcome.DUPLICATE,
    ]
    ledger = store.get_ledger("cust-1", "ord-1")
    assert ledger is not None and ledger.duplicates == 2 and sorted(ledger.parked) == [4]


def test_interleaved_orders_get_one_ledger_write_each() -> None:
    a, b = happy_path(order="ord-a"), happy_path(order="ord-b")
    batch = [m for pair in zip(a, b, strict=True) for m in pair]
    runs = coalesce(_staged_units(*batch))
    assert [r.ledger.stream_key for r in runs if r.ledger] == ["ord-a", "ord-b"]
    assert [len(r.idempotency) for r in runs] == [5, 5]


def test_messages_of_another_session_are_committed_on_their_own() -> None:
    store = InMemoryOrderStore()
    batch = [
        step("order.placed", 1),
        step("order.placed", 1, customer="cust-2"),
        step("payment.authorized", 2),
    ]
    results = process_batch(processor_for(store), batch)
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 3
    assert store.commits == 3  # three consecutive groups: cust-1, cust-2, cust-1


def test_a_batch_commit_that_fails_for_good_falls_back_to_one_commit_per_message() -> None:
    store = InMemoryOrderStore()
    store.fail_next_commit = ValueError("a limit this batch hits")
    results = process_batch(processor_for(store), happy_path())
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 5
    assert store.commits == 5


# --- the property: batches decide and store exactly what one-by-one processing does ------------------

STEPS = [*HAPPY_PATH, "order.cancelled"]


@st.composite
def traffic(draw: st.DrawFn) -> list[SessionEnvelope]:
    """One session's messages: a few orders' steps shuffled, re-sent, conflicting, or not JSON at all."""
    messages: list[SessionEnvelope] = []
    for order in range(draw(st.integers(1, 3))):
        path = HAPPY_PATH[: draw(st.integers(1, 5))]
        if draw(st.booleans()):
            path = [*path[: draw(st.integers(1, len(path)))], "order.cancelled"]
        messages += [step(name, i, order=f"ord-{order}") for i, name in enumerate(path, start=1)]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["resend", "conflict", "garbage", "mismatch"]))
        if kind == "resend" and messages:
            messages.append(draw(st.sampled_from(messages)))
        elif kind == "conflict":
            seq, name = draw(st.integers(1, 6)), draw(st.sampled_from(STEPS))
            messages.append(step(name, seq, order=f"ord-{draw(st.integers(0, 2))}", occurred_at="2026-01-01"))
        elif kind == "garbage":
            messages.append(envelope(draw(st.binary(max_size=40)), session="cust-1", message_id="junk"))
        else:
            messages.append(envelope(body("order.placed", 1, customer="other"), session="cust-1"))
    shuffle = draw(st.permutations(range(len(messages))))
    return [messages[i] for i in shuffle]


def state_of(store: InMemoryOrderStore) -> Any:
    ledgers = [
        (x.stream_key, json.dumps({**x.to_document(ORDERS_CODEC), "version": None}, sort_keys=True))
        for x in store.list_ledgers()
    ]
    parked = [(p.stream_key, p.sequence, p.envelope.message_id) for p in store.list_parked()]
    quarantine = sorted((q.id, q.reason, q.detail) for q in store.list_quarantine())
    return ledgers, parked, quarantine, store.count_idempotency_records()


def result_of(r: Any) -> Any:
    return (
        r.outcome,
        r.reason,
        r.detail,
        r.stream_key,
        r.sequence,
        r.applied_sequences,
        r.quarantine_ids,
        r.status,
    )


def split(messages: list[SessionEnvelope], cuts: list[int]) -> list[list[SessionEnvelope]]:
    points = sorted({c % (len(messages) + 1) for c in cuts} | {0, len(messages)})
    return [messages[a:b] for a, b in itertools.pairwise(points) if b > a]


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(messages=traffic(), cuts=st.lists(st.integers(0, 40), max_size=5), park_limit=st.integers(1, 4))
def test_batch_results_equal_sequential_results(
    messages: list[SessionEnvelope], cuts: list[int], park_limit: int
) -> None:
    one_by_one = InMemoryOrderStore()
    sequential = [result_of(processor_for(one_by_one, park_limit).process(m)) for m in messages]

    batched = InMemoryOrderStore()
    batch_results: list[Any] = []
    for part in split(messages, cuts):
        batch_results += [result_of(r) for r in process_batch(processor_for(batched, park_limit), part)]

    assert batch_results == sequential
    assert state_of(batched) == state_of(one_by_one)


class SplitCommitStore(InMemoryOrderStore):
    """Commits a batch's runs in separate transactions (as Table does when a batch does not fit) and
    can crash after the first `crash_after` of them."""

    def __init__(self, max_ops: int) -> None:
        super().__init__()
        self.max_ops = max_ops
        self.crash_after: int | None = None

    def commit_batch(self, session_id: str, units: Sequence[SessionChanges]) -> None:
        def fits(run: SessionChanges) -> bool:
            return 1 + len(run.park) + len(run.unpark) + len(run.idempotency) <= self.max_ops

        written: dict[str, str | None] = {}
        for index, run in enumerate(coalesce(units, fits)):
            if self.crash_after is not None and index >= self.crash_after:
                self.crash_after = None
                raise StoreUnavailable("crashed between two transactions of one batch")
            chain_version(run, written)
            self.commit(run)
            if run.ledger is not None:
                written[run.ledger.stream_key] = run.ledger.version


@PROPERTY
@given(messages=traffic(), max_ops=st.integers(2, 6), crash_after=st.integers(0, 6))
def test_a_crash_between_the_transactions_of_a_split_batch_is_exactly_once_on_redelivery(
    messages: list[SessionEnvelope], max_ops: int, crash_after: int
) -> None:
    one_by_one = InMemoryOrderStore()
    for m in messages:
        processor_for(one_by_one).process(m)

    store = SplitCommitStore(max_ops)
    store.crash_after = crash_after
    processor = processor_for(store)
    try:
        process_batch(processor, messages)
    except StoreUnavailable:
        results = process_batch(processor, [redelivered(m) for m in messages])  # the whole batch again
        assert all(r.outcome in set(Outcome) for r in results)
    assert state_of_without_duplicates(store) == state_of_without_duplicates(one_by_one)


def state_of_without_duplicates(store: InMemoryOrderStore) -> Any:
    """Redelivery legitimately counts duplicates, and a message quarantined again on redelivery gets the
    detail of that decision (e.g. "stream is terminal" instead of "became terminal while it waited") under
    the same id and reason, as with single-message redelivery; everything else must be identical."""
    ledgers, parked, quarantine, idempotency = state_of(store)
    reasons = [(q_id, reason) for q_id, reason, _ in quarantine]
    return [(k, {**json.loads(d), "duplicates": 0}) for k, d in ledgers], parked, reasons, idempotency


# --- helpers ---------------------------------------------------------------------------------------


def _staged_units(*envs: SessionEnvelope) -> list[SessionChanges]:
    from shared.engine.batch import StagedSession

    store = InMemoryOrderStore()
    staged = StagedSession(store, envs[0].session_id)
    sequential = OrderStepProcessor(staged, clock=lambda: FIXED)
    for env in envs:
        sequential.process(env)
    return staged.units
