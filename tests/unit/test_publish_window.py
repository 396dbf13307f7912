"""`orders publish` warns when its (deterministic) message ids would fall in the queue's
duplicate-detection window, and `--run-id` gives a run fresh ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orders_cli import cli, traffic
from orders_cli import publish as publish_command
from orders_cli.sender import PublishSummary
from orders_cli.traffic import PublishPlan, generate_messages

CONNECTION = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=local"


class FakeSend:
    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def __call__(self, messages: list[traffic.OutgoingMessage], **kwargs: Any) -> PublishSummary:
        self.sent.append([m.message_id for m in messages])
        return PublishSummary(sent=len(messages), queue=kwargs["queue"], endpoint="fake")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the history lives in ./.local, as for a user in the repo
    for name in ("ServiceBusConnection", "ORDERS_QUEUE_NAME"):
        monkeypatch.delenv(name, raising=False)


def publish(capsys: pytest.CaptureFixture[str], send: FakeSend, *argv: str) -> tuple[dict[str, Any], str]:
    code = cli.main(["publish", "--customers", "2", "--connection", CONNECTION, "--json", *argv], send=send)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def test_the_same_ids_again_within_the_window_warn_once_per_run(capsys: pytest.CaptureFixture[str]) -> None:
    send = FakeSend()
    first, err = publish(capsys, send)
    assert err == "" and first["recently_sent_ids"] == 0
    again, err = publish(capsys, send)
    total = len(send.sent[1])
    assert again["recently_sent_ids"] == total
    assert err.startswith(f"warning: {total} of these {total} message ids were sent to 127.0.0.1:5672/")
    assert "--run-id auto" in err and err.count("\n") == 1
    # another queue is another window
    other, err = publish(capsys, send, "--queue", "other")
    assert other["recently_sent_ids"] == 0 and err == ""


def test_run_id_gives_fresh_ids_and_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    send = FakeSend()
    publish(capsys, send)
    doc, err = publish(capsys, send, "--run-id", "auto")
    assert err == "" and doc["recently_sent_ids"] == 0
    prefix = doc["plan"]["id_prefix"]
    assert prefix.startswith("r-") and len(prefix) == len("r-HHMMSS")
    assert all(i.startswith(f"{prefix}-cust-") and f":{prefix}-ord-" in i for i in send.sent[1])
    assert not set(send.sent[0]) & set(send.sent[1])
    doc, _ = publish(capsys, send, "--run-id", "demo2")
    assert doc["plan"]["id_prefix"] == "demo2"


def test_run_id_and_id_prefix_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["publish", "--run-id", "a", "--id-prefix", "b", "--dry-run"]) == 2
    assert cli.main(["publish", "--run-id", "bad id!", "--dry-run"]) == 2
    _, err = capsys.readouterr()
    assert err.count("orders: error:") == 2


def test_runs_older_than_the_window_are_forgotten(tmp_path: Path) -> None:
    messages = generate_messages(PublishPlan(customers=1, orders_per_customer=1))
    path = tmp_path / "history.json"
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    publish_command.remember_sent(messages, "h/q", now=now, path=path)
    assert publish_command.window_overlap(messages, "h/q", now=now + timedelta(minutes=9), path=path)
    assert publish_command.window_overlap(messages, "h/q", now=now + timedelta(minutes=10), path=path) is None
    publish_command.remember_sent(messages, "h/q", now=now + timedelta(minutes=11), path=path)
    assert len(json.loads(path.read_text())) == 1  # the expired run was dropped
    path.write_text("not json")
    assert (
        publish_command.window_overlap(messages, "h/q", now=now, path=path) is None
    )  # a hint, never a failure
