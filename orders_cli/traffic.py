"""The one generator of test traffic: `orders publish`, the demo, the tests and the benches.

`generate_messages(plan)` is pure and deterministic for a seed; every message carries what the app is
expected to do with it when the session's messages are processed in the order generated (sessions are
FIFO). orders_cli/sender.py sends them with the Service Bus SDK, preserving that order.

Message ids follow shared/message_ids.py (docs/contract.md, "Message ids"): the customer (session) id is
always part of it, because the queue's duplicate detection is queue-wide; any id over 128 characters is
hashed (`sha256-{hex}`).
  step             `{customer_id}:{order_id}:{sequence}`
  duplicate        `{customer_id}:{order_id}:{sequence}:dup-1` -- identical body, DIFFERENT message id: the
                   queue's duplicate detection would silently drop an exact resend within its window, so
                   only a new message id reaches (and exercises) the app's own idempotency.
  poison           `{customer_id}:{order_id}:{sequence}` when the body has them, else
                   `{customer_id}:{order_id}:{recipe}` (a dedicated order id, `ord-0001-p01`, that no other
                   message uses); the conflicting duplicate adds `:conflict-{n}` for the same reason.

Besides published traffic it builds what the tests and benches feed the processor directly: single step
bodies with fixed valid data (`step_doc`, `DEFAULT_DATA`), and `build_workload(...)`, a sized stream of
envelopes with duplicates and shuffled sessions (bench/, tests/reliability).
"""

from __future__ import annotations

import base64
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from shared.contract import CONTENT_TYPE, ID_PATTERN, MAX_ID_LENGTH, SCHEMA_ID, STEP_NAMES
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.envelope import SessionEnvelope
from shared.message_ids import composite_id, step_message_id

PLACED, PAID, RESERVED, SHIPPED, DELIVERED, CANCELLED = STEP_NAMES
HAPPY_PATH = (PLACED, PAID, RESERVED, SHIPPED, DELIVERED)
CANCELLED_PATH = (PLACED, PAID, CANCELLED)
GENERATOR = "orders-publisher"
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
CENT = Decimal("0.01")

Kind = Literal["step", "duplicate", "poison"]

# Poison recipes, used round-robin: (name, expected quarantine reason).
POISON_RECIPES: tuple[tuple[str, str], ...] = (
    ("malformed-json", QuarantineReason.MALFORMED_JSON),
    ("non-utf8", QuarantineReason.MALFORMED_JSON),
    ("schema-violation", QuarantineReason.SCHEMA_VIOLATION),
    ("session-mismatch", QuarantineReason.SESSION_MISMATCH),
    ("rule-violation", QuarantineReason.RULE_VIOLATION),
    ("invalid-transition", QuarantineReason.INVALID_TRANSITION),
    ("conflicting-duplicate", QuarantineReason.CONFLICTING_DUPLICATE),
)

# One set of valid step data (the payment is the order total) for bodies built one at a time.
DEFAULT_DATA: dict[str, dict[str, Any]] = {
    PLACED: {
        "items": [
            {"sku": "sku-1", "quantity": 2, "unit_price": "10.25"},
            {"sku": "sku-2", "quantity": 1, "unit_price": 5},
        ],
        "currency": "EUR",
    },
    PAID: {"payment_id": "pay-1", "amount": "25.50"},
    RESERVED: {"reservation_id": "res-1"},
    SHIPPED: {"carrier": "DHL", "tracking_number": "TRK-1"},
    DELIVERED: {},
    CANCELLED: {"reason": "customer asked"},
}


