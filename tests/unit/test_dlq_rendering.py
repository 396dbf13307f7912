"""`orders dlq list|show|resubmit` at 80 columns (docs/cli.md): no line wider, no id or reason cut short
(stacked instead), the printed `resubmit with:` command whole once its continuation is joined."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orders_cli import dlq as cli_dlq
from orders_cli.cli import main as orders
from shared.dlq import DeadLetter, resubmit_id
from tests.unit.test_dlq import FakeBus, letter

UUID_ID = "e3372289-5d3a-5b9e-9c9f-0f1e2d3c4b5a"  # a resubmitted message's id: the widest a DLQ holds


@pytest.fixture(autouse=True)
def eighty_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> list[DeadLetter]:
    letters = [
        letter(1, UUID_ID, session_id="run-1-cust-0001"),
        letter(2, "run-1-ord-0001-01:2:conflict-1", session_id="run-1-cust-0002",
               reason="TTLExpiredException", description="The message expired and was dead lettered " * 3),
        letter(3, "run-1-ord-0002-p05:2", session_id=None),  # skipped: no session id
        letter(1234567, "run-1-ord-0003-01:4", reason="SessionLockLostOnLastDeliveryAttempt"),
    ]  # fmt: skip
    fake = FakeBus(letters, queue="orders-with-sessions")

    @contextmanager
    def connect(_args: Any) -> Iterator[FakeBus]:
        yield fake

    monkeypatch.setattr(cli_dlq, "connect", connect)
    return letters


def output(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    assert orders(list(argv)) == code
    out = capsys.readouterr().out
    for line in out.splitlines():
        assert len(line.rstrip()) <= 80, f"wider than 80 columns: {line!r}"
    assert "…" not in out, "something was cut short"
    return out


def words(out: str) -> set[str]:
    return set(out.split())


def test_list_shows_every_id_session_and_reason_whole(
    capsys: pytest.CaptureFixture[str], wide: list[DeadLetter]
) -> None:
    out = output(capsys, "dlq", "list")
    for m in wide:
        assert {m.message_id, m.reason, f"seq:{m.sequence_number}"} <= words(out), m
        if m.session_id:
            assert m.session_id in words(out)
    joined = re.sub(r" \\\n\s+", " ", out)
    assert "orders dlq resubmit --all | --reason R | ID ..." in joined
    out = output(capsys, "dlq", "list", "--queue", "orders-with-sessions")
    assert "orders dlq resubmit --all | --reason R | ID ... --queue orders-with-sessions" in re.sub(
        r" \\\n\s+", " ", out
    )


def test_resubmit_dry_run_shows_old_and_new_ids_whole(
    capsys: pytest.CaptureFixture[str], wide: list[DeadLetter]
) -> None:
    out = output(capsys, "dlq", "resubmit", "--all", "--dry-run")
    for m in wide:
        assert {m.message_id, resubmit_id(m), m.reason} <= words(out), m
    assert "no session id: the orders queue requires one" in " ".join(out.split())
    assert "would-resubmit" in words(out) and "skipped" in words(out)


def test_a_failed_resubmit_lists_what_stayed_whole(
    capsys: pytest.CaptureFixture[str], wide: list[DeadLetter], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = output(capsys, "dlq", "resubmit", UUID_ID, "seq:3")
    assert "not resubmitted (still in the DLQ)" in out and "run-1-ord-0002-p05:2" in words(out)


def test_show_fits_80_columns(capsys: pytest.CaptureFixture[str], wide: list[DeadLetter]) -> None:
    out = output(capsys, "dlq", "show", "seq:2")
    head = out.split("\nbody")[0]
    assert {"run-1-ord-0001-01:2:conflict-1", "TTLExpiredException", resubmit_id(wide[1])} <= words(head)


def test_an_id_wider_than_the_terminal_is_never_cut(capsys: pytest.CaptureFixture[str]) -> None:
    long_id = "x" * 100
    fake = FakeBus([replace(letter(5), message_id=long_id)])

    @contextmanager
    def connect(_args: Any) -> Iterator[FakeBus]:
        yield fake

    cli_dlq.connect, saved = connect, cli_dlq.connect
    try:
        assert orders(["dlq", "list"]) == 0
    finally:
        cli_dlq.connect = saved
    out = capsys.readouterr().out
    assert "…" not in out and all(len(line.rstrip()) <= 80 for line in out.splitlines())
    folded = "".join(line.strip().removeprefix("seq:5").strip() for line in out.splitlines() if "xxx" in line)
    assert folded == long_id  # wider than the line: folded onto the next one, every character kept
