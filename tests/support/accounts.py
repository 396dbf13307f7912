"""A second, deliberately small workflow: account balances with deposit/withdraw and an overdraft rule.

It exists to prove the engine/workflow seam: the engine and every store run it without knowing it, and
nothing here imports the order workflow. Body (JSON):
  {"owner": "alice", "account": "acc-1", "seq": 1, "op": "open", "overdraft": 50}
  {"owner": "alice", "account": "acc-1", "seq": 2, "op": "deposit", "amount": 100}
  ... "op": "withdraw" (refused when the balance would fall below -overdraft), "op": "close" (terminal)
Session = owner, stream = account.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.engine.ledger import Ledger
from shared.engine.outcomes import QuarantineReason
from shared.engine.workflow import ContractError, Step, StepRefused
from shared.envelope import SessionEnvelope

OPS = ("open", "deposit", "withdraw", "close")


@dataclass(frozen=True, slots=True)
class Account:
    owner: str
    account: str
    opened: bool = False
    closed: bool = False
    balance: int = 0  # cents
    overdraft: int = 0  # how far below zero the balance may go


@dataclass(frozen=True, slots=True)
class Operation:
    op: str
    amount: int


class Accounts:
    """`Workflow[Account, Operation]`, using the engine's plain Ledger (no subclass needed)."""

    def parse(self, body: bytes) -> Step[Operation]:
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ContractError(QuarantineReason.MALFORMED_JSON, "body is not JSON") from None
        if not isinstance(doc, dict) or set(doc) - {"owner", "account", "seq", "op", "amount", "overdraft"}:
            raise ContractError(QuarantineReason.SCHEMA_VIOLATION, "not an account operation")
        owner, account, seq, op = doc.get("owner"), doc.get("account"), doc.get("seq"), doc.get("op")
        amount = doc.get("amount", doc.get("overdraft", 0))
        if not (isinstance(owner, str) and owner and isinstance(account, str) and account):
            raise ContractError(QuarantineReason.SCHEMA_VIOLATION, "owner and account are required")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ContractError(QuarantineReason.SCHEMA_VIOLATION, "seq must be a positive integer")
        if op not in OPS:
            raise ContractError(QuarantineReason.SCHEMA_VIOLATION, f"op must be one of {', '.join(OPS)}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ContractError(QuarantineReason.SCHEMA_VIOLATION, "amount must be a whole number >= 0")
        canonical = json.dumps([owner, account, seq, op, amount]).encode()
        return Step(
            session_key=owner,
            stream_key=account,
            sequence=seq,
            name=f"account.{op}",
            content_hash=hashlib.sha256(canonical).hexdigest(),
            payload=Operation(op, amount),
        )

    def initial_state(self, session_id: str, stream_key: str) -> Account:
        return Account(owner=session_id, account=stream_key)

    def apply(self, state: Account, step: Step[Operation]) -> Account:
        op = step.payload
        if op.op == "open":
            if state.opened:
                raise StepRefused(QuarantineReason.INVALID_TRANSITION, "account is already open")
            return replace(state, opened=True, overdraft=op.amount)
        if not state.opened:
            raise StepRefused(QuarantineReason.INVALID_TRANSITION, f"{op.op} before open")
        if op.op == "deposit":
            return replace(state, balance=state.balance + op.amount)
        if op.op == "withdraw":
            if state.balance - op.amount < -state.overdraft:
                raise StepRefused(QuarantineReason.RULE_VIOLATION, "withdrawal exceeds the overdraft limit")
            return replace(state, balance=state.balance - op.amount)
        return replace(state, closed=True)

    def is_terminal(self, state: Account) -> bool:
        return state.closed

    def status(self, state: Account) -> str:
        return "CLOSED" if state.closed else "OPEN" if state.opened else "NEW"

    def new_ledger(self, session_id: str, stream_key: str, state: Account) -> Ledger[Account]:
        return Ledger(session_id, stream_key, state)

    def state_to_document(self, state: Account) -> dict[str, Any]:
        return {
            "owner": state.owner,
            "account": state.account,
            "opened": state.opened,
            "closed": state.closed,
            "balance": state.balance,
            "overdraft": state.overdraft,
        }

    def state_from_document(self, doc: Mapping[str, Any]) -> Account:
        return Account(**doc)


ACCOUNTS = Accounts()


def account_body(
    seq: int, op: str, amount: int = 0, *, owner: str = "alice", account: str = "acc-1"
) -> bytes:
    key = "overdraft" if op == "open" else "amount"
    doc: dict[str, Any] = {"owner": owner, "account": account, "seq": seq, "op": op}
    if op != "close":
        doc[key] = amount
    return json.dumps(doc).encode()


def account_envelope(
    seq: int,
    op: str,
    amount: int = 0,
    *,
    owner: str = "alice",
    account: str = "acc-1",
    session: str | None = None,
) -> SessionEnvelope:
    return SessionEnvelope(
        body=account_body(seq, op, amount, owner=owner, account=account),
        session_id=owner if session is None else session,
        message_id=f"{account}:{seq}",
    )
