"""`orders host` argument and configuration errors: one line, non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_host(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ServiceBusConnection", "ORDERS_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "devstack.host", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_connection_setting(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"ORDERS_QUEUE_NAME": "q"}}))
    proc = run_host("--app-dir", str(REPO_ROOT), "--settings", str(settings), cwd=tmp_path)
    assert proc.returncode == 2  # a setting: fix the input (retrying will not help), as for every command
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("orders: error: Service Bus connection")


def test_bad_arguments(tmp_path: Path) -> None:
    proc = run_host("--until-idle", "soon", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_host("--app-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "no function_app.py" in proc.stderr
    proc = run_host("--settings", str(tmp_path / "missing.json"), "--app-dir", str(REPO_ROOT), cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_host(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    port = _free_port()  # nothing listens there
    settings = tmp_path / "local.settings.json"
    conn = f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=local;UseDevelopmentEmulator=true;"
    settings.write_text(
        json.dumps(
            {
                "Values": {
                    "ServiceBusConnection": conn,
                    "ORDERS_QUEUE_NAME": "q",
                    "OrderStoreConnection": f"sqlite:///{tmp_path / 'o.db'}",
                }
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ServiceBusConnection", "ORDERS_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    err = tmp_path / "stderr.txt"
    proc = subprocess.Popen(
        [
            *(
                sys.executable,
                "-m",
                "devstack.host",
                "--app-dir",
                str(REPO_ROOT),
                "--settings",
                str(settings),
            ),
            *("--max-concurrent-sessions", "4", "--port", "0", *args),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err.open("w"),
        text=True,
    )
    return proc, err


def _wait_for(path: Path, text: str, timeout: float = 30.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text()
        if text in content:
            return content
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not seen in: {path.read_text()[-2000:]}")


def test_unreachable_broker_is_one_line_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    import signal
    import time

    proc, err = _start_host(tmp_path)
    try:
        _wait_for(err, "Service Bus not reachable at 127.0.0.1:")
        time.sleep(3)  # several receivers retry meanwhile, with back-off
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill() if proc.poll() is None else None
    text = err.read_text()
    lines = [x for x in text.splitlines() if "not reachable" in x]
    assert len(lines) == 1 and lines[0].endswith("start it with `make emulator`"), text
    assert "Traceback" not in text
    assert not [x for x in text.splitlines() if " warning " in x or " error " in x], text  # SDK noise
    assert (
        "get_customer_orders: [GET] http://127.0.0.1:" in text
        and "/api/customers/{customer_id}/orders" in text
    )
    assert "auth levels are not enforced locally" in text


def test_json_log_format_is_every_line_json(tmp_path: Path) -> None:
    import signal

    proc, err = _start_host(tmp_path, "--log-format", "json")
    try:
        _wait_for(err, "not reachable")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill() if proc.poll() is None else None
    docs = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]
    started = next(d for d in docs if d["message"] == "local host started")
    urls = [f["url"] for f in started["extra"]["functions"] if f.get("url")]
    assert len(urls) == 1 and urls[0].endswith("/api/customers/{customer_id}/orders")
    assert any(d["message"] == "local host stopped" for d in docs)
