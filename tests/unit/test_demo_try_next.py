"""`make demo`'s "Try next" at 80 columns: each command within 80 columns, split only between words with a
shell `\\` continuation (never mid-path), the first-incident `orders why` among them, and every command
whole once its continuation is joined (tests/e2e/test_readme.py runs them)."""

from __future__ import annotations

import importlib.util
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rich.console import Console

from orders_cli.traffic import PublishPlan, generate_messages
from shared.engine.records import QuarantineRecord

REPO_ROOT = Path(__file__).resolve().parents[2]


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", REPO_ROOT / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Two quarantine ids of the shape the stores make (24 hex digits): ids, not secrets.
RULE_VIOLATION_ID = "e37f5269780353e9a782090b"  # pragma: allowlist secret
OTHER_ID = "a8f8d04bde10b2bfa706f524"  # pragma: allowlist secret


def record(reason: str, order: str | None, session: str) -> QuarantineRecord:
    return QuarantineRecord(
        id=RULE_VIOLATION_ID if reason == "rule-violation" else OTHER_ID,
        session_id=session, reason=reason, detail="d", message_id=f"{order}:2", body="{}",
        body_encoding="utf-8", metadata={}, quarantined_at=datetime.now(UTC), stream_key=order, sequence=2,
    )  # fmt: skip


def test_try_next_fits_80_columns_and_starts_the_first_incident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    demo = _demo()
    out = io.StringIO()
    console = Console(file=out, width=80, highlight=False)
    messages = generate_messages(PublishPlan(customers=2, orders_per_customer=1, poison=7, seed=3))
    report: dict[str, Any] = {"orders": [{"order_id": "ord-0001-01", "state": "DELIVERED"}]}
    records = [
        record("rule-violation", "ord-0006-p05", "cust-0006"),
        record("invalid-transition", "ord-0007-p06", "cust-0007"),
    ]
    db = tmp_path / ".local" / "demo" / "orders.db"
    demo._next_steps(console, messages, report, records, db, None)
    text = out.getvalue()
    for line in text.splitlines():
        assert len(line.rstrip()) <= 80, f"wider than 80 columns: {line!r}"
    section = text.split("Try next", 1)[1]
    joined = re.sub(r" \\\n\s+", " ", section)
    commands = re.findall(r"^  \$ (.+)$", joined, re.M)
    store = "sqlite:///.local/demo/orders.db"
    assert commands[:2] == [
        f"orders status --store {store}",
        f"orders why ord-0006-p05 --customer cust-0006 --store {store}",
    ]
    assert f"orders quarantine show a8f8d04bde10b2bfa706f524 --store {store}" in commands
    for line in section.splitlines():  # a split is between words: never inside the path or an id
        if "sqlite" in line or "orders.db" in line:
            assert f"--store {store}" in line, line
