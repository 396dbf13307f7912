"""`orders publish --jsonl FILE` publishes any workflow's messages: ids from the contract (the selected
workflow's `message_id`) or from the line, in file order, through the publisher's sender, with its
duplicate-window warning; every bad line is a one-line usage error naming the line, before anything is sent.
Engine suite: runs with the workflow ORDERS_WORKFLOW selects."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from orders_cli import cli, traffic
from orders_cli.sender import PublishSummary
from shared.workflows import WorkflowBinding

CONNECTION = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=local"


class FakeSend:
    def __init__(self) -> None:
        self.sent: list[list[traffic.OutgoingMessage]] = []
        self.progress: list[bool] = []

    def __call__(self, messages: list[traffic.OutgoingMessage], **kwargs: Any) -> PublishSummary:
        self.sent.append(list(messages))
        self.progress.append(kwargs["progress"])
        return PublishSummary(sent=len(messages), batches=1, queue=kwargs["queue"], endpoint="fake")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selected: WorkflowBinding) -> None:
    monkeypatch.chdir(tmp_path)  # the id history lives in ./.local; no local.settings.json here
    for name in ("ServiceBusConnection", "ORDERS_QUEUE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORDERS_WORKFLOW", selected.name)


def lines_for(binding: WorkflowBinding, session: str = "s-1", stream: str = "k-1") -> list[dict[str, Any]]:
    return [{"session_id": session, "body": json.loads(b)} for b in binding.load().examples(session, stream)]


def write(tmp_path: Path, docs: list[Any], name: str = "in.jsonl") -> str:
    path = tmp_path / name
    path.write_text(
        "".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs), encoding="utf-8"
    )
    return str(path)


def publish(send: FakeSend, *argv: str) -> int:
    return cli.main(["publish", "--connection", CONNECTION, *argv], send=send)


def test_the_contract_names_the_ids_and_the_file_keeps_its_order(
    selected: WorkflowBinding, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = lines_for(selected)
    docs[1]["message_id"] = "given-id-2"
    send = FakeSend()
    assert publish(send, "--jsonl", write(tmp_path, docs), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    [sent] = send.sent
    workflow = selected.load()
    bodies = workflow.examples("s-1", "k-1")
    expected_ids = [workflow.message_id(workflow.parse(b)) for b in bodies]
    expected_ids[1] = "given-id-2"
    assert [m.message_id for m in sent] == expected_ids
    assert [m.session_id for m in sent] == ["s-1"] * len(bodies)
    assert [workflow.parse(m.body).sequence for m in sent] == list(range(1, len(bodies) + 1))
    assert [json.loads(m.body) for m in sent] == [json.loads(b) for b in bodies]
    assert summary["sent"] == len(bodies) and summary["message_ids_from_the_contract"] == len(bodies) - 1
    assert summary["sessions"] == 1 and send.progress == [False]


def test_the_same_file_again_within_the_window_warns(
    selected: WorkflowBinding, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, lines_for(selected))
    send = FakeSend()
    assert publish(send, "--jsonl", path, "--json") == 0
    assert json.loads(capsys.readouterr().out)["recently_sent_ids"] == 0
    assert publish(send, "--jsonl", path, "--json") == 0
    out, err = capsys.readouterr()
    total = len(send.sent[1])
    assert json.loads(out)["recently_sent_ids"] == total
    assert err.startswith(f"warning: {total} of these {total} message ids were sent to 127.0.0.1:5672/")
    assert "new message_id values" in err and err.count("\n") == 1


def test_a_text_body_and_base64_bytes_are_sent_exactly(
    selected: WorkflowBinding, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = selected.load().examples("s-1", "k-1")[0]
    raw = b"\xff\xfe not utf-8"
    docs = [
        {"session_id": "s-1", "body": body.decode()},
        {"session_id": "s-1", "message_id": "poison-1", "body_base64": base64.b64encode(raw).decode()},
        {"session_id": "s-1", "message_id": "poison-2", "body": "{not json", "content_type": "text/plain"},
    ]
    send = FakeSend()
    assert publish(send, "--jsonl", write(tmp_path, docs), "--no-progress") == 0
    [sent] = send.sent
    assert [m.body for m in sent] == [body, raw, b"{not json"]
    assert sent[2].content_type == "text/plain" and sent[0].content_type == "application/json"
    assert "messages sent" in capsys.readouterr().out


def test_dry_run_output_publishes_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What `orders publish --dry-run` prints for the order generator is a valid --jsonl file."""
    assert cli.main(["publish", "--customers", "1", "--orders-per-customer", "1", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    path = tmp_path / "dry.jsonl"
    path.write_text(printed, encoding="utf-8")
    send = FakeSend()
    assert publish(send, "--jsonl", str(path), "--json") == 0
    expected = [json.loads(line) for line in printed.splitlines()]
    assert [(m.session_id, m.message_id, m.body.decode()) for m in send.sent[0]] == [
        (d["session_id"], d["message_id"], d["body"]) for d in expected
    ]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("not json", "line 2: not JSON"),
        ('["a"]', "line 2: must be a JSON object"),
        ('{"session_id": "s-1", "body": {}, "sesion": 1}', "line 2: unknown key(s) sesion"),
        ('{"body": {}}', "line 2: session_id must be a non-empty string"),
        ('{"session_id": "' + "s" * 129 + '", "body": {}}', "Service Bus allows 128"),
        ('{"session_id": "s-1"}', "line 2: give exactly one of body and body_base64"),
        ('{"session_id": "s-1", "body": 5}', "body must be the body's text"),
        ('{"session_id": "s-1", "body_base64": "%%%"}', "body_base64 is not base64"),
        ('{"session_id": "s-1", "body": {"x": 1}}', "is not a valid"),
        ('{"session_id": "s-1", "body": "\\ud800"}', "send such bytes as body_base64"),
    ],
)
def test_a_bad_line_is_a_usage_error_naming_it_and_nothing_is_sent(
    selected: WorkflowBinding, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, words: str
) -> None:
    good = json.dumps(lines_for(selected)[0])
    send = FakeSend()
    assert publish(send, "--jsonl", write(tmp_path, [good, line])) == 2
    err = capsys.readouterr().err
    assert err.startswith("orders: error: ") and err.count("\n") == 1 and words in err
    assert send.sent == []


def test_two_lines_with_one_id_would_be_dropped_so_they_are_refused(
    selected: WorkflowBinding, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = lines_for(selected)[0]
    send = FakeSend()
    assert publish(send, "--jsonl", write(tmp_path, [first, first])) == 2
    err = capsys.readouterr().err
    assert "line 2: message id" in err and "also line 1's" in err and send.sent == []


def test_generator_flags_do_not_mix_with_a_file(
    selected: WorkflowBinding, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, lines_for(selected))
    assert publish(FakeSend(), "--jsonl", path, "--customers", "5", "--shuffle") == 2
    err = capsys.readouterr().err
    assert "--customers, --shuffle do not apply" in err
    assert publish(FakeSend(), "--jsonl", str(tmp_path / "missing.jsonl")) == 2
    assert "cannot read --jsonl" in capsys.readouterr().err
    assert publish(FakeSend(), "--jsonl", write(tmp_path, ["", " "], "empty.jsonl")) == 2
    assert "holds no messages" in capsys.readouterr().err
