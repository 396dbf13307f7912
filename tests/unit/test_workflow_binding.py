"""The workflow is bound in one place (shared/workflows.py): the service's log lines and span attributes,
the views, the CLI and the stores' workflow record all follow the selected binding.

Part of the engine suite: every test here runs with the workflow ORDERS_WORKFLOW selects (tests/conftest.py
`selected`), so `ORDERS_WORKFLOW=accounts pytest -m engine` proves a swap leaves it green."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orders_cli import cli
from shared.envelope import SessionEnvelope
from shared.service import OrderService, message_log_fields
from shared.settings import AppSettings, SettingsError, validate_app_settings
from shared.store.memory import InMemoryOrderStore
from shared.store.sqlite import SqliteOrderStore
from shared.store.workflow_record import WorkflowMismatch
from shared.views import status_report
from shared.workflows import ACCOUNTS, ORDERS, REGISTRY, WorkflowBinding, WorkflowRecord, binding_named


def other(binding: WorkflowBinding) -> WorkflowBinding:
    return ACCOUNTS if binding is ORDERS else ORDERS


def envelopes(binding: WorkflowBinding, session: str = "s-1", stream: str = "k-1") -> list[SessionEnvelope]:
    workflow = binding.load()
    bodies = workflow.examples(session, stream)
    return [SessionEnvelope(b, session, workflow.message_id(workflow.parse(b))) for b in bodies]


def test_the_service_logs_the_selected_workflows_fields(
    selected: WorkflowBinding, caplog: pytest.LogCaptureFixture
) -> None:
    service = OrderService(AppSettings(workflow=selected.name), InMemoryOrderStore())
    caplog.set_level(logging.INFO, logger="orders.processing")
    results = [service.handle(e) for e in envelopes(selected)]
    assert {r.outcome.value for r in results} == {"applied"}
    lines = [r for r in caplog.records if hasattr(r, "outcome")]
    assert len(lines) == len(results)
    for line, result in zip(lines, results, strict=True):
        fields = vars(line)
        assert all(name in fields for name in message_log_fields(selected))
        assert (fields[selected.session_field], fields[selected.stream_field]) == ("s-1", "k-1")
        assert fields[selected.status_field] == result.status and result.status
        unbound = other(selected)
        assert unbound.session_field not in fields and unbound.stream_field not in fields
        assert line.getMessage() == f"{selected.stream_label} step applied"


def test_span_attributes_are_the_bindings(selected: WorkflowBinding) -> None:
    attributes = selected.span_attributes()
    assert attributes[selected.session_field] == f"{selected.name}.{selected.session_field}"
    assert attributes["outcome"] == f"{selected.name}.outcome"
    assert other(selected).stream_field not in attributes


def test_views_use_the_bindings_keys_and_the_workflows_fields(selected: WorkflowBinding) -> None:
    store = InMemoryOrderStore()
    service = OrderService(AppSettings(workflow=selected.name), store)
    for envelope in envelopes(selected):
        service.handle(envelope)
    report = status_report(selected, store)
    assert report["workflow"] == f"{selected.name} v{selected.version}"
    [view] = report[selected.stream_plural]
    assert (view[selected.session_field], view[selected.stream_field]) == ("s-1", "k-1")
    assert view["waiting_for_sequence"] is None and len(view["applied_steps"]) == len(envelopes(selected))
    workflow = selected.load()
    ledger = store.get_ledger("s-1", "k-1")
    assert set(workflow.view(ledger.state)) <= set(view)
    assert view["state"] == workflow.status(ledger.state)


def test_a_store_records_its_workflow_and_refuses_another(selected: WorkflowBinding, tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = SqliteOrderStore(path, codec=selected.load(), workflow=selected.record)
    assert first.recorded_workflow() == WorkflowRecord(selected.name, selected.version)
    first.close()
    unbound = other(selected)
    with pytest.raises(WorkflowMismatch) as refused:
        SqliteOrderStore(path, codec=unbound.load(), workflow=unbound.record)
    message = str(refused.value)
    assert "\n" not in message
    assert f"belongs to workflow {selected.name} v{selected.version}" in message
    assert f"ORDERS_WORKFLOW={selected.name}" in message
    again = SqliteOrderStore(
        path, codec=selected.load(), workflow=selected.record
    )  # the owner still opens it
    again.close()


def test_a_store_without_a_record_is_adopted_unless_its_ledgers_are_anothers(
    selected: WorkflowBinding, tmp_path: Path
) -> None:
    unbound = other(selected)
    legacy = tmp_path / "legacy.db"
    writer = SqliteOrderStore(legacy, codec=unbound.load())  # no record: a store from before records
    service = OrderService(AppSettings(workflow=unbound.name), writer, binding=unbound)
    for envelope in envelopes(unbound):
        service.handle(envelope)
    writer.close()
    with pytest.raises(WorkflowMismatch, match="no workflow record and holds ledgers"):
        SqliteOrderStore(legacy, codec=selected.load(), workflow=selected.record)
    with sqlite3.connect(legacy) as db:
        assert db.execute("SELECT count(*) FROM workflow").fetchone() == (0,), "a refusal writes nothing"
    adopted = SqliteOrderStore(legacy, codec=unbound.load(), workflow=unbound.record)
    assert adopted.recorded_workflow() == unbound.record and len(adopted.list_ledgers()) == 1
    adopted.close()
    empty = SqliteOrderStore(tmp_path / "empty.db", codec=selected.load(), workflow=selected.record)
    assert empty.recorded_workflow() == selected.record
    empty.close()


def test_a_version_the_workflow_reads_is_upgraded_and_another_refused(
    selected: WorkflowBinding, tmp_path: Path
) -> None:
    path = tmp_path / "store.db"
    SqliteOrderStore(path, codec=selected.load(), workflow=WorkflowRecord(selected.name, "0")).close()
    with pytest.raises(WorkflowMismatch, match=f"{selected.name} v0"):
        SqliteOrderStore(path, codec=selected.load(), workflow=selected.record)
    reads_v0 = WorkflowRecord(selected.name, selected.version, reads=("0",))
    upgraded = SqliteOrderStore(path, codec=selected.load(), workflow=reads_v0)
    assert upgraded.recorded_workflow() == WorkflowRecord(selected.name, selected.version)
    upgraded.close()


def test_the_cli_shows_the_selected_workflow_and_refuses_anothers_store(
    selected: WorkflowBinding,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no local.settings.json
    path = tmp_path / "store.db"
    store = SqliteOrderStore(path, codec=selected.load(), workflow=selected.record)
    service = OrderService(AppSettings(workflow=selected.name), store)
    for envelope in envelopes(selected):
        service.handle(envelope)
    store.close()
    monkeypatch.setenv("ORDERS_WORKFLOW", selected.name)
    assert cli.main(["status", "--json", "--store", f"sqlite:///{path}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [v[selected.stream_field] for v in report[selected.stream_plural]] == ["k-1"]
    assert cli.main(["status", "--store", f"sqlite:///{path}"]) == 0
    text = capsys.readouterr().out
    assert f"{selected.stream_plural} by state" in text and selected.session_label in text
    monkeypatch.setenv("ORDERS_WORKFLOW", other(selected).name)
    assert cli.main(["status", "--store", f"sqlite:///{path}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("orders: error: ") and "belongs to workflow" in err


def test_the_setting_selects_a_registered_or_importable_binding() -> None:
    assert set(REGISTRY) >= {"orders", "accounts"}
    assert validate_app_settings({"ORDERS_WORKFLOW": "accounts"}).binding() is ACCOUNTS
    assert validate_app_settings({}).binding() is ORDERS
    assert binding_named("shared.workflows:ACCOUNTS") is ACCOUNTS
    for bad, words in (
        ("parcels", "must be one of accounts, orders"),
        ("shared.workflows:NOPE", "cannot import it"),
        ("shared.workflows:REGISTRY", "not a WorkflowBinding"),
    ):
        with pytest.raises(SettingsError, match=words):
            validate_app_settings({"ORDERS_WORKFLOW": bad})


def test_a_binding_whose_names_clash_with_the_log_lines_is_refused() -> None:
    from dataclasses import replace

    from shared.workflows import WorkflowSettingError, check_binding

    with pytest.raises(WorkflowSettingError, match="must differ"):
        check_binding(replace(ACCOUNTS, stream_field="message_id"))
    with pytest.raises(WorkflowSettingError, match="not a plain name"):
        check_binding(replace(ACCOUNTS, session_field="Owner Id"))


def test_each_registered_workflow_has_the_app_interface() -> None:
    for binding in REGISTRY.values():
        workflow: Any = binding.load()
        bodies = workflow.examples("s", "k")
        steps = [workflow.parse(b) for b in bodies]
        assert [s.sequence for s in steps] == list(range(1, len(bodies) + 1))
        assert len({workflow.message_id(s) for s in steps}) == len(steps)


class RecordingSend:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def __call__(self, messages: list[Any], **kwargs: Any) -> Any:
        from orders_cli.sender import PublishSummary

        self.messages.extend(messages)
        return PublishSummary(sent=len(messages), queue=kwargs["queue"], endpoint="fake")


def test_quarantine_list_show_and_replay_use_the_selected_workflow(
    selected: WorkflowBinding,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused step of the selected workflow: listed under its stream's name, and a corrected body is
    checked with the selected workflow's own parser before it is sent."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORDERS_WORKFLOW", selected.name)
    path = tmp_path / "store.db"
    store = SqliteOrderStore(path, codec=selected.load(), workflow=selected.record)
    service = OrderService(AppSettings(workflow=selected.name), store)
    first = envelopes(selected)[0]
    refused = service.handle(SessionEnvelope(first.body, "someone-else", "m-elsewhere"))
    assert refused.reason is not None and refused.reason.value == "session-mismatch"
    store.close()
    url = f"sqlite:///{path}"
    assert cli.main(["quarantine", "list", "--json", "--store", url]) == 0
    [row] = json.loads(capsys.readouterr().out)["quarantine"]
    assert selected.stream_field in row and row["session_id"] == "someone-else"
    assert cli.main(["quarantine", "list", "--store", url]) == 0
    assert f"{selected.stream_label} (session)" in capsys.readouterr().out
    assert cli.main(["quarantine", "show", row["id"], "--store", url]) == 0
    assert selected.stream_field in capsys.readouterr().out

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(json.loads(first.body)))  # its own session: refused for someone-else
    send = RecordingSend()
    replay = ["quarantine", "replay", row["id"], "--body-file", str(fixed), "--store", url]
    assert (
        cli.main(
            [*replay, "--connection", "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v"], send=send
        )
        == 1
    )
    assert "session-mismatch" in capsys.readouterr().err and send.messages == []
    fixed.write_text(json.dumps({"not": "a step"}))
    assert (
        cli.main(
            [*replay, "--connection", "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v"], send=send
        )
        == 1
    )
    assert "schema-violation" in capsys.readouterr().err and send.messages == []


def test_function_app_serves_the_selected_workflows_read_route(
    selected: WorkflowBinding, tmp_path: Path
) -> None:
    """function_app.py names its HTTP function and route from the binding, when the worker indexes it."""
    import os
    import subprocess
    import sys

    listing = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): [b.get_dict_repr().get('route') for b in f.get_bindings()]"
        " for f in function_app.app.get_functions()}))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERS_", "OrderStore"))}
    env |= {"ORDERS_WORKFLOW": selected.name, "PYTHONPATH": str(repo), "OTEL_SDK_DISABLED": "true"}
    done = subprocess.run(
        [sys.executable, "-c", listing], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    functions = json.loads(done.stdout.strip().splitlines()[-1])
    route = f"{selected.session_plural}/{{{selected.session_field}}}/{selected.stream_plural}"
    assert route in functions[f"get_{selected.session_label}_{selected.stream_plural}"]
    assert "process_order_step" in functions
