"""Test helpers for the accounts workflow (shared/examples/accounts.py): bodies and envelopes."""

from __future__ import annotations

import json
from typing import Any

from shared.envelope import SessionEnvelope
from shared.examples.accounts import ACCOUNTS, OPS, Account, Accounts, Operation

__all__ = ["ACCOUNTS", "OPS", "Account", "Accounts", "Operation", "account_body", "account_envelope"]


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
        message_id=f"{owner}:{account}:{seq}",
    )
