"""docs/adapting.md "First run", as the guide says it: its settings (the exported block), its commands (the
`orders` lines, run verbatim through the console script's entry point), the embedded emulator standing in
for `make emulator` and the local host running function_app.py for `make host`, and its expected outcomes
and quarantine reasons (the tables under the commands) checked against `orders status --json` and
`orders quarantine list --json`. The accounts workflow runs end to end without a line of test code of its
own: if the guide or the app changes, this fails.

What the README's setup provides is given here too: ServiceBusConnection for the emulator (the copied
local.settings.json.example) and a fresh queue with the shipped queue's properties."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.host import LocalHost
from orders_cli import cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = REPO_ROOT / "docs" / "adapting.md"
FAST_HOST = {"sessionIdleTimeout": "00:00:00.5"}


def guide_block(name: str) -> str:
    """The fenced block or table right after `<!-- adapting-test: NAME -->`."""
    text = GUIDE.read_text(encoding="utf-8")
    marker = f"<!-- adapting-test: {name} -->\n"
    assert text.count(marker) == 1, f"docs/adapting.md must mark exactly one {name!r} block"
    rest = text.split(marker, 1)[1]
    fenced = re.match(r"```\w*\n(.*?)```", rest, re.DOTALL)
    if fenced:
        return fenced.group(1)
    return rest.split("\n\n", 1)[0]


def guide_settings() -> dict[str, str]:
    settings = {}
    for line in guide_block("settings").splitlines():
        match = re.fullmatch(r"export (\w+)=(\S+)", line.strip())
        assert match, f"the settings block holds only `export NAME=VALUE` lines, not {line!r}"
        settings[match.group(1)] = match.group(2)
    return settings


def guide_commands() -> list[list[str]]:
    commands = [shlex.split(line, comments=True) for line in guide_block("commands").splitlines()]
    commands = [c for c in commands if c]
    assert all(c[0] == "orders" for c in commands), commands
    return commands


def guide_table(name: str) -> dict[str, int]:
    rows = [line.strip("|").split("|") for line in guide_block(name).splitlines()[2:]]
    return {key.strip(): int(value) for key, value in rows}


@pytest.fixture
def guide_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A shell in a checkout with the guide's exports: the repository's examples, no local.settings.json."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "examples").symlink_to(REPO_ROOT / "examples")
    monkeypatch.chdir(work)
    settings = guide_settings()
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield settings


def orders(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv[1:])
    out, err = capsys.readouterr()
    assert code == 0, f"{shlex.join(argv)} failed: {err}"
    return out


def test_the_accounts_workflow_runs_end_to_end_as_the_guide_says(
    servicebus_emulator: Any,
    fresh_queue: Any,
    guide_shell: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert guide_shell["ORDERS_WORKFLOW"] == "accounts"
    queue = fresh_queue(
        requires_session=True, requires_duplicate_detection=True, max_delivery_count=10, lock_duration="PT30S"
    )
    # what the copied local.settings.json.example gives every terminal (here: this emulator, this queue)
    monkeypatch.setenv("ServiceBusConnection", servicebus_emulator.connection_string)
    monkeypatch.setenv("ORDERS_QUEUE_NAME", queue)
    host = LocalHost(  # `make host`: function_app.py with the environment's settings
        REPO_ROOT,
        settings_path=Path("local.settings.json"),  # none in this checkout: the environment decides
        host_json_overrides=FAST_HOST,
    )

    publish, *reads = guide_commands()
    assert publish[:3] == ["orders", "publish", "--jsonl"]
    orders(publish, capsys)
    host.run_until_idle(1.0, timeout=120)
    assert servicebus_emulator.active_count(queue) == 0
    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert host.counters.abandoned == 0

    printed = [orders(command, capsys) for command in reads]  # verbatim, as a person reads them
    status_text = next(out for cmd, out in zip(reads, printed, strict=True) if cmd[1] == "status")
    assert "accounts by state" in status_text and "owner" in status_text and "CLOSED" in status_text

    status = json.loads(orders(["orders", "status", "--json"], capsys))
    assert status["workflow"] == "accounts v1"
    states = {a["account_id"]: a["state"] for a in status["accounts"]}
    assert states == {"acc-1": "CLOSED", "acc-3": "OPEN"}
    expected = {k.removesuffix(" now"): v for k, v in guide_table("outcomes").items()}
    assert status["outcomes"] == expected

    quarantine = json.loads(orders(["orders", "quarantine", "list", "--json"], capsys))["quarantine"]
    reasons: dict[str, int] = {}
    for row in quarantine:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    assert reasons == guide_table("reasons")
    assert all(str(row["id"]) in "".join(printed) for row in quarantine)  # the list showed every one


def test_the_guide_marks_its_blocks() -> None:
    """The parts the end-to-end run takes from the guide are where it looks (a failure names the part)."""
    assert guide_settings()["ORDERS_WORKFLOW"] == "accounts"
    assert [c[1] for c in guide_commands()] == ["publish", "status", "quarantine"]
    assert sum(guide_table("outcomes").values()) > 0 and sum(guide_table("reasons").values()) > 0
