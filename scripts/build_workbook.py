"""Write infra/workbook/orders-pipeline.workbook.json, the Azure Monitor workbook the Bicep deploys.

The workbook is generated so that every panel reads the per-message log line the same way (one KQL
prelude) and names the runbook step it serves. `python scripts/build_workbook.py` rewrites the file;
tests/infra/test_workbook.py fails when the committed file and this script disagree.

Placeholders replaced by infra/modules/workbook.bicep: __SERVICEBUS_NAMESPACE_ID__ (dead-letter metric).

It also writes infra/workbook/stuck-orders.kql, the stuck-order query the alert in infra/modules/alerts.bicep
loads (`loadTextContent`), so the workbook panel and the alert are one query; each replaces
__STUCK_AFTER_MINUTES__ with its threshold (the workbook's StuckAfterMinutes parameter, the Bicep's
ordersStuckAfterMinutes; both default to ORDERS_STUCK_AFTER_MINUTES's 15).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "infra" / "workbook" / "orders-pipeline.workbook.json"
STUCK_OUTPUT = REPO_ROOT / "infra" / "workbook" / "stuck-orders.kql"
STUCK_PLACEHOLDER = "__STUCK_AFTER_MINUTES__"
STUCK_LOOKBACK_MS = 2 * 24 * 3600 * 1000  # how far back a gap is looked for (the alert's P2D query range)
RUNBOOK_DOC = "docs/operations.md"
NAMESPACE_PLACEHOLDER = "__SERVICEBUS_NAMESPACE_ID__"

# Where the app's JSON log line puts each field: azure-functions-logging's JsonFormatter nests the
# `extra` fields under "extra" and puts trace_id/span_id at the top; some logging paths surface them as
# customDimensions instead. Every panel reads all three.
_FIELDS: tuple[tuple[str, str, str], ...] = (
    # (column, log field, KQL conversion)
    ("outcome", "outcome", "tostring"),
    ("reason", "reason", "tostring"),
    ("session", "session_id", "tostring"),
    ("order_id", "order_id", "tostring"),
    ("sequence", "sequence", "toint"),
    ("step", "step", "tostring"),
    ("message_id", "message_id", "tostring"),
    ("delivery_count", "delivery_count", "toint"),
    ("lag_ms", "lag_ms", "todouble"),
    ("duration_ms", "duration_ms", "todouble"),
    ("final_attempt", "final_attempt", "tobool"),
    ("quarantine_ids", "quarantine_ids", "tostring"),
    ("parked_steps", "parked_steps", "toint"),
)
PRELUDE = (
    "let steps = traces\n"
    '| where message has "outcome" or isnotempty(customDimensions.outcome)\n'
    "| extend p = parse_json(message)\n"
    "| extend x = p.extra\n"
    "| extend "
    + ",\n         ".join(
        f"{column} = coalesce({conv}(customDimensions.{field}), {conv}(x.{field}), {conv}(p.{field}))"
        for column, field, conv in _FIELDS
    )
    + ",\n         trace_id = coalesce(tostring(customDimensions.trace_id), tostring(p.trace_id))\n"
    "| where isnotempty(outcome);\n"
)

# Stuck orders from the log lines alone: every line of a processed message says how many steps its order
# holds parked after it (`parked_steps`, shared/service.py). An order is stuck when its latest line still
# has parked steps and the first `parked` line since its last line with none is older than the threshold.
STUCK_QUERY = (
    f"let stuck_after = {STUCK_PLACEHOLDER} * 1m;\n"
    "let lines = steps | where isnotempty(order_id) and isnotnull(parked_steps);\n"
    "let latest = lines\n"
    "    | summarize arg_max(timestamp, parked_steps) by session, order_id\n"
    "    | where parked_steps > 0\n"
    "    | project session, order_id, last_line = timestamp, parked_now = parked_steps;\n"
    "let cleared = lines\n"
    "    | where parked_steps == 0\n"
    "    | summarize cleared_at = max(timestamp) by session, order_id;\n"
    "lines\n"
    '| where outcome == "parked"\n'
    "| join kind=inner latest on session, order_id\n"
    "| join kind=leftouter cleared on session, order_id\n"
    "| where isnull(cleared_at) or timestamp > cleared_at\n"
    "| summarize parked_since = min(timestamp), parked_sequences = make_set(sequence),\n"
    "            parked_now = take_any(parked_now), last_line = take_any(last_line) by session, order_id\n"
    "| where parked_since < ago(stuck_after)\n"
    "| extend waiting_minutes = round((now() - parked_since) / 1m, 1)"
)
# What the alert evaluates: one row, the number of stuck orders (its measure) and an example to start from.
STUCK_ALERT_SUMMARY = (
    "\n| summarize stuck_orders = count(), oldest_since = min(parked_since),"
    "\n            example_order = take_any(order_id), example_customer = take_any(session)\n"
)

# (panel name, title, the docs/operations.md heading of the runbook step it serves, query after the
#  prelude, visualization)
PANELS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "outcomes-per-minute",
        "Outcomes per minute",
        "Outcomes per minute",
        "steps\n| summarize count() by outcome, bin(timestamp, 1m)",
        "timechart",
    ),
    (
        "lag",
        "Lag, enqueue to processing (ms)",
        "Lag (enqueue → processing)",
        "steps\n| where isnotnull(lag_ms)\n"
        "| summarize p50 = percentile(lag_ms, 50), p95 = percentile(lag_ms, 95), max_lag = max(lag_ms),\n"
        "            p95_duration = percentile(duration_ms, 95) by bin(timestamp, 1m)",
        "timechart",
    ),
    (
        "quarantines-by-reason",
        "Quarantines by reason",
        "Quarantined messages",
        'steps\n| where outcome == "quarantined"\n'
        "| summarize messages = count(), sessions = dcount(session), example_order = any(order_id),\n"
        "            example_quarantine_ids = any(quarantine_ids) by reason\n| order by messages desc",
        "table",
    ),
    (
        "heading-for-dead-letter",
        "Last-attempt retries (heading for the dead-letter queue)",
        "Dead letters",
        'steps\n| where outcome == "retry" and final_attempt\n'
        "| project timestamp, session, order_id, sequence, message_id, delivery_count, trace_id\n"
        "| order by timestamp desc",
        "table",
    ),
    (
        "hot-sessions",
        "Hot sessions (busiest customers)",
        "Scaling",
        "steps\n| summarize messages = count(), p95_lag = percentile(lag_ms, 95), parked = countif(outcome"
        ' == "parked"),\n            quarantined = countif(outcome == "quarantined") by session\n'
        "| top 20 by messages",
        "table",
    ),
    (
        "stuck-orders",
        "Stuck orders: parked steps older than {StuckAfterMinutes} min (last 2 days)",
        "Why is order X stuck?",
        STUCK_QUERY.replace(STUCK_PLACEHOLDER, "{StuckAfterMinutes}")
        + "\n| project order_id, session, waiting_minutes, parked_since, parked_now, parked_sequences,"
        "\n          last_line\n| order by parked_since asc",
        "table",
    ),
    (
        "order-timeline",
        "One order's timeline ({OrderId})",
        "Why is order X stuck?",
        "steps\n| where order_id == '{OrderId}'\n"
        "| project timestamp, sequence, step, outcome, reason, delivery_count, lag_ms, session, message_id,\n"
        "          quarantine_ids, trace_id\n| order by timestamp asc",
        "table",
    ),
)


def _text(name: str, markdown: str) -> dict[str, Any]:
    return {"type": 1, "content": {"json": markdown}, "name": name}


def runbook_title(title: str, heading: str) -> str:
    """A panel's title names its runbook step: `... (runbook: docs/operations.md > HEADING)`."""
    return f"{title} (runbook: {RUNBOOK_DOC} > {heading})"


