"""Issue 9, point 4: a malformed setting stops the app before it takes a message.

The local host: one line on stderr, exit code 2, and the queue still holds every message. In Azure:
function_app.py raises at import, which fails the worker's function indexing (docs/operations.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import hostrun

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

BAD = {
    "store scheme": ({"OrderStoreConnection": "bogus://x"}, "OrderStoreConnection must be sqlite:///PATH"),
    "sqlite url": ({"OrderStoreConnection": "sqlite://orders.db"}, "three slashes"),
    "storage string": ({"OrderStoreConnection": "AccountName=x"}, "AccountKey/SharedAccessSignature"),
    "table name": (
        {"OrderStoreConnection": "UseDevelopmentStorage=true", "ORDERS_TABLE_NAME": "my-orders"},
        "ORDERS_TABLE_NAME must be",
    ),
    "queue name": ({"ORDERS_QUEUE_NAME": "-orders-"}, "ORDERS_QUEUE_NAME must be"),
    "retry seconds": ({"ORDERS_STORE_RETRY_SECONDS": "forever"}, "ORDERS_STORE_RETRY_SECONDS must be"),
    "park limit": ({"ORDERS_PARK_LIMIT": "0"}, "ORDERS_PARK_LIMIT must be at least 1"),
    "park limit the table store cannot hold": (  # issue 19, point 2
        {"OrderStoreConnection": "UseDevelopmentStorage=true", "ORDERS_PARK_LIMIT": "150"},
        "ORDERS_PARK_LIMIT must be at most 98 with the Table store",
    ),
    "in-memory sqlite": ({"OrderStoreConnection": "sqlite:///:memory:"}, "must be a file path"),
    "trigger mode": (
        {"ORDERS_TRIGGER_CARDINALITY": "several"},
        "ORDERS_TRIGGER_CARDINALITY must be one of one, many",
    ),
    "service bus": ({"ServiceBusConnection": "bogus"}, "ServiceBusConnection"),
    "service bus endpoint": (
        {"ServiceBusConnection": "Endpoint=http://x;SharedAccessKeyName=a;SharedAccessKey=b"},
        "Endpoint=sb://",
    ),
}


def test_a_bad_setting_is_one_line_exit_1_and_nothing_is_consumed(
    servicebus_emulator: Any, fresh_queue: Callable[..., str], tmp_path: Path
) -> None:
    queue = fresh_queue(requires_session=True, requires_duplicate_detection=True, max_delivery_count=10)
    published = hostrun.publish(servicebus_emulator.connection_string, queue, customers=2, orders=1, seed=31)
    good = {
        "ServiceBusConnection": servicebus_emulator.connection_string,
        "ORDERS_QUEUE_NAME": queue,
        "OrderStoreConnection": f"sqlite:///{tmp_path / 'orders.db'}",
    }
    procs = {}
    for name, (bad, _) in BAD.items():  # all at once: each is a fresh interpreter
        settings = hostrun.write_settings(tmp_path / f"{name.replace(' ', '-')}.json", {**good, **bad})
        cmd = hostrun.host_command(settings, until_idle=5)
        procs[name] = subprocess.Popen(
            cmd,
            cwd=str(hostrun.REPO),
            env=_clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.strip()]
        print(f"{name}: exit {proc.returncode}: {lines[-1] if lines else ''}")
        assert proc.returncode == 2, (name, err[-2000:])  # a setting: fix the input, as for every command
        assert len(lines) == 1 and lines[0].startswith("orders: error: "), (name, err[-2000:])
        assert BAD[name][1] in lines[0], name
        assert "Traceback" not in err and out == ""
    assert servicebus_emulator.active_count(queue) == len(published)  # not one message was taken
    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert not (tmp_path / "orders.db").exists()  # nor was the store opened


_WORKER_INIT = (
    "import sys; from pathlib import Path; from devstack.host.worker import LanguageWorker, WorkerInitError\n"
    "w = LanguageWorker(Path(sys.argv[1]))\n"
    "try:\n    w.start()\nexcept WorkerInitError as exc:\n    print(exc); sys.exit(3)\n"
    "finally:\n    w.stop()\n"
    "print(sorted(w.functions))"
)


def test_the_worker_refuses_to_load_the_app_with_a_bad_store_setting(tmp_path: Path) -> None:
    """What Azure's worker (azure-functions-runtime) does when it indexes the app: function_app raises at
    import, so WorkerInitResponse fails and the host serves no function and starts no Service Bus
    listener (rather than consuming and dead-lettering the queue)."""
    env = {**_clean_env(), "OrderStoreConnection": "bogus://x", "PYTHONPATH": str(hostrun.REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER_INIT, str(hostrun.REPO)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "SettingsError: OrderStoreConnection must be sqlite:///PATH" in proc.stdout
    ok = subprocess.run(
        [sys.executable, "-c", _WORKER_INIT, str(hostrun.REPO)],
        cwd=str(tmp_path),  # no local.settings.json here: defaults only
        env={**_clean_env(), "PYTHONPATH": str(hostrun.REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "process_order_step" in ok.stdout


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ORDERS_", "OrderStore", "ServiceBus", "IDEMPOTENCY"))
    }
    env["PYTHONPATH"] = str(hostrun.REPO)
    return env
