"""Hostile bodies through the real path: azure-servicebus SDK -> emulator -> local host (which builds the
invocation input as the Functions host does and decodes it with azure.functions' own converter) -> the app.

Once with the binding as shipped (`dataType: binary`): every override is harmless. Once with the trigger
forced back to the default string binding: the local host shows what Azure does (the body rewrites the
session id and message id, and `"DeliveryCount": "x"` fails every delivery until the broker dead-letters)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from devstack.host import LocalHost
from tests.support.builders import body
from tests.support.e2e import local_host

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
MAX_DELIVERY = 3

# message id -> the body's extra top-level properties (the rest is a valid order step of cust-a)
HOSTILE: dict[str, dict[str, Any]] = {
    "m-session": {"SessionId": "cust-b"},
    "m-msgid": {"messageId": "forged-id"},
    "m-count": {"DeliveryCount": "x"},
}


def _send_hostile(emulator: Any, queue: str) -> None:
    client = ServiceBusClient.from_connection_string(emulator.connection_string)
    with client, client.get_queue_sender(queue) as sender:
        for seq, (message_id, extra) in enumerate(HOSTILE.items(), start=1):
            doc = json.loads(body("order.placed", 1, customer="cust-a", order=f"ord-{seq}"))
            sender.send_messages(
                ServiceBusMessage(
                    json.dumps({**doc, **extra}),
                    session_id="cust-a",
                    message_id=message_id,
                    content_type="application/json",
                )
            )


def _run(
    emulator: Any, fresh_queue: Any, tmp_path: Path, overrides: dict[str, Any] | None
) -> tuple[LocalHost, str]:
    queue = fresh_queue(requires_session=True, max_delivery_count=MAX_DELIVERY, lock_duration="PT30S")
    _send_hostile(emulator, queue)
    host = local_host(
        emulator, queue, tmp_path, binding_overrides={"process_order_step": overrides} if overrides else None
    )
    host.run_until_idle(1.0, timeout=90)
    return host, queue


def _seen(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, int]]:
    """(session_id, message_id, delivery_count) of every message the app processed, from its log line."""
    return [
        (r.session_id, r.message_id, r.delivery_count)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "orders.processing" and hasattr(r, "outcome") and hasattr(r, "session_id")
    ]


def test_hostile_overrides_are_harmless_with_the_shipped_binary_binding(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host, queue = _run(servicebus_emulator, fresh_queue, tmp_path, None)
    assert host.counters.completed == len(HOSTILE) and host.counters.abandoned == 0
    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert sorted(_seen(caplog)) == sorted(("cust-a", mid, 1) for mid in HOSTILE)


def test_with_a_string_binding_the_local_host_shows_the_azure_failures(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host, queue = _run(servicebus_emulator, fresh_queue, tmp_path, {"dataType": "String"})
    seen = _seen(caplog)
    # A message of session cust-a reaches the function as session cust-b; another gets a forged id.
    assert ("cust-b", "m-session", 1) in seen
    assert ("cust-a", "forged-id", 1) in seen
    # "DeliveryCount": "x": the converter fails before the function runs, every delivery is abandoned
    # and the broker dead-letters the message at MaxDeliveryCount.
    assert all(mid != "m-count" for _, mid, _ in seen)
    assert host.counters.abandoned == MAX_DELIVERY and host.counters.completed == 2
    assert servicebus_emulator.dead_letter_count(queue) == 1
    # The worker's converter refused it (azure-functions-runtime): one WARNING line per delivery naming the
    # field, never the body-supplied value, and no traceback.
    failures = [r for r in caplog.records if getattr(r, "conversion", None) is True]
    assert len(failures) == MAX_DELIVERY
    for record in failures:
        assert record.levelno == logging.WARNING and record.error == "ValueError"  # type: ignore[attr-defined]
        assert "'DeliveryCount'" in record.detail and "'x'" not in record.detail  # type: ignore[attr-defined]
        assert not hasattr(record, "stack_trace")