def _query(name: str, title: str, heading: str, query: str, visualization: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": 3,
        "content": {
            "version": "KqlItem/1.0",
            "query": PRELUDE + query,
            "size": 0,
            "title": runbook_title(title, heading),
            "noDataMessage": "No per-message log lines in this time range.",
            "timeContextFromParameter": "TimeRange",
            "queryType": 0,
            "resourceType": "microsoft.insights/components",
            "visualization": visualization,
        },
        "customWidth": "50",
        "name": name,
    }
    if name == "stuck-orders":  # a gap may have opened before the chosen range: look back as the alert does
        del item["content"]["timeContextFromParameter"]
        item["content"]["timeContext"] = {"durationMs": STUCK_LOOKBACK_MS}
        item["content"]["noDataMessage"] = "No order has waited longer than the threshold in the last 2 days."
    if "{OrderId}" in query:
        item["customWidth"] = "100"
        item["conditionalVisibility"] = {
            "parameterName": "OrderId",
            "comparison": "isNotEqualTo",
            "value": "",
        }
    return item


def _dead_letter_metric() -> dict[str, Any]:
    namespace = "microsoft.servicebus/namespaces"
    return {
        "type": 10,
        "content": {
            "chartId": "workbook-orders-deadletters",
            "version": "MetricsItem/2.0",
            "size": 0,
            "chartType": 2,
            "resourceType": namespace,
            "metricScope": 0,
            "resourceIds": [NAMESPACE_PLACEHOLDER],
            "timeContextFromParameter": "TimeRange",
            "timeContext": {"durationMs": 3600000},
            "metrics": [
                {
                    "namespace": namespace,
                    "metric": f"{namespace}--DeadletteredMessages",
                    "aggregation": 4,
                    "splitBy": ["EntityName"],
                }
            ],
            "title": runbook_title("Dead-lettered messages per queue (Service Bus metric)", "Dead letters"),
        },
        "customWidth": "50",
        "name": "dead-letters",
    }


