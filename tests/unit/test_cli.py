"""The `orders` console script against a real SQLite store; Service Bus sends go to a fake `send`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from orders_cli import cli, publish, traffic
from orders_cli.sender import PublishSummary
from orders_cli.traffic import PublishPlan, expected_final_state, generate_messages
from shared.envelope import SessionEnvelope
from shared.message_ids import replay_message_id
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.sqlite import SqliteOrderStore

SETTINGS = (
    "ServiceBusConnection",
    "ServiceBusConnection__fullyQualifiedNamespace",
    "OrderStoreConnection",
    "OrderStoreConnection__tableServiceUri",
    "ORDERS_QUEUE_NAME",
    "ServiceBusAdministrationConnection",
    "ServiceBusAdministrationCA",
)
PLAN = PublishPlan(3, 2, cancel_rate=0.3, duplicates=0.2, shuffle=True, poison=7, seed=4)


@pytest.fixture(autouse=True)
def clean_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No local.settings.json and no Service Bus / store settings from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def populated(tmp_path: Path) -> tuple[str, list[traffic.OutgoingMessage]]:
    """A SQLite store after processing a generated run (orders, duplicates, parking, every poison)."""
    path = tmp_path / "store" / "orders.db"
    store = SqliteOrderStore(path, codec=ORDERS)
    processor = OrderStepProcessor(store)
    messages = generate_messages(PLAN)
    for number, m in enumerate(messages, start=1):
        processor.process(
            SessionEnvelope(
                m.body,
                m.session_id,
                m.message_id,
                sequence_number=number,
                content_type=m.content_type,
                application_properties=dict(m.application_properties),
            )
        )
    store.close()
    return f"sqlite:///{path}", messages


def run(capsys: pytest.CaptureFixture[str], *argv: str, send: Any = None) -> tuple[int, str, str]:
    code = cli.main(list(argv), send=send)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    assert err.startswith("orders: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


class FakeSend:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, messages: list[traffic.OutgoingMessage], **kwargs: Any) -> PublishSummary:
        self.calls.append({"messages": list(messages), **kwargs})
        return PublishSummary(
            sent=len(messages), batches=1, elapsed_s=0.5, queue=kwargs["queue"], endpoint="fake"
        )


# --- status -----------------------------------------------------------------------------------


def test_status_json_shape(capsys: pytest.CaptureFixture[str], populated: Any) -> None:
    store, messages = populated
    code, out, err = run(capsys, "status", "--json", "--store", store)
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert set(report) == {"workflow", "orders", "outcomes", "quarantine", "stuck", "servicebus"}
    assert report["workflow"] == "orders v1"
    assert report["servicebus"] is None  # no broker set here; tests/emulator/test_status_queue_depth.py
    assert set(report["outcomes"]) == {"applied", "duplicate", "parked", "quarantined"}
    order_keys = {
        "customer_id",
        "order_id",
        "state",
        "last_sequence",
        "applied_steps",
        "parked_sequences",
        "waiting_for_sequence",
    }
    for order in report["orders"]:
        assert order_keys <= set(order)
        assert isinstance(order["applied_steps"], list) and isinstance(order["parked_sequences"], list)
        assert order["waiting_for_sequence"] is None or isinstance(order["waiting_for_sequence"], int)
    for q in report["quarantine"]:
        assert set(q) == {"id", "reason", "session_id", "message_id", "order_id", "sequence"}
    final = {(o["customer_id"], o["order_id"]): o["applied_steps"] for o in report["orders"]}
    assert final == expected_final_state(messages)
    poison = [m for m in messages if m.kind == "poison"]
    assert report["outcomes"]["quarantined"] == len(poison) == len(report["quarantine"])
    assert report["outcomes"]["duplicate"] == sum(1 for m in messages if m.kind == "duplicate")
    assert report["outcomes"]["parked"] == 0


def test_status_for_one_customer(capsys: pytest.CaptureFixture[str], populated: Any) -> None:
    store, _ = populated
    code, out, _ = run(capsys, "status", "--json", "--customer", "cust-0002", "--store", store)
    report = json.loads(out)
    assert code == 0 and report["orders"]
    assert {o["customer_id"] for o in report["orders"]} == {"cust-0002"}
    assert {q["session_id"] for q in report["quarantine"]} <= {"cust-0002"}


def test_status_tables(capsys: pytest.CaptureFixture[str], populated: Any) -> None:
    store, _ = populated
    code, out, err = run(capsys, "status", "--store", store, "--limit", "2")
    assert (code, err) == (0, "")
    for title in ("outcomes", "orders by state", "orders", "quarantined messages", "rule-violation"):
        assert title in out
    assert "more orders not shown" in out


def test_status_reads_the_store_from_local_settings(
    capsys: pytest.CaptureFixture[str], populated: Any, tmp_path: Path
) -> None:
    store, _ = populated
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"OrderStoreConnection": store}}))
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0 and json.loads(out)["orders"]


def test_missing_store_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "status", "--store", f"sqlite:///{tmp_path}/nothing.db")
    assert code == 1 and out == ""
    assert_one_line_error(err)
    assert "no order store" in err
    assert not (tmp_path / "nothing.db").exists()


def test_bad_store_connection_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "--store", "mongodb://nope")
    assert code == 2  # a flag of the wrong form is a usage error
    assert_one_line_error(err)
    assert "--store takes sqlite:///PATH, UseDevelopmentStorage=true or a storage connection string" in err


def test_bad_settings_are_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text("{not json")
    code, _, err = run(capsys, "status")
    assert code == 2  # a bad setting: fix the input (docs/cli.md)
    assert_one_line_error(err)
    assert "local.settings.json" in err


# --- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["status", "--nope"],
        ["status", "--customer", "no spaces allowed"],
        ["status", "--limit", "0"],
        ["quarantine"],
        ["quarantine", "show"],
        ["publish", "--customers", "0"],
        ["publish", "--customers", "many"],
        ["publish", "--cancel-rate", "1.5"],
        ["publish", "--duplicates", "-1"],
        ["publish", "--poison", "-2"],
        ["publish", "--namespace", "a", "--connection", "b"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert_one_line_error(err)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "quarantine" in out and "publish" in out
    code, out, _ = run(capsys, "quarantine", "replay", "--help")
    assert code == 0 and "--body-file" in out


def test_help_does_not_import_heavy_modules() -> None:
    import subprocess

    code = (
        "import sys; from orders_cli import cli; cli.build_parser(['--help']);"
        "heavy = [m for m in ('azure.servicebus', 'azure.identity', 'rich', 'pydantic') if m in sys.modules];"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- quarantine -------------------------------------------------------------------------------


def test_quarantine_list_and_show(capsys: pytest.CaptureFixture[str], populated: Any) -> None:
    store, messages = populated
    code, out, _ = run(capsys, "quarantine", "list", "--json", "--store", store)
    rows = json.loads(out)["quarantine"]
    assert code == 0 and len(rows) == sum(1 for m in messages if m.kind == "poison")
    assert {r["status"] for r in rows} == {"open"}
    code, out, _ = run(capsys, "quarantine", "list", "--store", store)
    assert code == 0 and "session-mismatch" in out

    by_reason = {r["reason"]: r for r in rows}
    rule = by_reason["rule-violation"]
    code, out, _ = run(capsys, "quarantine", "show", rule["id"], "--json", "--store", store)
    doc = json.loads(out)
    assert code == 0
    assert doc["id"] == rule["id"] and doc["reason"] == "rule-violation" and doc["metadata"]["session_id"]
    original = next(m for m in messages if m.message_id == rule["message_id"])
    assert doc["body"].encode() == original.body

    code, out, _ = run(capsys, "quarantine", "show", rule["id"], "--store", store)
    assert code == 0 and "payment amount" in out and '"payment.authorized"' in out

    non_utf8 = next(r for r in rows if r["message_id"].endswith(":non-utf8"))
    code, out, _ = run(capsys, "quarantine", "show", non_utf8["id"], "--store", store)
    assert code == 0 and "base64" in out


def test_unknown_quarantine_id_is_exit_1(capsys: pytest.CaptureFixture[str], populated: Any) -> None:
    store, _ = populated
    for action in ("show", "replay"):
        code, out, err = run(capsys, "quarantine", action, "nope", "--store", store, send=FakeSend())
        assert code == 1 and out == ""
        assert_one_line_error(err)
        assert "no quarantined message" in err


def _record(capsys: pytest.CaptureFixture[str], store: str, reason: str) -> dict[str, Any]:
    _, out, _ = run(capsys, "quarantine", "list", "--json", "--store", store)
    return next(r for r in json.loads(out)["quarantine"] if r["reason"] == reason)


def test_replay_original_body(capsys: pytest.CaptureFixture[str], populated: Any) -> None:
    store, messages = populated
    record = _record(capsys, store, "rule-violation")
    send = FakeSend()
    code, out, err = run(
        capsys,
        "quarantine",
        "replay",
        record["id"],
        "--store",
        store,
        "--connection",
        "Endpoint=sb://x/",
        send=send,
    )
    assert (code, err) == (0, ""), err
    assert "replayed" in out
    (call,) = send.calls
    assert call["connection_string"] == "Endpoint=sb://x/" and call["queue"] == "orders-with-sessions"
    (message,) = call["messages"]
    original = next(m for m in messages if m.message_id == record["message_id"])
    assert message.session_id == original.session_id
    # a new id derived from the record: the queue's duplicate detection still remembers the original's
    assert message.message_id == replay_message_id(record["id"], original.body, None)
    assert message.message_id != original.message_id
    assert message.body == original.body
    assert message.content_type == "application/json"
    assert message.application_properties["replayed-from"] == record["id"]

    code, out, _ = run(capsys, "quarantine", "list", "--json", "--store", store)
    assert record["id"] not in {r["id"] for r in json.loads(out)["quarantine"]}
    code, out, _ = run(capsys, "quarantine", "list", "--all", "--json", "--store", store)
    replayed = next(r for r in json.loads(out)["quarantine"] if r["id"] == record["id"])
    assert replayed["status"] == "replayed" and replayed["replayed_at"]

    # a second replay needs --force
    code, _, err = run(capsys, "quarantine", "replay", record["id"], "--store", store, send=send)
    assert code == 1
    assert_one_line_error(err)
    assert "already replayed" in err


def test_replay_sent_but_not_marked_is_a_one_line_error_and_a_rerun_repeats_the_id(
    capsys: pytest.CaptureFixture[str], populated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = populated
    record = _record(capsys, store, "rule-violation")
    mark = SqliteOrderStore.mark_replayed

    def store_down(self: SqliteOrderStore, *args: Any) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(SqliteOrderStore, "mark_replayed", store_down)
    send = FakeSend()
    args = ["quarantine", "replay", record["id"], "--store", store, "--connection", "Endpoint=sb://x/"]
    code, out, err = run(capsys, *args, send=send)
    assert code == 1 and out == ""
    assert_one_line_error(err)
    (first,) = send.calls[0]["messages"]
    assert f"sent as message id {first.message_id}, but marking it replayed failed (OSError" in err
    monkeypatch.setattr(SqliteOrderStore, "mark_replayed", mark)
    code, _, err = run(capsys, *args, send=send)
    assert code == 0, err
    assert send.calls[1]["messages"][0].message_id == first.message_id  # the broker drops this repeat
    _, out, _ = run(capsys, "quarantine", "list", "--json", "--store", store)
    assert record["id"] not in {r["id"] for r in json.loads(out)["quarantine"]}


def test_replay_corrected_body(capsys: pytest.CaptureFixture[str], populated: Any, tmp_path: Path) -> None:
    store, messages = populated
    record = _record(capsys, store, "rule-violation")
    original = json.loads(next(m for m in messages if m.message_id == record["message_id"]).body)
    original["data"]["amount"] = "10.00"  # the dedicated order's total
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(original))
    send = FakeSend()
    code, out, err = run(
        capsys,
        "quarantine",
        "replay",
        record["id"],
        "--body-file",
        str(fixed),
        "--namespace",
        "ns.servicebus.windows.net",
        "--queue",
        "other-queue",
        "--json",
        "--store",
        store,
        send=send,
    )
    assert (code, err) == (0, ""), err
    (call,) = send.calls
    assert call["namespace"] == "ns.servicebus.windows.net" and call["connection_string"] is None
    assert call["queue"] == "other-queue"
    (message,) = call["messages"]
    assert message.body == fixed.read_bytes()
    assert message.message_id == replay_message_id(record["id"], fixed.read_bytes(), None)
    assert json.loads(out)["message_id"] == message.message_id


def test_replay_rejects_a_non_json_body_file(
    capsys: pytest.CaptureFixture[str], populated: Any, tmp_path: Path
) -> None:
    store, _ = populated
    record = _record(capsys, store, "rule-violation")
    bad = tmp_path / "bad.json"
    bad.write_text("{'amount': 10}")
    send = FakeSend()
    code, _, err = run(
        capsys, "quarantine", "replay", record["id"], "--body-file", str(bad), "--store", store, send=send
    )
    assert code == 1 and not send.calls
    assert_one_line_error(err)
    assert "not valid JSON" in err
    code, _, err = run(
        capsys,
        "quarantine",
        "replay",
        record["id"],
        "--body-file",
        str(tmp_path / "missing.json"),
        "--store",
        store,
    )
    assert code == 1
    assert_one_line_error(err)


def test_replay_refuses_a_body_that_would_be_quarantined_again(
    capsys: pytest.CaptureFixture[str], populated: Any, tmp_path: Path
) -> None:
    store, _ = populated
    record = _record(capsys, store, "rule-violation")
    body = tmp_path / "b.json"
    body.write_text(json.dumps({"schema": "order-step/v1"}))
    send = FakeSend()
    args = ["quarantine", "replay", record["id"], "--body-file", str(body), "--store", store]
    code, _, err = run(capsys, *args, "--connection", "Endpoint=sb://x/", send=send)
    assert code == 1 and not send.calls and "schema-violation" in err
    assert_one_line_error(err)
    code, _, err = run(capsys, *args, "--connection", "Endpoint=sb://x/", "--force", send=send)
    assert code == 0 and len(send.calls) == 1


def test_replay_without_a_connection_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], populated: Any
) -> None:
    store, _ = populated
    record = _record(capsys, store, "rule-violation")
    code, _, err = run(capsys, "quarantine", "replay", record["id"], "--store", store)
    assert code == 1
    assert_one_line_error(err)
    assert "no Service Bus connection" in err
    code, out, _ = run(capsys, "quarantine", "list", "--json", "--store", store)
    assert record["id"] in {r["id"] for r in json.loads(out)["quarantine"]}  # still open


def test_replay_uses_settings_for_connection_and_queue(
    capsys: pytest.CaptureFixture[str], populated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = populated
    record = _record(capsys, store, "session-mismatch")
    monkeypatch.setenv("ServiceBusConnection__fullyQualifiedNamespace", "from-env.servicebus.windows.net")
    monkeypatch.setenv("ORDERS_QUEUE_NAME", "q-from-env")
    send = FakeSend()
    code, _, err = run(
        capsys, "quarantine", "replay", record["id"], "--new-message-id", "--store", store, send=send
    )
    assert code == 0, err
    (call,) = send.calls
    assert call["namespace"] == "from-env.servicebus.windows.net" and call["queue"] == "q-from-env"
    # --new-message-id is still accepted (old scripts); every replay gets a new derived id anyway
    assert call["messages"][0].message_id == replay_message_id(record["id"], call["messages"][0].body, None)


# --- publish ----------------------------------------------------------------------------------


def test_publish_dry_run_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "publish", "--customers", "2", "--poison", "7", "--duplicates", "0.5", "--dry-run"
    )
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    expected = generate_messages(PublishPlan(2, 2, 0.0, 0.5, False, 7, seed=1))
    assert [x["message_id"] for x in lines] == [m.message_id for m in expected]
    for line in lines:
        assert {"session_id", "message_id", "kind", "expected_outcome"} <= set(line)
        assert ("body" in line) != ("body_base64" in line)


def test_publish_sends_with_the_fake(capsys: pytest.CaptureFixture[str]) -> None:
    send = FakeSend()
    code, out, err = run(
        capsys,
        "publish",
        "--customers",
        "2",
        "--seed",
        "3",
        "--connection",
        "Endpoint=sb://h/;X=y",
        "--json",
        send=send,
    )
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["sent"] == len(send.calls[0]["messages"]) and summary["queue"] == "orders-with-sessions"
    assert summary["plan"]["customers"] == 2 and "expected_outcomes" in summary
    code, out, _ = run(capsys, "publish", "--connection", "Endpoint=sb://h/", send=send)
    assert code == 0 and "messages sent" in out


def test_publish_script_is_the_same_code(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    script = Path(__file__).resolve().parents[2] / "scripts" / "publish_orders.py"
    argv = sys.argv
    sys.argv = [str(script), "--customers", "1", "--dry-run"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert [json.loads(x)["message_id"] for x in out.splitlines()] == [
        m.message_id for m in generate_messages(PublishPlan(1, 2, 0, 0, False, 0, seed=1))
    ]
    assert publish.main(["--customers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("publish_orders.py: error: ") and err.count("\n") == 1


# --- delegated commands -----------------------------------------------------------------------


def test_missing_delegate_module_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "devstack.emulator.cli", None)  # import raises ImportError
    code, _, err = run(capsys, "emulator", "--help")
    assert code == 1
    assert_one_line_error(err)
    assert "devstack.emulator.cli" in err


def test_delegate_gets_its_own_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    fake = types.ModuleType("devstack.host.cli")
    seen: dict[str, Any] = {}

    def add_arguments(parser: Any) -> None:
        parser.add_argument("--port", type=int, default=7071)

    def run_host(args: Any) -> int:
        seen["port"] = args.port
        return 3

    fake.add_arguments = add_arguments  # type: ignore[attr-defined]
    fake.run = run_host  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "devstack.host.cli", fake)
    code, _, _ = run(capsys, "host", "--port", "9000")
    assert code == 3 and seen == {"port": 9000}
    code, out, _ = run(capsys, "host", "--help")
    assert code == 0 and "--port" in out


@pytest.fixture
def oversize(tmp_path: Path) -> tuple[str, bytes]:
    """A store holding one quarantine record whose body was too large to keep (size + SHA-256 only)."""
    from shared.envelope import MAX_BODY_BYTES

    path = tmp_path / "store" / "big.db"
    store = SqliteOrderStore(path, codec=ORDERS)
    body = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    OrderStepProcessor(store).process(SessionEnvelope(body, "cust-big", "ord-big:1", sequence_number=1))
    store.close()
    return f"sqlite:///{path}", body


def test_show_says_an_omitted_body_was_not_kept(
    capsys: pytest.CaptureFixture[str], oversize: tuple[str, bytes]
) -> None:
    import hashlib

    store, body = oversize
    record = _record(capsys, store, "malformed-json")
    code, out, _ = run(capsys, "quarantine", "show", record["id"], "--json", "--store", store)
    assert code == 0 and json.loads(out)["body_encoding"] == "omitted"
    code, out, _ = run(capsys, "quarantine", "show", record["id"], "--store", store)
    flat = " ".join(out.split())  # rich wraps long lines
    assert code == 0
    assert f"body not kept: {len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}" in flat
    assert "--body-file" in flat and "0 bytes" not in flat


def test_replay_of_an_omitted_body_needs_a_body_file(
    capsys: pytest.CaptureFixture[str], oversize: tuple[str, bytes], tmp_path: Path
) -> None:
    store, body = oversize
    record = _record(capsys, store, "malformed-json")
    send = FakeSend()
    args = ["quarantine", "replay", record["id"], "--store", store, "--connection", "Endpoint=sb://x/;"]
    code, out, err = run(capsys, *args, "--queue", "q", send=send)
    assert code == 1 and out == "" and send.calls == []
    assert_one_line_error(err)
    assert "body not kept" in err and str(len(body)) in err and "--body-file" in err
    code, out, _ = run(capsys, "quarantine", "list", "--json", "--store", store)
    assert record["id"] in {r["id"] for r in json.loads(out)["quarantine"]}  # still open

    fixed = tmp_path / "fixed.json"
    fixed.write_text(
        '{"schema_version": 1, "customer_id": "cust-big", "order_id": "ord-big", "sequence": 1, '
        '"step": "order.created", "data": {}}'
    )
    code, out, err = run(capsys, *args, "--queue", "q", "--body-file", str(fixed), "--force", send=send)
    assert code == 0, err
    assert send.calls[0]["messages"][0].body == fixed.read_bytes()


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(
    capsys: pytest.CaptureFixture[str], populated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status`, `quarantine`, `dlq`, `publish`: Ctrl-C stops the command (docs/cli.md); the host and
    the emulator exit 0 instead (tests/unit/test_host_cli.py, tests/emulator)."""
    store, _ = populated

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "render_status", interrupted)
    code, _, err = run(capsys, "status", "--store", store)
    assert code == 130 and err == "orders: error: interrupted\n"
