"""The second workflow, shipped as an example: account balances (ORDERS_WORKFLOW=accounts).

It proves the engine/workflow seam (the engine, every store, the service, the CLI and the local stack run
it without knowing it; nothing here imports the order workflow) and is the starting point docs/adapting.md
copies. Body (JSON, one `account-op/v1` operation):

  {"owner": "alice", "account": "acc-1", "seq": 1, "op": "open", "overdraft": 50}
  {"owner": "alice", "account": "acc-1", "seq": 2, "op": "deposit", "amount": 100}
  {"owner": "alice", "account": "acc-1", "seq": 3, "op": "withdraw", "amount": 30}
  {"owner": "alice", "account": "acc-1", "seq": 4, "op": "close"}

Session = owner, stream = account, amounts in whole cents. Its quarantine rules (details never echo input
values):
  - not JSON -> malformed-json; missing/unknown fields, a bad id, seq or amount -> schema-violation
  - any operation before `open`, or `open` twice -> invalid-transition
  - a withdrawal below the overdraft limit -> rule-violation
  - closing while the balance is positive (withdraw it first) -> rule-violation
  - anything after `close` (terminal) -> the engine's `stream-closed`
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.engine.ledger import Ledger
from shared.engine.outcomes import QuarantineReason
from shared.engine.workflow import ContractError, Step, StepRefused

OPS = ("open", "deposit", "withdraw", "close")
FIELDS = frozenset({"owner", "account", "seq", "op", "amount", "overdraft"})
# Ids become storage keys and message ids (`{owner}:{account}:{seq}` stays under Service Bus's 128).
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}"
_ID = re.compile(ID_PATTERN)
MAX_AMOUNT = 10**12  # cents
MAX_SEQ = 1_000_000


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


def _whole(value: object, upper: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= upper


class Accounts:
    """`Workflow[Account, Operation]` and `AppWorkflow`, using the engine's plain Ledger."""

    def parse(self, body: bytes) -> Step[Operation]:
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ContractError(QuarantineReason.MALFORMED_JSON, "body is not JSON") from None
        if not isinstance(doc, dict) or not set(doc) <= FIELDS:
            raise ContractError(
                QuarantineReason.SCHEMA_VIOLATION, f"not an account operation ({sorted(FIELDS)})"
            )
        owner, account, seq, op = doc.get("owner"), doc.get("account"), doc.get("seq"), doc.get("op")
        if not all(isinstance(x, str) and _ID.fullmatch(x) for x in (owner, account)):
            raise ContractError(
                QuarantineReason.SCHEMA_VIOLATION, f"owner and account must match {ID_PATTERN}"
            )
        if not _whole(seq, MAX_SEQ) or seq == 0:
            raise ContractError(QuarantineReason.SCHEMA_VIOLATION, f"seq must be a whole number 1-{MAX_SEQ}")
        if op not in OPS:
            raise ContractError(QuarantineReason.SCHEMA_VIOLATION, f"op must be one of {', '.join(OPS)}")
        amount = doc.get("overdraft" if op == "open" else "amount", 0)
        extra = "amount" if op == "open" else "overdraft"
        if extra in doc or (op == "close" and "amount" in doc):
            raise ContractError(
                QuarantineReason.SCHEMA_VIOLATION, f"{op} takes no {extra if extra in doc else 'amount'}"
            )
        if not _whole(amount, MAX_AMOUNT):
            raise ContractError(
                QuarantineReason.SCHEMA_VIOLATION, f"amount must be whole cents 0-{MAX_AMOUNT}"
            )
        assert isinstance(owner, str) and isinstance(account, str) and isinstance(seq, int)
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
        if state.balance > 0:
            raise StepRefused(QuarantineReason.RULE_VIOLATION, "close refused: the balance is positive")
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

    # --- AppWorkflow: what the app shows and sends ---
    def view(self, state: Account) -> dict[str, Any]:
        return {"balance_cents": state.balance, "overdraft_cents": state.overdraft}

    def message_id(self, step: Step[Operation]) -> str:
        return f"{step.session_key}:{step.stream_key}:{step.sequence}"

    def examples(self, session_id: str, stream_key: str) -> list[bytes]:
        """One account's bodies from open to close, in sequence (smoke tests, docs/adapting.md)."""
        ops: list[dict[str, Any]] = [
            {"op": "open", "overdraft": 0},
            {"op": "deposit", "amount": 100},
            {"op": "withdraw", "amount": 100},
            {"op": "close"},
        ]
        return [
            json.dumps({"owner": session_id, "account": stream_key, "seq": seq, **op}).encode()
            for seq, op in enumerate(ops, start=1)
        ]


ACCOUNTS = Accounts()