class PublishUsageError(ValueError):
    """Bad publish arguments (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class PublishPlan:
    customers: int = 3
    orders_per_customer: int = 2
    cancel_rate: float = 0.0
    duplicates: float = 0.0
    shuffle: bool = False
    poison: int = 0
    seed: int = 1
    # Prepended to customer and order ids (`{prefix}-cust-0001`) so runs against one queue/store don't
    # collide: equal message ids are dropped by duplicate detection, equal order ids meet in the store.
    id_prefix: str = ""

    def validate(self) -> None:
        """Raise PublishUsageError naming the first bad field."""
        if self.customers < 1:
            raise PublishUsageError(f"--customers must be at least 1, not {self.customers}")
        if self.orders_per_customer < 1:
            raise PublishUsageError(
                f"--orders-per-customer must be at least 1, not {self.orders_per_customer}"
            )
        for name, value in (("--cancel-rate", self.cancel_rate), ("--duplicates", self.duplicates)):
            if not 0.0 <= value <= 1.0:  # also rejects NaN
                raise PublishUsageError(f"{name} must be between 0 and 1, not {value}")
        if self.poison < 0:
            raise PublishUsageError(f"--poison must be 0 or more, not {self.poison}")
        if self.id_prefix:
            import re

            if not re.fullmatch(ID_PATTERN, f"{self.id_prefix}-ord-0001-01"):
                raise PublishUsageError(
                    f"--id-prefix must be letters, digits, '.', '_' or '-', at most {MAX_ID_LENGTH - 12} "
                    "characters"
                )
        # The longest ids this plan generates must be contract ids, or valid steps would be quarantined.
        longest = [
            customer_id(self, self.customers),
            order_id(self, self.customers, self.orders_per_customer),
        ]
        if self.poison:
            longest.append(order_id(self, self.customers, f"p{self.poison:02d}"))
        too_long = max(longest, key=len)
        if len(too_long) > MAX_ID_LENGTH:
            raise PublishUsageError(
                f"this plan's ids reach {len(too_long)} characters ({too_long[:24]}...); the contract allows "
                f"{MAX_ID_LENGTH}: use a shorter --id-prefix or fewer customers/orders"
            )


@dataclass(frozen=True, slots=True)
class Expected:
    """What the app should do with a message when it arrives (sessions deliver in send order).

    outcome: applied | parked | duplicate | quarantined; reason: the quarantine reason, else None.
    A parked step is applied later, when the gap before it fills.
    """

    outcome: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    session_id: str
    message_id: str
    body: bytes
    content_type: str
    application_properties: dict[str, Any]  # str, int, float or bool values
    kind: Kind
    expected: Expected
    order_id: str | None = None
    sequence: int | None = None
    step: str | None = None
    recipe: str | None = None  # poison recipe name

    @property
    def expected_outcome(self) -> str:
        return self.expected.outcome

    @property
    def expected_reason(self) -> str | None:
        return self.expected.reason

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (dry-run lines): body as text when it is UTF-8, else base64."""
        doc: dict[str, Any] = {
            "session_id": self.session_id,
            "message_id": self.message_id,
            "kind": self.kind,
            "expected_outcome": self.expected.outcome,
            "expected_reason": self.expected.reason,
            "order_id": self.order_id,
            "sequence": self.sequence,
            "step": self.step,
            "content_type": self.content_type,
            "application_properties": self.application_properties,
        }
        try:
            doc["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:
            doc["body_base64"] = base64.b64encode(self.body).decode("ascii")
        return doc


# --------------------------------------------------------------------------------------------------
# generation


def customer_id(plan: PublishPlan, number: int) -> str:
    return _prefixed(plan, f"cust-{number:04d}")


def order_id(plan: PublishPlan, customer_number: int, order_number: int | str) -> str:
    suffix = f"{order_number:02d}" if isinstance(order_number, int) else order_number
    return _prefixed(plan, f"ord-{customer_number:04d}-{suffix}")


def _prefixed(plan: PublishPlan, text: str) -> str:
    return f"{plan.id_prefix}-{text}" if plan.id_prefix else text


def generate_messages(plan: PublishPlan) -> list[OutgoingMessage]:
    """All messages of the plan in send order; deterministic for `plan.seed`."""
    plan.validate()
    rng = random.Random(plan.seed)
    sessions: dict[str, list[OutgoingMessage]] = {}
    customers = [customer_id(plan, c) for c in range(1, plan.customers + 1)]
    # Which customers get which poison recipe: spread round-robin from a random start.
    start = rng.randrange(plan.customers)
    poison_for: dict[int, list[int]] = {}
    for n in range(plan.poison):
        poison_for.setdefault((start + n) % plan.customers + 1, []).append(n)

    for c in range(1, plan.customers + 1):
        sessions[customers[c - 1]] = _session(rng, plan, c, customers, poison_for.get(c, []))
    return _interleave(rng, sessions)


def _session(
    rng: random.Random, plan: PublishPlan, c: int, customers: list[str], poison_numbers: list[int]
) -> list[OutgoingMessage]:
    """One customer's messages in send order."""
    cust = customers[c - 1]
    orders = [
        _order_steps(rng, plan, cust, order_id(plan, c, o), o) for o in range(1, plan.orders_per_customer + 1)
    ]
    if plan.shuffle:
        regular = [m for steps in orders for m in steps]
        rng.shuffle(regular)
    else:
        regular = _random_merge(rng, orders)
    # Extra messages get a sort key among the regular ones' keys 0..n-1 (ties: insertion order).
    n = len(regular)
    keyed: list[tuple[float, int, OutgoingMessage]] = [(float(i), i, m) for i, m in enumerate(regular)]

    def add(key: float, message: OutgoingMessage) -> None:
        keyed.append((key, len(keyed), message))

    def after(key: float) -> float:
        return key + (n - key) * (1.0 - rng.random())  # in (key, n]

    # duplicates: identical body, new message id, somewhere after the original
    for i in sorted(rng.sample(range(n), round(plan.duplicates * n))):
        original = regular[i]
        duplicate = replace(
            original,
            message_id=_variant_id(original, "dup-1"),
            kind="duplicate",
            expected=Expected(Outcome.DUPLICATE),
            application_properties=_props("duplicate"),
        )
        add(after(float(i)), duplicate)
    for number in poison_numbers:
        for (where, key), message in _poison(rng, plan, c, cust, customers, number, regular):
            if where == "any":
                key = rng.uniform(0, n)
            elif where == "after":
                key = after(key)
            add(key, message)
    keyed.sort(key=lambda item: (item[0], item[1]))
    return _with_step_expectations([m for _, _, m in keyed])


def _order_steps(
    rng: random.Random, plan: PublishPlan, cust: str, oid: str, number: int
) -> list[OutgoingMessage]:
    """A valid workflow: placed, paid, reserved, shipped, delivered (or cancelled after placed/paid/reserved).
    Prices are decimal strings; the payment is exactly the order total."""
    lines = [
        (f"SKU-{rng.randint(100, 999)}", rng.randint(1, 5), Decimal(rng.randint(50, 99_999)) * CENT)
        for _ in range(rng.randint(1, 3))
    ]
    items = [{"sku": sku, "quantity": qty, "unit_price": str(price)} for sku, qty, price in lines]
    total = sum((price * qty for _, qty, price in lines), Decimal("0.00")).quantize(CENT)
    steps: list[tuple[str, dict[str, Any]]] = [
        (PLACED, {"items": items, "currency": rng.choice(("EUR", "USD", "GBP"))}),
        (PAID, {"payment_id": f"pay-{oid}", "amount": str(total)}),
        (RESERVED, {"reservation_id": f"res-{oid}"}),
        (
            SHIPPED,
            {
                "carrier": rng.choice(("DHL", "UPS", "PostNL")),
                "tracking_number": f"TRK{rng.randint(10**8, 10**9 - 1)}",
            },
        ),
        (DELIVERED, {}),
    ]
    if rng.random() < plan.cancel_rate:
        keep = rng.randint(1, 3)  # cancel after placed, paid or reserved
        steps = [
            *steps[:keep],
            (CANCELLED, {"reason": rng.choice(("customer request", "fraud check", "out of stock"))}),
        ]
    return [
        _step_message(cust, cust, oid, seq, name, data, _time(number, seq))
        for seq, (name, data) in enumerate(steps, start=1)
    ]


def _time(order_number: int, sequence: int) -> datetime:
    return BASE_TIME + timedelta(minutes=order_number, seconds=sequence)


def step_doc(
    customer: str,
    order: str,
    sequence: int,
    step: str,
    data: dict[str, Any] | None = None,
    occurred_at: str | None = None,
) -> dict[str, Any]:
    """One order-step/v1 body as a document; `data` defaults to DEFAULT_DATA[step]."""
    return {
        "schema": SCHEMA_ID,
        "customer_id": customer,
        "order_id": order,
        "sequence": sequence,
        "step": step,
        "occurred_at": occurred_at or f"2026-11-01T10:{sequence // 60 % 60:02d}:{sequence % 60:02d}Z",
        "data": DEFAULT_DATA[step] if data is None else data,
    }


def _step_body(
    cust: str, oid: str, seq: int, step: str, data: dict[str, Any], at: datetime
) -> dict[str, Any]:
    return step_doc(cust, oid, seq, step, data, at.isoformat())


def encode(doc: dict[str, Any]) -> bytes:
    """Compact JSON bytes, as the publisher sends them."""
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _props(kind: str, recipe: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"generator": GENERATOR, "kind": kind}
    if recipe:
        props["poison"] = recipe
    return props


def _step_message(
    session: str, cust: str, oid: str, seq: int, step: str, data: dict[str, Any], at: datetime
) -> OutgoingMessage:
    return OutgoingMessage(
        session_id=session,
        message_id=step_message_id(session, oid, seq),
        body=encode(_step_body(cust, oid, seq, step, data, at)),
        content_type=CONTENT_TYPE,
        application_properties=_props("step"),
        kind="step",
        expected=Expected(Outcome.APPLIED),  # refined by _with_step_expectations
        order_id=oid,
        sequence=seq,
        step=step,
    )


def _poison(
    rng: random.Random,
    plan: PublishPlan,
    c: int,
    cust: str,
    customers: list[str],
    number: int,
    regular: list[OutgoingMessage],
) -> Iterable[tuple[tuple[str, float], OutgoingMessage]]:
    """The messages of poison `number` (0-based) for customer `c`, each with where it goes in the session:
    ("any", _), ("at", key) or ("after", key) -- a key of the session's regular steps (0..n)."""
    recipe, reason = POISON_RECIPES[number % len(POISON_RECIPES)]
    tag = f"p{number + 1:02d}"
    oid = order_id(plan, c, tag)
    at = _time(1000 + number, 1)
    quarantined = Expected(Outcome.QUARANTINED, reason)

    def poison(message_id: str, body: bytes, **ids: Any) -> OutgoingMessage:
        return OutgoingMessage(
            cust, message_id, body, CONTENT_TYPE, _props("poison", recipe), "poison", quarantined,
            recipe=recipe, **ids,
        )  # fmt: skip

    if recipe == "malformed-json":
        body = encode(_step_body(cust, oid, 1, PLACED, {}, at))[:-17]  # cut off mid-document
        yield ("any", 0.0), poison(composite_id(cust, oid, recipe), body)
    elif recipe == "non-utf8":
        yield (
            ("any", 0.0),
            poison(composite_id(cust, oid, recipe), b'{"schema": "order-step/v1", "note": "\xc3\x28\xff"}'),
        )
    elif recipe == "schema-violation":
        doc = _step_body(cust, oid, 1, PLACED, {"items": [], "currency": "euro"}, at)
        yield (
            ("any", 0.0),
            poison(step_message_id(cust, oid, 1), encode(doc), order_id=oid, sequence=1, step=PLACED),
        )
    elif recipe == "session-mismatch":
        other = next((x for x in customers if x != cust), f"{cust}-elsewhere")
        doc = _step_body(other, oid, 1, PLACED, _order_placed_data(), at)
        yield (
            ("any", 0.0),
            poison(step_message_id(cust, oid, 1), encode(doc), order_id=oid, sequence=1, step=PLACED),
        )
    elif recipe in ("rule-violation", "invalid-transition"):
        # A dedicated order, so the quarantined step blocks nothing that matters.
        placed = _step_message(cust, cust, oid, 1, PLACED, _order_placed_data(), at)
        chain = [placed]
        if recipe == "rule-violation":
            bad = _step_body(cust, oid, 2, PAID, {"payment_id": f"pay-{oid}", "amount": "1.01"}, at)
            chain.append(
                poison(step_message_id(cust, oid, 2), encode(bad), order_id=oid, sequence=2, step=PAID)
            )
        else:
            cancel = _step_message(cust, cust, oid, 2, CANCELLED, {"reason": "customer request"}, at)
            late = _step_body(cust, oid, 3, SHIPPED, {"carrier": "DHL", "tracking_number": "TRK1"}, at)
            chain += [
                cancel,
                poison(step_message_id(cust, oid, 3), encode(late), order_id=oid, sequence=3, step=SHIPPED),
            ]
        keys = sorted(rng.uniform(0, len(regular)) for _ in chain)
        for key, message in zip(keys, chain, strict=True):  # ascending keys: the chain stays in order
            yield ("at", key), message
    elif recipe == "conflicting-duplicate":
        index = rng.randrange(len(regular))
        original = regular[index]
        doc = json.loads(original.body)
        doc["data"]["note"] = "conflicting resend"  # kept and hashed: different content
        yield (
            ("after", float(index)),
            poison(
                _variant_id(original, f"conflict-{number + 1}"),
                encode(doc),
                order_id=original.order_id,
                sequence=original.sequence,
                step=original.step,
            ),
        )


def _variant_id(original: OutgoingMessage, variant: str) -> str:
    """Another message id for the same step (a duplicate or a conflicting resend of `original`)."""
    assert original.order_id is not None and original.sequence is not None
    return composite_id(original.session_id, original.order_id, original.sequence, variant)


def _order_placed_data() -> dict[str, Any]:
    # unit price 10.00 x 1: total 10.00 (the rule-violation recipe pays 1.01)
    return {"items": [{"sku": "SKU-POISON", "quantity": 1, "unit_price": "10.00"}], "currency": "EUR"}


def _random_merge(rng: random.Random, lists: Sequence[list[OutgoingMessage]]) -> list[OutgoingMessage]:
    """Interleave lists at random, keeping each list's own order."""
    tags = [i for i, items in enumerate(lists) for _ in items]
    rng.shuffle(tags)
    cursors = [0] * len(lists)
    merged = []
    for i in tags:
        merged.append(lists[i][cursors[i]])
        cursors[i] += 1
    return merged


def _interleave(rng: random.Random, sessions: dict[str, list[OutgoingMessage]]) -> list[OutgoingMessage]:
    return _random_merge(rng, list(sessions.values()))


def _with_step_expectations(messages: list[OutgoingMessage]) -> list[OutgoingMessage]:
    """Applied or parked, for each step in session order (poison and duplicates are already decided)."""
    next_seq: dict[str, int] = {}
    parked: dict[str, set[int]] = {}
    out = []
    for m in messages:
        seq = m.sequence
        if m.kind == "step" and m.order_id is not None and seq is not None:
            expected = next_seq.get(m.order_id, 1)
            waiting = parked.setdefault(m.order_id, set())
            if seq == expected:
                expected += 1
                while expected in waiting:
                    waiting.discard(expected)
                    expected += 1
                next_seq[m.order_id] = expected
                m = replace(m, expected=Expected(Outcome.APPLIED))
            else:
                waiting.add(seq)
                m = replace(m, expected=Expected(Outcome.PARKED))
        out.append(m)
    return out


def expected_final_state(messages: Iterable[OutgoingMessage]) -> dict[tuple[str, str], list[str]]:
    """(customer, order) -> the step names the order must end with, in applied order."""
    steps: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for m in messages:
        if m.kind == "step" and m.order_id and m.sequence is not None and m.step:
            steps.setdefault((m.session_id, m.order_id), []).append((m.sequence, m.step))
    return {key: [name for _, name in sorted(items)] for key, items in sorted(steps.items())}


def expected_outcomes(messages: Iterable[OutgoingMessage]) -> dict[str, int]:
    """Counts of expected outcomes, quarantines split by reason (`quarantined:rule-violation`)."""
    counts: Counter[str] = Counter()
    for m in messages:
        counts[m.expected.outcome + (f":{m.expected.reason}" if m.expected.reason else "")] += 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------------------------------
# workloads: envelopes fed straight to the processor (bench/, tests/reliability)


@dataclass(slots=True)
class Workload:
    messages: list[SessionEnvelope]
    # (customer, order) -> the steps that must end applied, in sequence order
    expected: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def sessions(self) -> int:
        return len({c for c, _ in self.expected})


def build_workload(
    messages: int,
    sessions: int,
    *,
    duplicate_rate: float = 0.05,
    shuffle: bool = True,
    cancel_rate: float = 0.1,
    seed: int = 1,
) -> Workload:
    """About `messages` messages (exactly, counting duplicates) spread evenly over `sessions`: orders of
    the happy or the cancelled path, exact duplicates (same content, a new broker message), each session's
    messages shuffled (out-of-order steps park and are released), sessions interleaved as a broker would."""
    rng = random.Random(seed)
    unique_target = max(1, round(messages / (1 + duplicate_rate)))
    per_session: dict[str, list[SessionEnvelope]] = {}
    expected: dict[tuple[str, str], list[str]] = {}
    uniques: list[SessionEnvelope] = []
    made, order_no = 0, 0
    customers = [f"cust-{i:05d}" for i in range(sessions)]
    while made < unique_target:
        customer = customers[order_no % sessions]
        order = f"ord-{order_no:07d}"
        order_no += 1
        path: tuple[str, ...] = CANCELLED_PATH if rng.random() < cancel_rate else HAPPY_PATH
        path = path[: min(len(path), unique_target - made)]
        expected[(customer, order)] = list(path)
        for seq, name in enumerate(path, start=1):
            env = SessionEnvelope(
                body=encode(step_doc(customer, order, seq, name)),
                session_id=customer,
                message_id=step_message_id(customer, order, seq),
            )
            per_session.setdefault(customer, []).append(env)
            uniques.append(env)
            made += 1
    dups = messages - made
    for _ in range(dups):
        original = rng.choice(uniques)
        per_session[original.session_id].append(original)
    queues: list[list[SessionEnvelope]] = []
    for customer in customers:
        items = per_session.get(customer, [])
        if shuffle:
            rng.shuffle(items)
        queues.append(items)
    # interleave sessions the way a broker with many session receivers would: random session each time
    out: list[SessionEnvelope] = []
    live = [q[::-1] for q in queues if q]
    while live:
        i = rng.randrange(len(live))
        env = live[i].pop()
        out.append(replace(env, sequence_number=len(out) + 1))
        if not live[i]:
            live.pop(i)
    return Workload(out, expected, dups)


def applied_by_order(ledgers: list[Any]) -> dict[tuple[str, str], list[str]]:
    return {(ledger.customer_id, ledger.order_id): [a.step for a in ledger.applied] for ledger in ledgers}


def check_applied(ledgers: list[Any], workload: Workload) -> list[str]:
    """Problems (empty when every order ended exactly as published: each step once, in order)."""
    problems: list[str] = []
    got = applied_by_order(ledgers)
    for key, steps in workload.expected.items():
        if got.get(key) != steps:
            problems.append(f"{key}: applied {got.get(key)} expected {steps}")
    for key in got.keys() - workload.expected.keys():
        problems.append(f"{key}: unexpected order")
    for ledger in ledgers:
        seqs = [a.sequence for a in ledger.applied]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{ledger.order_id}: applied sequences {seqs}")
    return problems
