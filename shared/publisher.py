"""Test-order generator and sender: `orders publish`, scripts/publish_orders.py, the demo and the e2e tests.

`generate_messages(plan)` is pure and deterministic for a seed; every message carries what the app is
expected to do with it when the session's messages are processed in the order generated (sessions are
FIFO). `send_messages(...)` sends them with the Service Bus SDK, preserving that order.

Message ids (see docs/cli.md):
  step             `{order_id}:{sequence}`
  duplicate        `{order_id}:{sequence}:dup-1` -- identical body, DIFFERENT message id: the queue's
                   duplicate detection would silently drop an exact resend within its window, so only a
                   new message id reaches (and exercises) the app's own idempotency.
  poison           `{order_id}:{sequence}` when the body has them, else `{order_id}:{recipe}` (a dedicated
                   order id, `ord-0001-p01`, that no other message uses); the
                   conflicting duplicate uses `{order_id}:{sequence}:conflict-{n}` for the same reason.

Only the standard library is imported at module level (the CLI imports this to build its parser);
the SDK, azure-identity and rich are imported when sending or printing.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

SCHEMA = "order-step/v1"
CONTENT_TYPE = "application/json"
DEFAULT_QUEUE = "orders-with-sessions"
GENERATOR = "orders-publisher"
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
CENT = Decimal("0.01")
# The queue's duplicateDetectionHistoryTimeWindow (infra/modules/servicebus.bicep and
# dev/servicebus/Config.json): a message id seen within it is dropped by the broker without an error.
DUPLICATE_WINDOW = timedelta(minutes=10)
HISTORY_PATH = Path(".local") / "publish-history.json"  # relative to where `orders publish` runs

Kind = Literal["step", "duplicate", "poison"]

# Poison recipes, used round-robin: (name, expected quarantine reason).
POISON_RECIPES: tuple[tuple[str, str], ...] = (
    ("malformed-json", "malformed-json"),
    ("non-utf8", "malformed-json"),
    ("schema-violation", "schema-violation"),
    ("session-mismatch", "session-mismatch"),
    ("rule-violation", "rule-violation"),
    ("invalid-transition", "invalid-transition"),
    ("conflicting-duplicate", "conflicting-duplicate"),
)


class PublishUsageError(ValueError):
    """Bad publish arguments (exit code 2)."""

    exit_code = 2


class PublishError(RuntimeError):
    """Publishing failed (exit code 1)."""

    exit_code = 1


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

            from shared.contract import ID_PATTERN

            if not re.fullmatch(ID_PATTERN, f"{self.id_prefix}-ord-0001-01"):
                raise PublishUsageError("--id-prefix must be letters, digits, '.', '_' or '-'")


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


@dataclass(slots=True)
class PublishSummary:
    sent: int = 0
    batches: int = 0
    elapsed_s: float = 0.0
    retries: int = 0
    queue: str = ""
    endpoint: str = ""  # host name only: never the connection string
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def messages_per_second(self) -> float:
        return round(self.sent / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"messages_per_second": self.messages_per_second}


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
            message_id=f"{original.message_id}:dup-1",
            kind="duplicate",
            expected=Expected("duplicate"),
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
        ("order.placed", {"items": items, "currency": rng.choice(("EUR", "USD", "GBP"))}),
        ("payment.authorized", {"payment_id": f"pay-{oid}", "amount": str(total)}),
        ("inventory.reserved", {"reservation_id": f"res-{oid}"}),
        (
            "order.shipped",
            {
                "carrier": rng.choice(("DHL", "UPS", "PostNL")),
                "tracking_number": f"TRK{rng.randint(10**8, 10**9 - 1)}",
            },
        ),
        ("order.delivered", {}),
    ]
    if rng.random() < plan.cancel_rate:
        keep = rng.randint(1, 3)  # cancel after placed, paid or reserved
        steps = [
            *steps[:keep],
            ("order.cancelled", {"reason": rng.choice(("customer request", "fraud check", "out of stock"))}),
        ]
    return [
        _step_message(cust, cust, oid, seq, name, data, _time(number, seq))
        for seq, (name, data) in enumerate(steps, start=1)
    ]


def _time(order_number: int, sequence: int) -> datetime:
    return BASE_TIME + timedelta(minutes=order_number, seconds=sequence)


def _step_body(
    cust: str, oid: str, seq: int, step: str, data: dict[str, Any], at: datetime
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "customer_id": cust,
        "order_id": oid,
        "sequence": seq,
        "step": step,
        "occurred_at": at.isoformat(),
        "data": data,
    }


def _encode(doc: dict[str, Any]) -> bytes:
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
        message_id=f"{oid}:{seq}",
        body=_encode(_step_body(cust, oid, seq, step, data, at)),
        content_type=CONTENT_TYPE,
        application_properties=_props("step"),
        kind="step",
        expected=Expected("applied"),  # refined by _with_step_expectations
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
    quarantined = Expected("quarantined", reason)

    def poison(message_id: str, body: bytes, **ids: Any) -> OutgoingMessage:
        return OutgoingMessage(
            cust, message_id, body, CONTENT_TYPE, _props("poison", recipe), "poison", quarantined,
            recipe=recipe, **ids,
        )  # fmt: skip

    if recipe == "malformed-json":
        body = _encode(_step_body(cust, oid, 1, "order.placed", {}, at))[:-17]  # cut off mid-document
        yield ("any", 0.0), poison(f"{oid}:{recipe}", body)
    elif recipe == "non-utf8":
        yield (
            ("any", 0.0),
            poison(f"{oid}:{recipe}", b'{"schema": "order-step/v1", "note": "\xc3\x28\xff"}'),
        )
    elif recipe == "schema-violation":
        doc = _step_body(cust, oid, 1, "order.placed", {"items": [], "currency": "euro"}, at)
        yield ("any", 0.0), poison(f"{oid}:1", _encode(doc), order_id=oid, sequence=1, step="order.placed")
    elif recipe == "session-mismatch":
        other = next((x for x in customers if x != cust), f"{cust}-elsewhere")
        doc = _step_body(other, oid, 1, "order.placed", _order_placed_data(), at)
        yield ("any", 0.0), poison(f"{oid}:1", _encode(doc), order_id=oid, sequence=1, step="order.placed")
    elif recipe in ("rule-violation", "invalid-transition"):
        # A dedicated order, so the quarantined step blocks nothing that matters.
        placed = _step_message(cust, cust, oid, 1, "order.placed", _order_placed_data(), at)
        chain = [placed]
        if recipe == "rule-violation":
            bad = _step_body(
                cust, oid, 2, "payment.authorized", {"payment_id": f"pay-{oid}", "amount": "1.01"}, at
            )
            chain.append(
                poison(f"{oid}:2", _encode(bad), order_id=oid, sequence=2, step="payment.authorized")
            )
        else:
            cancel = _step_message(cust, cust, oid, 2, "order.cancelled", {"reason": "customer request"}, at)
            late = _step_body(
                cust, oid, 3, "order.shipped", {"carrier": "DHL", "tracking_number": "TRK1"}, at
            )
            chain += [
                cancel,
                poison(f"{oid}:3", _encode(late), order_id=oid, sequence=3, step="order.shipped"),
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
                f"{original.message_id}:conflict-{number + 1}",
                _encode(doc),
                order_id=original.order_id,
                sequence=original.sequence,
                step=original.step,
            ),
        )


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
                m = replace(m, expected=Expected("applied"))
            else:
                waiting.add(seq)
                m = replace(m, expected=Expected("parked"))
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
# sending

_RETRY_ATTEMPTS = 4


def send_messages(
    messages: Sequence[OutgoingMessage],
    *,
    connection_string: str | None,
    namespace: str | None,
    queue: str,
    batch_size: int = 100,
    progress: bool = True,
) -> PublishSummary:
    """Send in the given order, in batches of consecutive messages (so each session's order is kept),
    retrying transient failures. A resent batch is harmless: the queue drops repeated message ids."""
    if batch_size < 1:
        raise PublishUsageError("batch size must be at least 1")
    client, endpoint = open_client(connection_string, namespace)
    summary = PublishSummary(queue=queue, endpoint=endpoint, by_kind=dict(Counter(m.kind for m in messages)))
    started = time.perf_counter()
    messages = with_trace_context(messages, queue)
    from azure.core.exceptions import AzureError

    try:
        with (
            client,
            client.get_queue_sender(queue_name=queue) as sender,
            _progress(len(messages), progress) as tick,
        ):
            i = 0
            while i < len(messages):
                count = _send_batch(sender, messages[i : i + batch_size], summary)
                summary.sent += count
                summary.batches += 1
                i += count
                tick(count)
    except AzureError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PublishError(
            f"sending to {queue} at {endpoint} failed after {summary.sent} message(s): "
            f"{type(exc).__name__}: {first}"
        ) from exc
    summary.elapsed_s = round(time.perf_counter() - started, 3)
    return summary


def open_client(connection_string: str | None, namespace: str | None) -> tuple[Any, str]:
    """(ServiceBusClient, endpoint host for display) from a connection string, or from a namespace
    FQDN with DefaultAzureCredential. Shared by `orders publish`, `quarantine replay` and `dlq`."""
    if not connection_string and not namespace:
        raise PublishError(
            "no Service Bus connection: set ServiceBusConnection (or "
            "ServiceBusConnection__fullyQualifiedNamespace) or pass --connection / --namespace"
        )
    from azure.servicebus import ServiceBusClient

    if connection_string:
        return ServiceBusClient.from_connection_string(connection_string), endpoint_of(connection_string)
    from azure.identity import DefaultAzureCredential

    assert namespace is not None
    return ServiceBusClient(namespace, DefaultAzureCredential()), namespace


def with_trace_context(messages: Sequence[OutgoingMessage], queue: str) -> list[OutgoingMessage]:
    """Each message with its own producer span, whose W3C context goes into its application properties
    (`traceparent`, `Diagnostic-Id`): the function continues that trace (shared/tracing.py)."""
    from shared import tracing

    traced = []
    for m in messages:
        props = dict(m.application_properties)
        with tracing.publish_span(
            session_id=m.session_id, message_id=m.message_id, queue=queue, properties=props
        ):
            pass
        traced.append(replace(m, application_properties=props))
    return traced


def _send_batch(sender: Any, chunk: Sequence[OutgoingMessage], summary: PublishSummary) -> int:
    """Send as many of `chunk` (from its start) as fit in one batch; returns how many were sent."""
    from azure.servicebus.exceptions import MessageSizeExceededError, ServiceBusError

    for attempt in range(1, _RETRY_ATTEMPTS + 1):
        batch = sender.create_message_batch()
        count = 0
        for m in chunk:
            try:
                batch.add_message(to_servicebus_message(m))
            except MessageSizeExceededError:
                if count == 0:
                    raise PublishError(f"message {m.message_id} is larger than the queue allows") from None
                break
            count += 1
        try:
            sender.send_messages(batch)
            return count
        except ServiceBusError as exc:
            if attempt == _RETRY_ATTEMPTS or not _is_transient(exc):
                raise PublishError(
                    f"send failed after {attempt} attempt(s): {type(exc).__name__}: {exc}"
                ) from exc
            summary.retries += 1
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
    raise AssertionError("unreachable")


def _is_transient(exc: Exception) -> bool:
    from azure.servicebus.exceptions import (
        OperationTimeoutError,
        ServiceBusCommunicationError,
        ServiceBusConnectionError,
        ServiceBusServerBusyError,
    )

    transient = (
        OperationTimeoutError,
        ServiceBusCommunicationError,
        ServiceBusConnectionError,
        ServiceBusServerBusyError,
    )
    # Not the SDK's own `retryable` flag: it marks authorization failures retryable too.
    return isinstance(exc, transient)


def to_servicebus_message(m: OutgoingMessage) -> Any:
    from azure.servicebus import ServiceBusMessage

    return ServiceBusMessage(
        m.body,
        session_id=m.session_id,
        message_id=m.message_id,
        content_type=m.content_type,
        application_properties=dict(m.application_properties),  # type: ignore[arg-type]
    )


def endpoint_of(connection_string: str) -> str:
    """The host of `Endpoint=sb://host/` (for display; the key never leaves the connection string)."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            return value.strip().removeprefix("sb://").rstrip("/")
    return "?"


class _progress:
    """A rich progress bar on stderr when it is a terminal; otherwise a no-op."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda _n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self._bar.__enter__()
        task = self._bar.add_task("send", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


# --------------------------------------------------------------------------------------------------
# command line (shared by `orders publish` and scripts/publish_orders.py)

SendFn = Callable[..., PublishSummary]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--customers", type=int, default=3, metavar="N", help="customers = sessions (default 3)"
    )
    parser.add_argument("--orders-per-customer", type=int, default=2, metavar="M", help="default 2")
    parser.add_argument("--cancel-rate", type=float, default=0.0, metavar="F", help="0..1 (default 0)")
    parser.add_argument(
        "--duplicates", type=float, default=0.0, metavar="F",
        help="fraction of step messages re-sent with the same body and a new message id (default 0)",
    )  # fmt: skip
    parser.add_argument("--shuffle", action="store_true", help="shuffle messages within each session")
    parser.add_argument("--poison", type=int, default=0, metavar="K", help="poison messages (default 0)")
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    prefix = parser.add_mutually_exclusive_group()
    prefix.add_argument("--id-prefix", default="", metavar="P", help="prefix for customer and order ids")
    prefix.add_argument(
        "--run-id", metavar="R",
        help="a fresh set of ids for this run: R, or 'auto' for the time (r-HHMMSS), as the id prefix",
    )  # fmt: skip
    parser.add_argument(
        "--queue", default=None, metavar="Q", help=f"queue (default: ORDERS_QUEUE_NAME or {DEFAULT_QUEUE})"
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--namespace", metavar="FQDN", help="use DefaultAzureCredential against FQDN")
    target.add_argument(
        "--connection", metavar="STR", help="connection string (default: ServiceBusConnection)"
    )
    parser.add_argument("--batch-size", type=int, default=100, metavar="B", help="messages per batch")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the messages as JSON lines, send nothing"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_id_prefix(value: str | None, now: datetime | None = None) -> str:
    """`--run-id`: 'auto' -> `r-HHMMSS` (UTC), anything else as given (checked by PublishPlan.validate)."""
    if not value:
        return ""
    if value.strip().lower() == "auto":
        return "r-" + (now or datetime.now(UTC)).strftime("%H%M%S")
    return value.strip()


def plan_from_args(args: argparse.Namespace) -> PublishPlan:
    run_id = getattr(args, "run_id", None)
    if run_id is not None and not run_id.strip():
        raise PublishUsageError("--run-id must not be empty")
    plan = PublishPlan(
        customers=args.customers,
        orders_per_customer=args.orders_per_customer,
        cancel_rate=args.cancel_rate,
        duplicates=args.duplicates,
        shuffle=args.shuffle,
        poison=args.poison,
        seed=args.seed,
        id_prefix=run_id_prefix(run_id) or args.id_prefix,
    )
    plan.validate()
    if args.batch_size < 1:
        raise PublishUsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    return plan


def resolve_target(
    values: dict[str, str], *, connection: str | None, namespace: str | None, queue: str | None
) -> tuple[str | None, str | None, str]:
    """(connection string, namespace, queue): flags first, then ServiceBusConnection, then
    ServiceBusConnection__fullyQualifiedNamespace; queue from ORDERS_QUEUE_NAME."""
    if not connection and not namespace:
        connection = values.get("ServiceBusConnection") or None
        if not connection:
            namespace = values.get("ServiceBusConnection__fullyQualifiedNamespace") or None
    return connection, namespace, queue or values.get("ORDERS_QUEUE_NAME") or DEFAULT_QUEUE


@dataclass(frozen=True, slots=True)
class WindowOverlap:
    """Message ids of this run that the queue saw within its duplicate-detection window."""

    count: int
    last_sent: datetime


def _target_key(queue: str, connection: str | None, namespace: str | None) -> str:
    return f"{endpoint_of(connection) if connection else namespace}/{queue}"


def _load_history(path: Path, now: datetime) -> list[dict[str, Any]]:
    """Earlier runs still inside the window; an unreadable file counts as none (it is only a hint)."""
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    fresh = []
    for entry in runs if isinstance(runs, list) else []:
        try:
            sent = datetime.fromisoformat(entry["sent_at"])
        except (KeyError, TypeError, ValueError):
            continue
        if now - sent < DUPLICATE_WINDOW:
            fresh.append(entry)
    return fresh


def window_overlap(
    messages: Sequence[OutgoingMessage], target: str, *, now: datetime, path: Path = HISTORY_PATH
) -> WindowOverlap | None:
    """How many of these message ids this machine sent to `target` within DUPLICATE_WINDOW, if any."""
    ids = {m.message_id for m in messages}
    seen: set[str] = set()
    last: datetime | None = None
    for entry in _load_history(path, now):
        if entry.get("target") != target:
            continue
        hit = ids.intersection(entry.get("message_ids") or ())
        if hit:
            seen |= hit
            sent = datetime.fromisoformat(entry["sent_at"])
            last = sent if last is None or sent > last else last
    return WindowOverlap(len(seen), last) if seen and last is not None else None


def remember_sent(
    messages: Sequence[OutgoingMessage], target: str, *, now: datetime, path: Path = HISTORY_PATH
) -> None:
    """Record this run's ids (the window's worth of runs is kept) so the next run can warn."""
    runs = _load_history(path, now)
    runs.append(
        {"target": target, "sent_at": now.isoformat(), "message_ids": [m.message_id for m in messages]}
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(runs), encoding="utf-8")
    except OSError:
        pass  # a hint only: never fail a publish for it


def _warn_overlap(overlap: WindowOverlap, total: int, target: str, now: datetime) -> None:
    minutes = max(0, int((now - overlap.last_sent).total_seconds() // 60))
    ago = "less than a minute ago" if minutes == 0 else f"{minutes} min ago"
    sys.stderr.write(
        f"warning: {overlap.count} of these {total} message ids were sent to {target} {ago}; the queue's "
        f"duplicate detection ({int(DUPLICATE_WINDOW.total_seconds() // 60)} min) drops them without an "
        "error, so the app will not see them. For new orders add --run-id auto (or --id-prefix P).\n"
    )
    sys.stderr.flush()


def run(args: argparse.Namespace, *, send: SendFn | None = None) -> int:
    plan = plan_from_args(args)
    messages = generate_messages(plan)
    out = sys.stdout
    if args.dry_run:
        for m in messages:
            out.write(json.dumps(m.to_json()) + "\n")
        return 0
    from shared.settings import merged_environment

    connection, namespace, queue = resolve_target(
        merged_environment(), connection=args.connection, namespace=args.namespace, queue=args.queue
    )
    target = _target_key(queue, connection, namespace)
    now = datetime.now(UTC)
    overlap = window_overlap(messages, target, now=now) if (connection or namespace) else None
    if overlap is not None:
        _warn_overlap(overlap, len(messages), target, now)
    summary = (send or send_messages)(
        messages,
        connection_string=connection,
        namespace=namespace,
        queue=queue,
        batch_size=args.batch_size,
        progress=not (args.no_progress or args.json),
    )
    remember_sent(messages, target, now=now)
    outcomes = expected_outcomes(messages)
    if args.json:
        doc = summary.to_json() | {
            "plan": asdict(plan),
            "expected_outcomes": outcomes,
            "recently_sent_ids": overlap.count if overlap else 0,
        }
        out.write(json.dumps(doc) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"published to {summary.queue} @ {summary.endpoint}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    if plan.id_prefix:
        table.add_row("id prefix (run id)", plan.id_prefix)
    table.add_row("messages sent", str(summary.sent))
    if overlap is not None:
        table.add_row("  already sent < 10 min ago", f"{overlap.count} (dropped by the queue)")
    for kind, count in sorted(summary.by_kind.items()):
        table.add_row(f"  {kind}", str(count))
    table.add_row("sessions (customers)", str(plan.customers))
    table.add_row("orders", str(len(expected_final_state(messages))))
    table.add_row("batches", str(summary.batches))
    table.add_row("retries", str(summary.retries))
    table.add_row("elapsed", f"{summary.elapsed_s:.2f} s")
    table.add_row("rate", f"{summary.messages_per_second} msg/s")
    for outcome, count in outcomes.items():
        table.add_row(f"expected {outcome}", str(count))
    Console(file=out).print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    """scripts/publish_orders.py"""
    from shared.cli import OneLineArgumentParser, guarded

    parser = OneLineArgumentParser(prog="publish_orders.py", description="Publish test order-step messages.")
    add_arguments(parser)
    return guarded(lambda: run(parser.parse_args(argv)), prog="publish_orders.py")
