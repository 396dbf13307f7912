"""Throughput of the emulator driven by the real SDK (no assertions; prints msgs/s).

    python bench/bench_emulator.py [--messages 5000] [--batch 100] [--size 256] [--sessions 0] [--in-process]

Starts the emulator as a separate process (`python -m devstack.emulator`) on a free port unless
--connection-string is given. Both are Python: in one process the SDK client and the broker share
one GIL and measure each other's overhead, so the separate process is the figure docs quote;
--in-process keeps the old single-process mode for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage

from devstack.emulator.config import QueueProperties
from devstack.emulator.server import EmulatorServer, connection_string

REPO_ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on [^:\s]+:(\d+)")


def start_emulator_process(queue: str, sessions: bool, data: str | None) -> tuple[subprocess.Popen[str], str]:
    """`python -m devstack.emulator` with a one-queue Config.json on a free port; (process, conn str)."""
    config = {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": "bench",
                    "Queues": [
                        {"Name": queue, "Properties": {"RequiresSession": sessions, "LockDuration": "PT1M"}}
                    ],
                    "Topics": [],
                }
            ]
        }
    }
    cfg = Path(tempfile.mkdtemp(prefix="bench-emulator-")) / "Config.json"
    cfg.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "devstack.emulator", "--port", "0", "--no-admin", "--config", str(cfg)]
    if data:
        cmd += ["--data", data]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = LISTENING.search(line)
        if match:
            # keep draining its log so a full pipe can never block the emulator
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, connection_string("127.0.0.1", int(match.group(1)))
    proc.wait()
    raise SystemExit(f"emulator process exited ({proc.returncode}) before listening")


def process_cpu_s(pid: int) -> float | None:
    """User+system CPU seconds of a running process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--batch", type=int, default=100, help="messages per send batch and per receive call")
    p.add_argument("--size", type=int, default=256, help="body bytes")
    p.add_argument(
        "--sessions", type=int, default=0, help="0 = non-session queue, else spread over N sessions"
    )
    p.add_argument("--data", default=None, help="enable SQLite persistence at this path")
    p.add_argument("--connection-string", default=None)
    p.add_argument("--queue", default="bench")
    p.add_argument(
        "--in-process", action="store_true", help="run the emulator in this process (shares the GIL)"
    )
    args = p.parse_args()

    server = None
    proc = None
    conn = args.connection_string
    if conn is None and args.in_process:
        server = EmulatorServer(None, data=args.data)
        server.start()
        server.create_queue(args.queue, QueueProperties(requires_session=args.sessions > 0, lock_duration=60))
        conn = server.connection_string
    elif conn is None:
        proc, conn = start_emulator_process(args.queue, args.sessions > 0, args.data)
    bench_t0 = time.perf_counter()
    where = (
        "external" if args.connection_string else ("in-process" if args.in_process else "separate process")
    )
    body = b"x" * args.size
    n = args.messages
    try:
        with ServiceBusClient.from_connection_string(conn) as c:
            with c.get_queue_sender(args.queue) as s:
                s.send_messages(ServiceBusMessage(body, session_id="warm" if args.sessions else None))
                t0 = time.perf_counter()
                sent = 0
                while sent < n:
                    k = min(args.batch, n - sent)
                    batch = s.create_message_batch()
                    for i in range(k):
                        sid = f"s{(sent + i) % args.sessions}" if args.sessions else None
                        batch.add_message(ServiceBusMessage(body, session_id=sid))
                    s.send_messages(batch)
                    sent += k
                send_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                single = min(n, 1000)
                for _ in range(single):
                    s.send_messages(ServiceBusMessage(body, session_id="s0" if args.sessions else None))
                single_s = time.perf_counter() - t0
            total = n + single + 1
            received = 0
            t0 = time.perf_counter()
            # steady state: from the first receive on an open link to the last completion, so the
            # receiver's open (~1 s in the SDK) and the final empty 1 s receive are not counted
            busy_s = 0.0
            while received < total:
                with c.get_queue_receiver(
                    args.queue,
                    max_wait_time=2,
                    prefetch_count=args.batch,
                    session_id=NEXT_AVAILABLE_SESSION if args.sessions else None,
                ) as r:
                    started = time.perf_counter()
                    last_done = started
                    while True:
                        msgs = r.receive_messages(max_message_count=args.batch, max_wait_time=1)
                        if not msgs:
                            break
                        for m in msgs:
                            r.complete_message(m)
                        received += len(msgs)
                        last_done = time.perf_counter()
                    busy_s += last_done - started
                if not args.sessions:
                    break
            recv_s = time.perf_counter() - t0
        print(
            f"messages={n} batch={args.batch} size={args.size}B sessions={args.sessions} data={args.data} "
            f"emulator={where}"
        )
        print(f"send (batched {args.batch}):   {n / send_s:10.0f} msgs/s")
        print(f"send (one per call):  {single / single_s:10.0f} msgs/s")
        print(f"receive+complete:     {received / busy_s:10.0f} msgs/s  ({received} msgs, open links only)")
        print(f"  incl. receiver opens and final empty receive: {received / recv_s:10.0f} msgs/s")
        if proc is not None:
            cpu = process_cpu_s(proc.pid)
            wall = time.perf_counter() - bench_t0
            if cpu is not None:
                print(
                    f"emulator process CPU: {cpu:.1f} s of {wall:.1f} s wall "
                    f"({100 * cpu / wall:.0f}% of one core)"
                )
    finally:
        if server is not None:
            server.stop()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
