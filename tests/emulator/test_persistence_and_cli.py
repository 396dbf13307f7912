"""--data persistence across restarts, and the command line contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage

from devstack.emulator.config import QueueProperties, make_config
from devstack.emulator.server import EmulatorServer
from tests.emulator._helpers import client
from tests.fixtures.servicebus_emulator import REPO_ROOT


def test_messages_survive_restart_but_locks_do_not(tmp_path):
    cfg = make_config({"durable": QueueProperties(requires_session=True, lock_duration=30)})
    data = tmp_path / "sb.sqlite3"
    srv = EmulatorServer(cfg, data=data)
    srv.start()
    try:
        with client(srv.connection_string) as c:
            with c.get_queue_sender("durable") as s:
                s.send_messages(
                    [ServiceBusMessage(f"d{i}", session_id="s", message_id=f"id{i}") for i in range(3)]
                )
            with c.get_queue_receiver("durable", session_id="s", max_wait_time=1) as r:
                [first] = r.receive_messages(max_wait_time=2)
                r.complete_message(first)
                r.session.set_state(b"persisted")
                [locked] = r.receive_messages(max_wait_time=2)  # left locked at shutdown
                assert str(locked) == "d1"
    finally:
        srv.stop()
    srv2 = EmulatorServer(cfg, data=data)
    srv2.start()
    try:
        assert srv2.restored == 2
        with client(srv2.connection_string) as c:
            with c.get_queue_receiver("durable", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r:
                assert r.session.get_state() == b"persisted"
                got = r.receive_messages(max_message_count=2, max_wait_time=2)
                while len(got) < 2:
                    more = r.receive_messages(max_message_count=1, max_wait_time=1)
                    assert more
                    got += more
                assert [str(m) for m in got] == ["d1", "d2"]
                # closing the session receiver released d1 as a failed attempt (counted, and persisted);
                # the lock itself did not survive, so d1 is immediately receivable again
                assert got[0].delivery_count == 1
                assert (got[0].sequence_number or 0) < (got[1].sequence_number or 0)
                for m in got:
                    r.complete_message(m)
            with c.get_queue_sender("durable") as s:
                s.send_messages(ServiceBusMessage("new", session_id="s"))
        assert srv2.queue_counts("durable")["total"] == 1
    finally:
        srv2.stop()


def test_the_duplicate_detection_history_survives_restart(tmp_path):
    """As on Service Bus, a restart does not forget the ids seen within the window: a resend after it is
    still dropped (the send succeeds); an id whose window has passed is accepted again."""
    cfg = make_config(
        {
            "dedup": QueueProperties(requires_session=True, requires_duplicate_detection=True),
            "short": QueueProperties(requires_duplicate_detection=True, duplicate_window=0.5),
        }
    )
    data = tmp_path / "sb.sqlite3"
    # Service Bus's shortest window is 20 s (limits.py); a sub-second one keeps this test short
    from dataclasses import replace

    from devstack.emulator.limits import Limits

    quick = replace(Limits.standard(), duplicate_window_s=(0.1, 7 * 86400.0))
    srv = EmulatorServer(cfg, data=data, limits=quick)
    srv.start()
    try:
        with client(srv.connection_string) as c:
            with c.get_queue_sender("dedup") as s:
                s.send_messages(ServiceBusMessage("a", session_id="cust-a", message_id="cust-a:ord-1:1"))
            with c.get_queue_receiver("dedup", session_id="cust-a", max_wait_time=1) as r:
                [m] = r.receive_messages(max_wait_time=2)
                r.complete_message(m)
            with c.get_queue_sender("short") as s:
                s.send_messages(ServiceBusMessage("b", message_id="short-1"))
    finally:
        srv.stop()
    time.sleep(0.6)  # the "short" queue's window has passed
    srv2 = EmulatorServer(cfg, data=data, limits=quick)
    srv2.start()
    try:
        with client(srv2.connection_string) as c:
            with c.get_queue_sender("dedup") as s:
                s.send_messages(ServiceBusMessage("a", session_id="cust-a", message_id="cust-a:ord-1:1"))
                s.send_messages(ServiceBusMessage("b", session_id="cust-b", message_id="cust-b:ord-1:1"))
            with c.get_queue_sender("short") as s:
                s.send_messages(ServiceBusMessage("b again", message_id="short-1"))
        assert srv2.queue_counts("dedup")["total"] == 1  # only cust-b's
        assert srv2.queue_counts("short")["total"] == 2
    finally:
        srv2.stop()


def _run_cli(*args, timeout=20):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "devstack.emulator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=env,
    )


def test_cli_unreadable_config_is_a_one_line_error(tmp_path):
    res = _run_cli("--config", str(tmp_path / "missing.json"), "--port", "0")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"UserConfig": {}}))
    res = _run_cli("--config", str(bad), "--port", "0")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_bad_arguments_exit_non_zero():
    res = _run_cli("--port", "not-a-port")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr


def _start_module(module: str, *args: str) -> subprocess.Popen[str]:
    """`python -m module args` from the repository root, stdout and stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )


def test_cli_starts_logs_once_and_stops_on_sigterm():
    proc = _start_module("devstack.emulator", "--port", "0", "--admin-port", "0")
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on 127.0.0.1:" in line and "orders-with-sessions" in line
        assert "(limits: standard)" in line
        admin = proc.stderr.readline()
        assert "management API (ServiceBusAdministrationClient) on https and http 127.0.0.1:" in admin
        assert admin.rstrip().endswith("trust .local/servicebus-emulator/admin-ca.pem")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_orders_emulator_ctrl_c_exits_0():
    """`orders emulator` runs until stopped: Ctrl-C is its normal end (docs/cli.md), not exit 130."""
    proc = _start_module("orders_cli.cli", "emulator", "--port", "0", "--no-admin")
    try:
        assert proc.stderr is not None
        assert "listening on 127.0.0.1:" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "interrupted" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
