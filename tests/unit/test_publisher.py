"""The test-order generator: deterministic, valid contract messages, and expectations that the real
processor meets (outcome per message, final applied steps per order)."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders_cli import sender, traffic
from orders_cli.sender import send_messages
from orders_cli.traffic import PublishPlan, PublishUsageError, expected_final_state, generate_messages
from shared.contract import ID_PATTERN, ContractError, parse_order_step
from shared.engine.outcomes import QuarantineReason
from shared.envelope import SessionEnvelope
from shared.order_workflow import OrderStepProcessor
from shared.store.memory import InMemoryOrderStore


def feed(messages: list[traffic.OutgoingMessage]) -> tuple[InMemoryOrderStore, list[Any]]:
    """Process in generated order (that is each session's order) through the real processor."""
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store)
    results = []
    for number, m in enumerate(messages, start=1):
        envelope = SessionEnvelope(
            body=m.body,
            session_id=m.session_id,
            message_id=m.message_id,
            sequence_number=number,
            content_type=m.content_type,
            application_properties=dict(m.application_properties),
        )
        results.append(processor.process(envelope))
    return store, results


def final_state(store: InMemoryOrderStore) -> dict[tuple[str, str], list[str]]:
    return {(x.customer_id, x.order_id): [a.step for a in x.applied] for x in store.list_ledgers()}


def test_generation_is_deterministic_for_a_seed() -> None:
    plan = PublishPlan(4, 3, cancel_rate=0.3, duplicates=0.2, shuffle=True, poison=9, seed=42)
    first, again = generate_messages(plan), generate_messages(plan)
    assert first == again
    other = generate_messages(PublishPlan(4, 3, 0.3, 0.2, True, 9, seed=43))
    assert [m.body for m in other] != [m.body for m in first]


def test_step_messages_are_valid_order_steps_with_exact_totals() -> None:
    messages = generate_messages(
        PublishPlan(5, 4, cancel_rate=0.5, duplicates=0.0, shuffle=False, poison=0, seed=7)
    )
    assert {m.kind for m in messages} == {"step"}
    totals: dict[str, Decimal] = {}
    for m in messages:
        step = parse_order_step(m.body)
        assert step.customer_id == m.session_id
        assert m.message_id == f"{step.customer_id}:{step.order_id}:{step.sequence}"
        assert (m.order_id, m.sequence, m.step) == (step.order_id, step.sequence, step.step)
        assert re.fullmatch(ID_PATTERN, step.customer_id) and re.fullmatch(ID_PATTERN, step.order_id)
        assert re.fullmatch(r"cust-\d{4}", step.customer_id) and re.fullmatch(
            r"ord-\d{4}-\d{2}", step.order_id
        )
        assert m.content_type == "application/json"
        if step.step == "order.placed":
            assert 1 <= len(step.data.items) <= 3
            raw = json.loads(m.body)["data"]["items"]
            assert all(isinstance(i["unit_price"], str) for i in raw)  # decimals as strings
            totals[step.order_id] = sum((i.unit_price * i.quantity for i in step.data.items), Decimal(0))
        if step.step == "payment.authorized":
            assert step.data.amount == totals[step.order_id]
    orders = expected_final_state(messages)
    assert len(orders) == 20
    full = ["order.placed", "payment.authorized", "inventory.reserved", "order.shipped", "order.delivered"]
    for steps in orders.values():
        assert steps == full or (steps[-1] == "order.cancelled" and steps[:-1] == full[: len(steps) - 1])
    assert any(s[-1] == "order.cancelled" for s in orders.values())
    assert any(s[-1] == "order.delivered" for s in orders.values())


def test_without_shuffle_every_order_arrives_in_sequence() -> None:
    messages = generate_messages(PublishPlan(3, 3, 0.2, 0.0, False, 0, seed=3))
    assert all(m.expected_outcome == "applied" for m in messages)
    seen: dict[str, int] = {}
    for m in messages:
        assert m.sequence == seen.get(m.order_id or "", 0) + 1
        seen[m.order_id or ""] = m.sequence or 0
    # sessions are interleaved, not sent one after another
    sessions = [m.session_id for m in messages]
    assert sum(1 for a, b in itertools.pairwise(sessions) if a != b) > 2


