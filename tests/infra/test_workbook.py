"""The Azure Monitor workbook: composed in main.bicep, generated content in step with its generator,
every required panel present and linked to its runbook step, and its KQL reading the log line's
fields where the app really writes them."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from azure_functions_logging import JsonFormatter

from shared.envelope import SessionEnvelope
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store.base import StoreUnavailable
from shared.store.memory import InMemoryOrderStore
from tests.infra import bicep_rules as rules
from tests.support.builders import HAPPY_PATH, body

Parsed = dict[str, dict[str, Any]]


def _load_generator() -> Any:
    """scripts/build_workbook.py (scripts/ is not a package: it is run as files)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_workbook", rules.REPO_ROOT / "scripts" / "build_workbook.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_workbook = _load_generator()
WORKBOOK_JSON = rules.INFRA / "workbook" / "orders-pipeline.workbook.json"
OPERATIONS = rules.REPO_ROOT / "docs" / "operations.md"


@pytest.fixture(scope="module")
def workbook() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(WORKBOOK_JSON.read_text(encoding="utf-8"))
    return doc


def _panels(workbook: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in workbook["items"] if item["type"] in (3, 10)}


def test_main_composes_the_workbook_module_over_app_insights_and_service_bus(bicep: Parsed) -> None:
    module = bicep["main.bicep"]["modules"]["workbook"]
    assert module["detail"]["path"] == "./modules/workbook.bicep"
    params = module["config"]["params"]
    assert "monitoring" in json.dumps(params["applicationInsightsId"])
    assert "applicationInsightsId" in json.dumps(params["applicationInsightsId"])
    assert "serviceBus" in json.dumps(params["serviceBusNamespaceId"])
    assert "namespaceId" in json.dumps(params["serviceBusNamespaceId"])


def test_the_workbook_resource_is_a_shared_workbook_loading_the_generated_file(bicep: Parsed) -> None:
    parsed = bicep["workbook.bicep"]
    resource = rules.single(parsed, "Microsoft.Insights/workbooks")
    assert resource["kind"] == "shared"
    assert resource["name"]["function"]["type"] == "guid"  # workbook names must be GUIDs
    properties = resource["properties"]
    assert properties["category"] == "workbook"
    assert properties["sourceId"] == "applicationInsightsId"
    content = parsed["variables"][properties["serializedData"]]["value"]["function"]
    assert content["type"] == "replace"
    loaded = parsed["variables"][content["parameters"]["original_string"]]["value"]["function"]
    assert loaded["type"] == "load_text_content"
    assert (rules.MODULES / loaded["parameters"]["file_path"]).resolve() == WORKBOOK_JSON.resolve()
    placeholder = content["parameters"]["old_string"]
    assert placeholder == build_workbook.NAMESPACE_PLACEHOLDER
    assert placeholder in WORKBOOK_JSON.read_text(encoding="utf-8")
    assert content["parameters"]["new_string"] == "serviceBusNamespaceId"


def test_the_committed_workbook_is_what_the_generator_writes() -> None:
    assert WORKBOOK_JSON.read_text(encoding="utf-8") == build_workbook.render(), (
        "run: python scripts/build_workbook.py"
    )


def test_every_panel_the_runbook_needs_is_there(workbook: dict[str, Any]) -> None:
    assert workbook["version"] == "Notebook/1.0"
    panels = _panels(workbook)
    assert set(panels) == {
        "outcomes-per-minute",
        "lag",
        "quarantines-by-reason",
        "heading-for-dead-letter",
        "dead-letters",
        "hot-sessions",
        "stuck-orders",
        "order-timeline",
    }
    queries = {name: p["content"].get("query", "") for name, p in panels.items()}
    assert (
        "bin(timestamp, 1m)" in queries["outcomes-per-minute"]
        and "by outcome" in queries["outcomes-per-minute"]
    )
    assert "percentile(lag_ms, 95)" in queries["lag"]
    assert (
        'outcome == "quarantined"' in queries["quarantines-by-reason"]
        and "by reason" in queries["quarantines-by-reason"]
    )
    assert "final_attempt" in queries["heading-for-dead-letter"]
    assert "by session" in queries["hot-sessions"]
    assert "order_id == '{OrderId}'" in queries["order-timeline"] and "trace_id" in queries["order-timeline"]
    [metric] = panels["dead-letters"]["content"]["metrics"]
    assert metric["metric"].endswith("--DeadletteredMessages") and metric["splitBy"] == ["EntityName"]
    parameters = {
        p["name"] for item in workbook["items"] if item["type"] == 9 for p in item["content"]["parameters"]
    }
    assert parameters == {"TimeRange", "OrderId", "StuckAfterMinutes"}
    for name, panel in panels.items():
        if name == "stuck-orders":  # looks back as far as the alert does, whatever the chosen range
            assert panel["content"]["timeContext"] == {"durationMs": build_workbook.STUCK_LOOKBACK_MS}
            continue
        assert panel["content"]["timeContextFromParameter"] == "TimeRange", name
        if panel["type"] == 3:
            query = panel["content"]["query"]
            assert query.startswith(build_workbook.PRELUDE), name
            assert query.count("(") == query.count(")"), name


