"""The HTTP trigger served by the local host, called with a real HTTP client after the orders were
processed through the emulator: `GET /api/customers/<id>/orders` like `func start` serves it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orders_cli.traffic import PublishPlan, generate_messages
from tests.support.e2e import local_host, publish

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_customer_orders_are_served_over_http(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path
) -> None:
    queue = fresh_queue(requires_session=True, max_delivery_count=10)
    messages = generate_messages(PublishPlan(customers=2, orders_per_customer=2, seed=3))
    publish(servicebus_emulator, queue, messages)
    customer = messages[0].session_id
    host = local_host(servicebus_emulator, queue, tmp_path, http_port=0)  # any free port; the CLI's is 7071
    with host:
        assert host.wait_until_idle(1.0, timeout=90)
        base = f"http://127.0.0.1:{host.http_server.port}/api"

        status, headers, payload = _get(f"{base}/customers/{customer}/orders")
        assert status == 200 and headers["content-type"].startswith("application/json")
        doc = json.loads(payload)
        assert doc["customer_id"] == customer
        assert sorted(o["order_id"] for o in doc["orders"]) == sorted(
            {str(m.order_id) for m in messages if m.session_id == customer and m.order_id}
        )

        assert _get(f"{base}/Customers/{customer}/ORDERS")[0] == 200  # literal segments: case-insensitive
        assert _get(f"{base}/customers/x%2F..%2Fy/orders")[0] == 400  # the function's own validation
        assert _get(f"{base}/customers/{customer}")[0] == 404
        assert _get(f"http://127.0.0.1:{host.http_server.port}/customers/{customer}/orders")[0] == 404
        status, headers, _ = _get(f"{base}/customers/{customer}/orders", method="POST")
        assert status == 405 and headers["allow"] == "GET"
