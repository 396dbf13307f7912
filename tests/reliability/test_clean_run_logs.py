"""A clean local run logs no ERROR line (issue 19 point 8): with short locks, session lock renewal used to
run on the SDK's AutoLockRenewer threads while the receiver's own thread received, settled or closed it,
and the (not thread-safe) AMQP connection failed under them: "Unexpected error occurred (...). Handler
shutting down." at ERROR, dozens per run. The host now renews from the receiver's thread
(devstack/host/locks.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import hostrun


@pytest.mark.parametrize("mode", ["one", "many"])
def test_a_clean_run_with_short_locks_logs_no_error_and_loses_nothing(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, mode: str
) -> None:
    queue = fresh_queue(requires_session=True, lock_duration="PT3S", max_delivery_count=10)
    published = hostrun.publish(servicebus_emulator.connection_string, queue, customers=40, orders=3, seed=7)
    settings = hostrun.write_settings(
        tmp_path / "local.settings.json",
        {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "ServiceBusConnection": servicebus_emulator.connection_string,
            "ORDERS_QUEUE_NAME": queue,
            "OrderStoreConnection": f"sqlite:///{tmp_path / 'orders.db'}",
            "ORDERS_TRIGGER_CARDINALITY": mode,
        },
    )
    proc = subprocess.run(
        hostrun.host_command(settings, until_idle=4),
        cwd=str(hostrun.REPO),
        env={**os.environ, "PYTHONPATH": str(hostrun.REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    errors = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    assert errors == [], [f"{r['logger']}: {r['message']}" for r in errors][:5]
    outcomes = [r["extra"]["outcome"] for r in records if r.get("logger") == "orders.processing"]
    assert len(outcomes) >= len(published)
    assert servicebus_emulator.active_count(queue) == 0 and servicebus_emulator.dead_letter_count(queue) == 0