def test_poison_covers_every_reason_and_the_processor_agrees() -> None:
    plan = PublishPlan(3, 2, cancel_rate=0.0, duplicates=0.0, shuffle=False, poison=7, seed=5)
    messages = generate_messages(plan)
    poison = [m for m in messages if m.kind == "poison"]
    assert len(poison) == 7
    assert {m.recipe for m in poison} == {name for name, _ in traffic.POISON_RECIPES}
    assert {m.expected_reason for m in poison} == {
        "malformed-json",
        "schema-violation",
        "session-mismatch",
        "rule-violation",
        "invalid-transition",
        "conflicting-duplicate",
    }
    assert len({m.session_id for m in poison}) == 3  # spread over customers
    store, results = feed(messages)
    for m, result in zip(messages, results, strict=True):
        assert result.outcome.value == m.expected_outcome, m.message_id
        assert (result.reason.value if result.reason else None) == m.expected_reason, m.message_id
    reasons = Counter(q.reason for q in store.list_quarantine())
    assert reasons == Counter(m.expected_reason for m in poison)
    non_utf8 = next(m for m in poison if m.recipe == "non-utf8")
    with pytest.raises(UnicodeDecodeError):
        non_utf8.body.decode("utf-8")
    with pytest.raises(ContractError) as err:
        parse_order_step(non_utf8.body)
    assert err.value.reason is QuarantineReason.MALFORMED_JSON
    # the dedicated poison orders do not block anything: every regular order completes
    assert final_state(store) == expected_final_state(messages)


def test_shuffle_and_duplicates_end_in_the_expected_state() -> None:
    plan = PublishPlan(6, 4, cancel_rate=0.25, duplicates=0.3, shuffle=True, poison=14, seed=11)
    messages = generate_messages(plan)
    assert Counter(m.kind for m in messages)["duplicate"] > 0
    assert any(m.expected_outcome == "parked" for m in messages)  # shuffle exercises resequencing
    store, results = feed(messages)
    for m, result in zip(messages, results, strict=True):
        assert result.outcome.value == m.expected_outcome, m.message_id
    assert final_state(store) == expected_final_state(messages)
    assert not store.list_parked()  # every gap was filled
    duplicates = [m for m in messages if m.kind == "duplicate"]
    by_id = {m.message_id: m for m in messages}
    for d in duplicates:
        original = by_id[d.message_id.removesuffix(":dup-1")]
        assert d.body == original.body and d.message_id != original.message_id
        assert messages.index(original) < messages.index(d)
    assert sum(x.duplicates for x in store.list_ledgers()) == len(duplicates)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_duplicates_are_that_fraction_of_each_sessions_steps(fraction: float) -> None:
    messages = generate_messages(PublishPlan(3, 5, 0.3, fraction, False, 0, seed=2))
    for session in {m.session_id for m in messages}:
        kinds = Counter(m.kind for m in messages if m.session_id == session)
        assert kinds["duplicate"] == round(fraction * kinds["step"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    customers=st.integers(1, 4),
    orders=st.integers(1, 4),
    cancel_rate=st.floats(0, 1),
    duplicates=st.floats(0, 1),
    shuffle=st.booleans(),
    poison=st.integers(0, 10),
    seed=st.integers(0, 10_000),
)
def test_any_plan_meets_its_expectations(
    customers: int, orders: int, cancel_rate: float, duplicates: float, shuffle: bool, poison: int, seed: int
) -> None:
    plan = PublishPlan(customers, orders, cancel_rate, duplicates, shuffle, poison, seed)
    messages = generate_messages(plan)
    assert len({m.message_id for m in messages}) == len(messages)  # the queue would drop a repeated id
    store, results = feed(messages)
    for m, result in zip(messages, results, strict=True):
        assert result.outcome.value == m.expected_outcome, m.message_id
        assert (result.reason.value if result.reason else None) == m.expected_reason, m.message_id
    assert final_state(store) == expected_final_state(messages)


def test_id_prefix_keeps_runs_apart() -> None:
    plain = generate_messages(PublishPlan(1, 1, 0, 0, False, 2, seed=1))
    prefixed = generate_messages(PublishPlan(1, 1, 0, 0, False, 2, seed=1, id_prefix="run7"))
    assert {m.session_id for m in prefixed} == {"run7-cust-0001"}
    assert not {m.message_id for m in plain} & {m.message_id for m in prefixed}
    _, results = feed(prefixed)
    assert [r.outcome.value for r in results] == [m.expected_outcome for m in prefixed]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"customers": 0}, "--customers"),
        ({"orders_per_customer": 0}, "--orders-per-customer"),
        ({"cancel_rate": 1.5}, "--cancel-rate"),
        ({"duplicates": -0.1}, "--duplicates"),
        ({"duplicates": float("nan")}, "--duplicates"),
        ({"poison": -1}, "--poison"),
        ({"id_prefix": "bad prefix"}, "--id-prefix"),
        ({"id_prefix": "p" * 117}, "--id-prefix"),
        ({"id_prefix": "p" * 116, "poison": 1}, "reach 129 characters"),  # ...-ord-0001-p01
        ({"id_prefix": "p" * 116, "orders_per_customer": 100}, "reach 129 characters"),  # ...-ord-0001-100
    ],
)
def test_plan_validation(changes: dict[str, Any], message: str) -> None:
    fields = {"customers": 1, "orders_per_customer": 1, "cancel_rate": 0.0, "duplicates": 0.0}
    plan = PublishPlan(**(fields | {"shuffle": False, "poison": 0, "seed": 1} | changes))
    with pytest.raises(PublishUsageError, match=re.escape(message)):
        generate_messages(plan)


