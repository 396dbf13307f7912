"""Write infra/workbook/orders-pipeline.workbook.json, the Azure Monitor workbook the Bicep deploys.

The workbook is generated so that every panel reads the per-message log line the same way (one KQL
prelude) and names the runbook step it serves. `python scripts/build_workbook.py` rewrites the file;
tests/infra/test_workbook.py fails when the committed file and this script disagree.

Placeholders replaced by infra/modules/workbook.bicep: __SERVICEBUS_NAMESPACE_ID__ (dead-letter metric).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "infra" / "workbook" / "orders-pipeline.workbook.json"
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
        f"trace id. Each panel names the runbook step it serves ({RUNBOOK_DOC}). Enter an order id "
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


def main() -> int:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT.relative_to(REPO_ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
