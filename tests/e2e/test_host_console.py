"""`orders host` as a person runs it: the app's log lines come from the worker as RpcLog messages and are
printed the way `func start` prints a worker's logs, so the default (human) console shows each message's
outcome, and `--log-format json` keeps every line JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orders_cli.traffic import PublishPlan, generate_messages
from tests.support.e2e import REPO_ROOT, publish


def _host_output(emulator: Any, queue: str, tmp_path: Path, *extra: str) -> str:
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        json.dumps(
            {
                "Values": {
                    "FUNCTIONS_WORKER_RUNTIME": "python",
                    "ServiceBusConnection": emulator.connection_string,
                    "ORDERS_QUEUE_NAME": queue,
                    "OrderStoreConnection": f"sqlite:///{tmp_path / 'orders.db'}",
                }
            }
        )
    )
    command = [sys.executable, "-m", "devstack.host", "--app-dir", str(REPO_ROOT)]
    command += ["--settings", str(settings)]
    proc = subprocess.run(
        # --port 0: 7071 is the README's `make host` (tests/e2e/test_readme.py may run at the same time)
        [*command, "--until-idle", "3", "--session-idle-timeout", "0.5", "--port", "0", *extra],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


@pytest.fixture
def published(servicebus_emulator: Any, fresh_queue: Any) -> str:
    queue = fresh_queue(requires_session=True)
    publish(
        servicebus_emulator,
        queue,
        generate_messages(PublishPlan(customers=2, orders_per_customer=1, poison=1)),
    )
    return queue


def test_the_human_console_shows_each_messages_outcome(
    servicebus_emulator: Any, published: str, tmp_path: Path
) -> None:
    text = _host_output(servicebus_emulator, published, tmp_path)
    applied = [line for line in text.splitlines() if "order step applied outcome=applied" in line]
    quarantined = [line for line in text.splitlines() if "outcome=quarantined reason=malformed-json" in line]
    assert len(applied) == 10 and len(quarantined) == 1, text
    assert all("order_id=" in line and "step=" in line for line in applied)
    assert text.count(" process_order_step session=") == 11 and "Succeeded" in text
    assert "{" not in "".join(applied), "the app's JSON line is rendered, not dumped"
    # the worker library's own (System) records stay out of the console
    assert "Function name:" not in text and "Traceback" not in text


def test_json_form_keeps_the_apps_lines_as_json(
    servicebus_emulator: Any, published: str, tmp_path: Path
) -> None:
    text = _host_output(servicebus_emulator, published, tmp_path, "--log-format", "json")
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    outcomes = [d["extra"]["outcome"] for d in docs if d.get("logger") == "orders.processing"]
    assert sorted(outcomes) == ["applied"] * 10 + ["quarantined"]
    app_line = next(d for d in docs if d.get("logger") == "orders.processing")
    assert app_line["invocation_id"] and app_line["function_name"] == "process_order_step"
