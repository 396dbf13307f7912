"""Deterministic order-step workloads for the benchmarks and the reliability tests.

A workload is a list of SessionEnvelopes: each session (customer) has orders of the happy path
(placed, paid, reserved, shipped, delivered) or a cancelled path, a share of exact duplicates (same
content, a new broker message), and the messages of a session shuffled (so out-of-order steps park
and are released) while sessions interleave the way a broker would deliver them.

`expected_applied(workload)` is what every order's applied steps must end as.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from shared.envelope import SessionEnvelope
from tests.support.builders import DEFAULT_DATA

HAPPY_PATH = ("order.placed", "payment.authorized", "inventory.reserved", "order.shipped", "order.delivered")
CANCELLED_PATH = ("order.placed", "payment.authorized", "order.cancelled")

_DATA = DEFAULT_DATA  # one set of valid step data for tests and benchmarks


def step_body(
    customer: str, order: str, sequence: int, step: str, data: dict[str, Any] | None = None
) -> bytes:
    doc = {
        "schema": "order-step/v1",
        "customer_id": customer,
        "order_id": order,
        "sequence": sequence,
        "step": step,
        "occurred_at": f"2026-11-01T10:{sequence // 60:02d}:{sequence % 60:02d}Z",
        "data": _DATA[step] if data is None else data,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(slots=True)
class Workload:
    messages: list[SessionEnvelope]
    # (customer, order) -> the steps that must end applied, in sequence order
    expected: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def sessions(self) -> int:
        return len({c for c, _ in self.expected})


def build(
    messages: int,
    sessions: int,
    *,
    duplicate_rate: float = 0.05,
    shuffle: bool = True,
    cancel_rate: float = 0.1,
    seed: int = 1,
) -> Workload:
    """About `messages` messages (exactly, counting duplicates) spread evenly over `sessions`."""
    rng = random.Random(seed)
    unique_target = max(1, round(messages / (1 + duplicate_rate)))
    per_session: dict[str, list[SessionEnvelope]] = defaultdict(list)
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
                body=step_body(customer, order, seq, name),
                session_id=customer,
                message_id=f"{order}:{seq}",
            )
            per_session[customer].append(env)
            uniques.append(env)
            made += 1
    dups = messages - made
    for _ in range(dups):
        original = rng.choice(uniques)
        per_session[original.session_id].append(original)
    number = 0
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
        number += 1
        out.append(
            SessionEnvelope(
                body=env.body,
                session_id=env.session_id,
                message_id=env.message_id,
                sequence_number=number,
            )
        )
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
