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
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("orders host: error: Service Bus connection")


def test_bad_arguments(tmp_path: Path) -> None:
    proc = run_host("--until-idle", "soon", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_host("--app-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "no function_app.py" in proc.stderr
    proc = run_host("--settings", str(tmp_path / "missing.json"), "--app-dir", str(REPO_ROOT), cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