def test_the_stuck_panel_and_the_alert_run_one_query_with_the_same_default_threshold(
    workbook: dict[str, Any], bicep: Parsed
) -> None:
    from shared.settings import DEFAULT_STUCK_AFTER_MINUTES

    stuck = build_workbook.STUCK_QUERY
    panel = _panels(workbook)["stuck-orders"]["content"]["query"]
    assert panel.startswith(
        build_workbook.PRELUDE + stuck.replace("__STUCK_AFTER_MINUTES__", "{StuckAfterMinutes}")
    )
    assert (
        "{StuckAfterMinutes}" in panel
        and "(runbook: docs/operations.md > Why is order X stuck?)"
        in (_panels(workbook)["stuck-orders"]["content"]["title"])
    )
    kql = (rules.INFRA / "workbook" / "stuck-orders.kql").read_text(encoding="utf-8")
    assert kql == build_workbook.render_stuck_alert_query(), "run: make workbook"
    assert build_workbook.PRELUDE + stuck in kql and "stuck_orders = count()" in kql
    assert kql.count("(") == kql.count(")") and kql.count("__STUCK_AFTER_MINUTES__") == 1
    for field in ("outcome", "parked_steps", "order_id", "session_id"):
        assert f"x.{field}" in kql, field  # read where the app writes it (the prelude, tested below)
    [parameter] = [
        p for item in workbook["items"] if item["type"] == 9 for p in item["content"]["parameters"]
        if p["name"] == "StuckAfterMinutes"
    ]  # fmt: skip
    assert parameter["value"] == str(DEFAULT_STUCK_AFTER_MINUTES)
    alerts = bicep["alerts.bicep"]
    assert rules.param_default(alerts, "stuckAfterMinutes") == DEFAULT_STUCK_AFTER_MINUTES
    assert rules.param_default(bicep["main.bicep"], "ordersStuckAfterMinutes") == DEFAULT_STUCK_AFTER_MINUTES
    assert (
        "loadTextContent('../workbook/stuck-orders.kql')"
        in (rules.INFRA / "modules" / "alerts.bicep").read_text()
    )


def test_each_panel_names_a_runbook_step_that_exists(workbook: dict[str, Any]) -> None:
    headings = {
        line.lstrip("#").strip()
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for name, panel in _panels(workbook).items():
        match = re.search(r"\(runbook: docs/operations\.md > (.+)\)$", panel["content"]["title"])
        assert match, f"{name}: no runbook step in its title"
        assert match.group(1) in headings, f"{name}: no heading {match.group(1)!r} in docs/operations.md"


def test_the_kql_reads_the_fields_where_the_app_writes_them(spans: Any) -> None:
    """Log one real message (and one retry) through OrderService with the JSON formatter the app uses,
    and check every field the workbook reads is where the prelude looks: under "extra", or trace_id at
    the top."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("orders.processing")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        store = InMemoryOrderStore()
        service = OrderService(AppSettings(store_retry_seconds=0), store)  # give the message back at once
        envelope = SessionEnvelope(body(HAPPY_PATH[0], 1), "cust-1", "m-1", sequence_number=7)
        service.handle(envelope)

        def down(*_: Any, **__: Any) -> None:
            raise StoreUnavailable("table storage down")

        store.commit = down  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable):
            service.handle(SessionEnvelope(body(HAPPY_PATH[1], 2), "cust-1", "m-2", delivery_count=10))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    lines = [json.loads(JsonFormatter().format(r)) for r in records if hasattr(r, "outcome")]
    applied = next(line for line in lines if line["extra"]["outcome"] == "applied")
    retry = next(line for line in lines if line["extra"]["outcome"] == "retry")
    for column, field, _ in build_workbook._FIELDS:
        source = retry if field == "final_attempt" else applied
        assert field in source["extra"], (
            f"the workbook reads x.{field} ({column}); the log line has no such field"
        )
    assert retry["extra"]["final_attempt"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", applied["trace_id"]), "trace_id at the top of the line"
