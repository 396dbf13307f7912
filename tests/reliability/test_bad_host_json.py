"""Issue 19, point 4: a host.json value that would break the guarantee stops the app before it takes a
message, like a bad setting. The local host on an app directory whose host.json has the value (a copy of
function_app.py next to it, as deployed): one line on stderr, exit code 2, and the queue still holds every
message. (Before: autoCompleteMessages false applied all 50 messages and dead-lettered all 50.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.settings import DEFAULT_STORE_RETRY_SECONDS
from shared.store.retry import ATTEMPT_WORST_CASE_S, HOLD_MARGIN_S
from tests.reliability import hostrun
from tests.reliability.test_bad_settings import _clean_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO_HOST_JSON = json.loads((hostrun.REPO / "host.json").read_text())
# what functionTimeout and lock renewal must exceed with the default hold budget (shared/store/retry.py)
NEEDED = f"{DEFAULT_STORE_RETRY_SECONDS + ATTEMPT_WORST_CASE_S + HOLD_MARGIN_S:g} s"


def _service_bus(**changes: Any) -> dict[str, Any]:
    host = json.loads(json.dumps(REPO_HOST_JSON))
    host["extensions"]["serviceBus"].update(changes)
    return host


BAD = {
    "auto-complete off": (
        _service_bus(autoCompleteMessages=False),
        "host.json: extensions.serviceBus.autoCompleteMessages is false; it must be true",
    ),
    "function timeout": (
        {**REPO_HOST_JSON, "functionTimeout": "00:00:00.001"},
        f"host.json: functionTimeout 00:00:00.001 (0.001 s) must be longer than {NEEDED}",
    ),
    "lock renewal": (
        _service_bus(maxAutoLockRenewalDuration="00:00:20"),
        f"extensions.serviceBus.maxAutoLockRenewalDuration 00:00:20 (20 s) must be longer than {NEEDED}",
    ),
}


def test_a_bad_host_json_is_one_line_exit_2_and_nothing_is_consumed(
    servicebus_emulator: Any, fresh_queue: Callable[..., str], tmp_path: Path
) -> None:
    queue = fresh_queue(requires_session=True, requires_duplicate_detection=True, max_delivery_count=10)
    published = hostrun.publish(servicebus_emulator.connection_string, queue, customers=2, orders=1, seed=37)
    good = {
        "ServiceBusConnection": servicebus_emulator.connection_string,
        "ORDERS_QUEUE_NAME": queue,
        "OrderStoreConnection": f"sqlite:///{tmp_path / 'orders.db'}",
    }
    settings = hostrun.write_settings(tmp_path / "settings.json", good)
    procs = {}
    for name, (host_json, _) in BAD.items():
        app_dir = tmp_path / name.replace(" ", "-")
        app_dir.mkdir()
        shutil.copy(hostrun.REPO / "function_app.py", app_dir / "function_app.py")
        (app_dir / "host.json").write_text(json.dumps(host_json))
        cmd = hostrun.host_command(settings, until_idle=5)
        cmd[cmd.index("--app-dir") + 1] = str(app_dir)
        procs[name] = subprocess.Popen(
            cmd, cwd=str(app_dir), env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.strip()]
        print(f"{name}: exit {proc.returncode}: {lines[-1] if lines else ''}")
        assert proc.returncode == 2, (name, err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("orders: error: "), (name, err[-2000:])
        assert BAD[name][1] in lines[0], (name, lines[0])
        assert "Traceback" not in err and out == ""
    assert servicebus_emulator.active_count(queue) == len(published)  # not one message was taken
    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert not (tmp_path / "orders.db").exists()
