"""The engine on its own: the pure decision function, the ledger's rules, and the processor shell,
driven by a workflow that is not the order workflow (tests/support/accounts.py), which proves the seam."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.engine.decide import Decision, ParkedMissing, admit, decide, reject
from shared.engine.ledger import Ledger, Seen
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.processor import StreamProcessor
from shared.engine.records import ParkedMessage
from shared.engine.workflow import ContractError, Step, Workflow
from shared.envelope import SessionEnvelope
from shared.store.base import ConcurrencyConflict
from shared.store.memory import InMemoryOrderStore
from tests.support.accounts import ACCOUNTS, Account, Operation, account_envelope

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def fresh() -> Ledger[Account]:
    return ACCOUNTS.new_ledger("alice", "acc-1", ACCOUNTS.initial_state("alice", "acc-1"))


def run(
    ledger: Ledger[Account],
    env: SessionEnvelope,
    parked: dict[int, ParkedMessage] | None = None,
    park_limit: int = 3,
) -> Decision:
    step = admit(ACCOUNTS, env)
    assert not isinstance(step, ContractError), step
    return decide(ACCOUNTS, ledger, step, env, parked or {}, now=NOW, park_limit=park_limit)


def after(decision: Decision) -> Ledger[Account]:
    assert decision.changes.ledger is not None
    return decision.changes.ledger


def test_the_account_workflow_satisfies_the_protocol() -> None:
    workflow: Workflow[Account, Operation] = ACCOUNTS  # mypy checks the structural match
    assert workflow.is_terminal(Account("a", "b", opened=True, closed=True))


# --- the pure decision -------------------------------------------------------------------------


def test_in_sequence_steps_apply_and_the_input_ledger_is_left_alone() -> None:
    ledger = fresh()
    opened = run(ledger, account_envelope(1, "open", 50))
    assert opened.result.outcome is Outcome.APPLIED and opened.result.status == "OPEN"
    assert ledger.last_sequence == 0 and ledger.state.opened is False, "decide must not mutate its input"
    deposited = run(after(opened), account_envelope(2, "deposit", 100))
    state = after(deposited).state
    assert (state.balance, after(deposited).last_sequence) == (100, 2)
    assert [r.sequence for r in deposited.changes.idempotency] == [2]
    assert deposited.result.applied_sequences == (2,) and deposited.result.stream_key == "acc-1"


def test_a_refused_step_is_quarantined_and_the_ledger_is_not_written() -> None:
    ledger = after(run(fresh(), account_envelope(1, "open", 50)))
    refused = run(ledger, account_envelope(2, "withdraw", 51))
    assert refused.result.outcome is Outcome.QUARANTINED
    assert refused.result.reason is QuarantineReason.RULE_VIOLATION
    assert refused.changes.ledger is None and refused.changes.idempotency == []
    [record] = refused.changes.quarantine
    assert (record.stream_key, record.sequence, record.step) == ("acc-1", 2, "account.withdraw")
    within = run(ledger, account_envelope(2, "withdraw", 50))
    assert after(within).state.balance == -50


def test_early_steps_park_and_are_released_in_the_commit_of_the_gap_filler() -> None:
    ledger = after(run(fresh(), account_envelope(1, "open", 0)))
    env3 = account_envelope(3, "withdraw", 30)
    parked3 = run(ledger, env3)
    assert parked3.result.outcome is Outcome.PARKED and after(parked3).parked == {
        3: parked3.changes.park[0].content_hash
    }
    ledger = after(parked3)
    filled = run(ledger, account_envelope(2, "deposit", 100), parked={3: parked3.changes.park[0]})
    assert filled.result.outcome is Outcome.APPLIED and filled.result.applied_sequences == (2, 3)
    assert filled.changes.unpark == [("acc-1", 3)]
    assert after(filled).state.balance == 70 and after(filled).parked == {}


def test_a_parked_message_the_lookup_lacks_is_a_conflict_not_a_guess() -> None:
    ledger = after(run(fresh(), account_envelope(1, "open", 0)))
    ledger = after(run(ledger, account_envelope(3, "deposit", 1)))
    with pytest.raises(ParkedMissing):
        run(ledger, account_envelope(2, "deposit", 1), parked={})


def test_duplicates_count_and_conflicting_duplicates_are_quarantined() -> None:
    ledger = after(run(fresh(), account_envelope(1, "open", 0)))
    again = run(ledger, account_envelope(1, "open", 0))
    assert again.result.outcome is Outcome.DUPLICATE and after(again).duplicates == 1
    clash = run(ledger, account_envelope(1, "open", 99))
    assert clash.result.reason is QuarantineReason.CONFLICTING_DUPLICATE and clash.changes.ledger is None


def test_a_terminal_stream_refuses_later_steps_and_quarantines_what_waited() -> None:
    ledger = after(run(fresh(), account_envelope(1, "open", 0)))
    waiting = run(ledger, account_envelope(3, "deposit", 5))
    ledger = after(waiting)
    closed = run(ledger, account_envelope(2, "close"), parked={3: waiting.changes.park[0]})
    assert closed.result.outcome is Outcome.APPLIED and closed.result.status == "CLOSED"
    [record] = closed.changes.quarantine
    assert record.reason == QuarantineReason.INVALID_TRANSITION and record.sequence == 3
    assert closed.result.quarantine_ids == (record.id,)
    late = run(after(closed), account_envelope(9, "deposit", 1))
    assert late.result.reason is QuarantineReason.INVALID_TRANSITION and late.changes.park == []


def test_the_park_limit_bounds_what_waits() -> None:
    ledger = after(run(fresh(), account_envelope(1, "open", 0)))
    for seq in (3, 4):
        ledger = after(run(ledger, account_envelope(seq, "deposit", 1), park_limit=2))
    overflow = run(ledger, account_envelope(5, "deposit", 1), park_limit=2)
    assert overflow.result.reason is QuarantineReason.RESEQUENCE_OVERFLOW


def test_admit_checks_the_contract_and_the_session() -> None:
    bad = admit(ACCOUNTS, SessionEnvelope(body=b"{nope", session_id="alice", message_id="m"))
    assert isinstance(bad, ContractError) and bad.reason is QuarantineReason.MALFORMED_JSON
    elsewhere = admit(ACCOUNTS, account_envelope(1, "open", session="mallory"))
    assert isinstance(elsewhere, ContractError) and elsewhere.reason is QuarantineReason.SESSION_MISMATCH
    rejected = reject(account_envelope(1, "open", session="mallory"), elsewhere, NOW)
    assert rejected.changes.ledger is None and rejected.result.outcome is Outcome.QUARANTINED
    assert isinstance(admit(ACCOUNTS, account_envelope(1, "open")), Step)


# --- the ledger's rules ---------------------------------------------------------------------------


def test_ledger_rules() -> None:
    ledger = fresh()
    assert ledger.seen(1, "h1") is Seen.NEW and not ledger.is_ahead(1) and ledger.is_ahead(2)
    ledger.record_applied(1, "account.open", "h1", "m1", Account("alice", "acc-1", opened=True), NOW)
    assert ledger.seen(1, "h1") is Seen.DUPLICATE and ledger.seen(1, "other") is Seen.CONFLICT_APPLIED
    assert ledger.can_park(1)
    ledger.park(3, "h3")
    assert not ledger.can_park(1) and ledger.can_park(2)
    assert ledger.seen(3, "h3") is Seen.DUPLICATE and ledger.seen(3, "x") is Seen.CONFLICT_PARKED
    assert ledger.due() is None
    with pytest.raises(ValueError):
        ledger.record_applied(3, "account.deposit", "h3", "m3", ledger.state, NOW)  # out of turn
    with pytest.raises(ValueError):
        ledger.park(1, "h1")  # already applied
    ledger.record_applied(2, "account.deposit", "h2", "m2", ledger.state, NOW)
    assert ledger.due() == 3
    ledger.unpark(3)
    assert ledger.parked == {} and ledger.next_sequence == 3


def test_ledger_document_round_trip_through_the_workflow_codec() -> None:
    ledger = after(run(fresh(), account_envelope(1, "open", 25)))
    doc = ledger.to_document(ACCOUNTS)
    again = Ledger.from_document(doc, ACCOUNTS, version="7", session_id="x", stream_key="y")
    assert (again.session_id, again.stream_key, again.version) == ("alice", "acc-1", "7")
    assert again.state == ledger.state and again.applied == ledger.applied


# --- the shell: one commit per message ------------------------------------------------------------


def test_processor_runs_the_account_workflow_with_one_commit_per_message() -> None:
    store = InMemoryOrderStore()
    processor = StreamProcessor(store, ACCOUNTS, park_limit=5)
    envs = [
        account_envelope(1, "open", 20),
        account_envelope(3, "withdraw", 70),
        account_envelope(2, "deposit", 50),
        account_envelope(4, "withdraw", 1),  # 50 - 70 - 1 = -21 < -20: refused
        account_envelope(4, "withdraw", 0),
    ]
    outcomes = [processor.process(e).outcome for e in envs]
    assert outcomes == [
        Outcome.APPLIED,
        Outcome.PARKED,
        Outcome.APPLIED,
        Outcome.QUARANTINED,
        Outcome.APPLIED,
    ]
    assert store.commits == len(envs)
    ledger = store.get_ledger("alice", "acc-1")
    assert ledger is not None and ledger.state.balance == -20 and ledger.last_sequence == 4
    assert [q.reason for q in store.list_quarantine()] == ["rule-violation"]


def test_processor_turns_a_missing_parked_row_into_a_concurrency_conflict() -> None:
    store = InMemoryOrderStore()
    processor = StreamProcessor(store, ACCOUNTS)
    processor.process(account_envelope(1, "open", 0))
    processor.process(account_envelope(3, "deposit", 1))
    store._parked.clear()  # another writer released it meanwhile (the ledger we read is stale)
    with pytest.raises(ConcurrencyConflict):
        processor.process(account_envelope(2, "deposit", 1))
