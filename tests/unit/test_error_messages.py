"""Every error a new user met (issue 21) says what to do, in one line, with the convention of every `orders`
subcommand (docs/cli.md): `orders: error: ...` on stderr, exit 2 for usage, 1 for runtime failures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orders_cli import cli
from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def orders(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`orders ARGS` in a fresh interpreter, without this machine's Service Bus or store settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ServiceBusConnection", "ORDERS_", "Order"))
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    code = "import sys; from orders_cli.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("orders: error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_host_without_local_settings_says_which_cp_makes_it(tmp_path: Path) -> None:
    for name in ("function_app.py", "local.settings.json.example"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    line = one_line(orders("host", cwd=tmp_path), 2)
    assert line == (
        f"orders: error: no local.settings.json in {tmp_path.resolve()}, so no Service Bus connection: "
        "cp local.settings.json.example local.settings.json (its values are for the local emulator, "
        "`make emulator`)"
    )


def test_a_store_flag_without_a_scheme_says_how_to_write_it(tmp_path: Path) -> None:
    for command in (["status"], ["quarantine", "list"], ["why", "ord-1"]):
        line = one_line(orders(*command, "--store", ".local/demo/orders.db", cwd=tmp_path), 2)
        assert line.endswith(
            "--store takes sqlite:///PATH, UseDevelopmentStorage=true or a storage connection string, not "
            "'.local/demo/orders.db'; for the SQLite file .local/demo/orders.db write "
            "--store sqlite:///.local/demo/orders.db"
        ), line
    line = one_line(orders("status", "--store", "sqlite://two-slashes.db", cwd=tmp_path), 2)
    assert "--store must look like sqlite:///PATH (three slashes)" in line


def test_an_unknown_quarantine_id_names_the_store_searched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS).close()
    for action in ("show", "replay"):
        assert cli.main(["quarantine", action, "0123abcd", "--store", "sqlite:///orders.db"]) == 1
        _, err = capsys.readouterr()
        assert err == (
            "orders: error: no quarantined message with id '0123abcd' in sqlite:///orders.db "
            "(ids: orders quarantine list --all --store sqlite:///orders.db)\n"
        )


def test_publishing_with_the_emulator_down_says_start_it(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    conn = f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=local;UseDevelopmentEmulator=true;"
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"ServiceBusConnection": conn}}))
    for command in (["publish"], ["dlq", "list"]):
        line = one_line(orders(*command, cwd=tmp_path), 1)
        assert line == (
            f"orders: error: the Service Bus emulator is not running at 127.0.0.1:{port}: start it with "
            "`make emulator` (or `orders emulator`)"
        )


def test_a_busy_port_is_the_same_error_for_the_emulator_and_the_host(tmp_path: Path, busy_port: int) -> None:
    line = one_line(orders("emulator", "--port", str(busy_port), cwd=REPO_ROOT), 1)
    assert line == (
        f"orders: error: port {busy_port} on 127.0.0.1 is in use (another `orders emulator` running?): "
        "stop it, or pass --port N (0: any free port)"
    )
    settings = tmp_path / "local.settings.json"
    conn = f"Endpoint=sb://127.0.0.1:{free_port()};SharedAccessKeyName=k;SharedAccessKey=local;UseDevelopmentEmulator=true;"
    values = {
        "ServiceBusConnection": conn,
        "ORDERS_QUEUE_NAME": "orders-with-sessions",
        "OrderStoreConnection": f"sqlite:///{tmp_path / 'o.db'}",
    }
    settings.write_text(json.dumps({"Values": values}))
    proc = orders(
        "host",
        "--app-dir",
        str(REPO_ROOT),
        "--settings",
        str(settings),
        "--port",
        str(busy_port),
        cwd=tmp_path,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("orders: error: ")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines == [
        f"orders: error: port {busy_port} on 127.0.0.1 is in use (another `orders host` running?): "
        "stop it, or pass --port N (0: any free port)"
    ]