def build() -> dict[str, Any]:
    parameters = {
        "type": 9,
        "content": {
            "version": "KqlParameterItem/1.0",
            "parameters": [
                {
                    "id": "5a0c4a43-53a4-4a1b-9a8e-1f8f0c1d2e01",
                    "version": "KqlParameterItem/1.0",
                    "name": "TimeRange",
                    "label": "Time range",
                    "type": 4,
                    "isRequired": True,
                    "value": {"durationMs": 3600000},
                    "typeSettings": {
                        "selectableValues": [
                            {"durationMs": ms} for ms in (900000, 3600000, 14400000, 86400000, 604800000)
                        ]
                    },
                },
                {
                    "id": "5a0c4a43-53a4-4a1b-9a8e-1f8f0c1d2e03",
                    "version": "KqlParameterItem/1.0",
                    "name": "StuckAfterMinutes",
                    "label": "Stuck after (minutes)",
                    "type": 1,
                    "isRequired": True,
                    "value": "15",
                    "description": "ORDERS_STUCK_AFTER_MINUTES: parked steps older than this are stuck",
                },
                {
                    "id": "5a0c4a43-53a4-4a1b-9a8e-1f8f0c1d2e02",
                    "version": "KqlParameterItem/1.0",
                    "name": "OrderId",
                    "label": "Order id (for its timeline)",
                    "type": 1,
                    "value": "",
                },
            ],
        },
        "name": "parameters",
    }
    intro = _text(
        "intro",
        "## Orders pipeline\n"
        "One JSON log line per message (`shared/service.py`): outcome, reason, session, order, lag, "
        f"trace id. Each panel names the runbook step it serves ({RUNBOOK_DOC}). Stuck orders are those "
        "whose parked steps have waited longer than the threshold (the alert uses the same query). Enter an "
        "order id "
        "below for its timeline; its `trace_id` opens the end-to-end transaction (publisher span -> "
        "processing span -> store calls) in Application Insights.",
    )
    items: list[dict[str, Any]] = [intro, parameters]
    for panel in PANELS:
        items.append(_query(*panel))
        if panel[0] == "heading-for-dead-letter":
            items.append(_dead_letter_metric())
    return {
        "version": "Notebook/1.0",
        "items": items,
        "isLocked": False,
        "fallbackResourceIds": ["Azure Monitor"],
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def render_stuck_alert_query() -> str:
    """infra/workbook/stuck-orders.kql: the workbook's stuck query, summed up for the alert."""
    header = (
        "// Generated by scripts/build_workbook.py (make workbook): the stuck-order query of the workbook,\n"
        "// summed up for the alert in infra/modules/alerts.bicep, which puts its threshold in stuck_after.\n"
    )
    return header + PRELUDE + STUCK_QUERY + STUCK_ALERT_SUMMARY


def main() -> int:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render(), encoding="utf-8")
    STUCK_OUTPUT.write_text(render_stuck_alert_query(), encoding="utf-8")
    for path in (OUTPUT, STUCK_OUTPUT):
        sys.stdout.write(f"wrote {path.relative_to(REPO_ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