def test_the_longest_prefix_a_plan_allows_gives_contract_ids_and_legal_message_ids() -> None:
    plan = PublishPlan(2, 2, 0, 0.5, False, 7, seed=1, id_prefix="p" * 115)  # order ids ...-p07: 128
    messages = generate_messages(plan)
    assert max(len(m.session_id) for m in messages) <= 128
    assert all(len(m.message_id) <= 128 for m in messages)
    assert len({m.message_id for m in messages}) == len(messages)
    _, results = feed(messages)
    assert [r.outcome.value for r in results] == [m.expected_outcome for m in messages]


def test_dry_run_json_form_keeps_non_utf8_bodies() -> None:
    messages = generate_messages(PublishPlan(2, 1, 0, 0, False, 7, seed=1))
    for m in messages:
        doc = json.loads(json.dumps(m.to_json()))
        if "body" in doc:
            assert doc["body"].encode() == m.body
        else:
            assert m.recipe == "non-utf8"
            assert traffic.base64.b64decode(doc["body_base64"]) == m.body


# --- sending, against a fake SDK client --------------------------------------------------------


class FakeBatch:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.messages: list[Any] = []

    def add_message(self, message: Any) -> None:
        from azure.servicebus.exceptions import MessageSizeExceededError

        if len(self.messages) >= self.limit:
            raise MessageSizeExceededError(message="batch full")
        self.messages.append(message)


class FakeSender:
    def __init__(self, limit: int, failures: list[Exception]) -> None:
        self.limit, self.failures = limit, failures
        self.sent: list[Any] = []

    def __enter__(self) -> FakeSender:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def create_message_batch(self) -> FakeBatch:
        return FakeBatch(self.limit)

    def send_messages(self, batch: FakeBatch) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(list(batch.messages))


class FakeClient:
    def __init__(self, sender: FakeSender) -> None:
        self.sender = sender
        self.queue: str | None = None

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def get_queue_sender(self, queue_name: str) -> FakeSender:
        self.queue = queue_name
        return self.sender


@pytest.fixture
def fake_sdk(monkeypatch: pytest.MonkeyPatch) -> Any:
    import azure.servicebus

    state: dict[str, Any] = {"limit": 1000, "failures": []}

    def from_connection_string(conn: str, **kwargs: Any) -> FakeClient:
        state["client"] = FakeClient(FakeSender(state["limit"], state["failures"]))
        return state["client"]

    monkeypatch.setattr(azure.servicebus.ServiceBusClient, "from_connection_string", from_connection_string)
    monkeypatch.setattr(sender.time, "sleep", lambda s: None)
    return state


CONN = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=secret"


def test_send_keeps_the_generated_order_in_batches(fake_sdk: Any) -> None:
    messages = generate_messages(PublishPlan(3, 3, 0.2, 0.2, True, 4, seed=9))
    fake_sdk["limit"] = 7  # the batch fills up before batch_size
    summary = send_messages(messages, connection_string=CONN, namespace=None, queue="q1", batch_size=10)
    sent = [m for batch in fake_sdk["client"].sender.sent for m in batch]
    assert [m.message_id for m in sent] == [m.message_id for m in messages]
    assert [m.session_id for m in sent] == [m.session_id for m in messages]
    assert all(len(b) <= 7 for b in fake_sdk["client"].sender.sent)
    assert summary.sent == len(messages) and summary.batches == len(fake_sdk["client"].sender.sent)
    assert summary.endpoint == "example.servicebus.windows.net" and "secret" not in json.dumps(
        summary.to_json()
    )
    assert fake_sdk["client"].queue == "q1"
    first = sent[0]
    assert first.content_type == "application/json" and bytes(b"".join(first.body)) == messages[0].body


def test_send_retries_transient_errors(fake_sdk: Any) -> None:
    from azure.servicebus.exceptions import ServiceBusServerBusyError

    fake_sdk["failures"] = [
        ServiceBusServerBusyError(message="busy"),
        ServiceBusServerBusyError(message="busy"),
    ]
    messages = generate_messages(PublishPlan(1, 1, 0, 0, False, 0, seed=1))
    summary = send_messages(messages, connection_string=CONN, namespace=None, queue="q", progress=False)
    assert summary.sent == len(messages) and summary.retries == 2


@pytest.mark.parametrize("error", ["ServiceBusAuthorizationError", "MessagingEntityNotFoundError"])
def test_send_gives_up_on_permanent_errors(fake_sdk: Any, error: str) -> None:
    from azure.servicebus import exceptions

    fake_sdk["failures"] = [getattr(exceptions, error)(message="denied")]
    messages = generate_messages(PublishPlan(1, 1, 0, 0, False, 0, seed=1))
    with pytest.raises(sender.PublishError, match=f"after 1 attempt.*{error}: denied"):
        send_messages(messages, connection_string=CONN, namespace=None, queue="q", progress=False)


def test_send_needs_a_connection() -> None:
    with pytest.raises(sender.PublishError, match="no Service Bus connection"):
        send_messages([], connection_string=None, namespace=None, queue="q")
