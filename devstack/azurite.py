"""Azurite's Table endpoint for local runs: installed on demand (npm) and started on a free loopback port.

Used by the test fixture (tests/fixtures/azurite.py) and by bench/bench_table_roundtrips.py. Tests that
talk to Table Storage run against it instead of a mock, because ETag conditions, entity-group transactions
and error codes are exactly what a mock would get wrong.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from devstack.npm import npm_install_once

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_PREFIX = REPO_ROOT / ".local" / "azurite"
AZURITE_TABLE_BIN = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-table"
AZURITE_PACKAGE = "azurite@3"

# The well-known development account every Azurite instance serves (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteUnavailable(RuntimeError):
    """Azurite could not be installed or started; the message says what to do."""


def ensure_azurite_installed() -> Path:
    """Install the npm package into .local/azurite once; a file lock keeps parallel test runs apart."""
    override = os.environ.get("AZURITE_TABLE_BIN")
    if override:
        return Path(override)
    npm_install_once(
        AZURITE_PREFIX,
        AZURITE_PACKAGE,
        AZURITE_TABLE_BIN,
        unavailable=AzuriteUnavailable,
        no_npm=(
            "npm is not on PATH, so the Azurite Table emulator cannot be installed. Install Node.js 18+ "
            f"(with npm) or run `npm install --prefix {AZURITE_PREFIX} {AZURITE_PACKAGE}` yourself, "
            "or point AZURITE_TABLE_BIN at an azurite-table executable."
        ),
        timeout=900,
    )
    return AZURITE_TABLE_BIN


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AzuriteTable:
    """One azurite-table process with on-disk data in a temp dir, so stop()/start() keeps the tables."""

    def __init__(self, binary: Path, port: int | None = None, workdir: Path | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="azurite-table-"))
        self.log_path = self.workdir / "azurite.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{DEV_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"TableEndpoint={self.endpoint};"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart) on the same port and wait until it accepts connections."""
        if self.running:
            return
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self._proc = subprocess.Popen(
                [
                    str(self.binary),
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(self.port),
                    "--location",
                    str(data_dir),
                    "--skipApiVersionCheck",
                    "--loose",
                    "--disableTelemetry",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.workdir),
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AzuriteUnavailable(
                    f"azurite-table exited early ({self._proc.returncode}):\n{self.log_tail()}"
                )
            if self._answers():
                return
            time.sleep(0.1)
        self.stop()
        raise AzuriteUnavailable(
            f"azurite-table did not answer on port {self.port} in {timeout}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Stop gracefully (SIGINT makes Azurite flush its database), then harder; the port is kept.

        SIGTERM would drop up to five seconds of writes (LokiJS autosaves every 5 s), so a restarted
        emulator would "lose" committed rows and a reliability test would chase ghosts.
        """
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        for send, wait in (
            (lambda: proc.send_signal(signal.SIGINT), 15),
            (proc.terminate, 5),
            (proc.kill, 10),
        ):
            send()
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def _answers(self) -> bool:
        """Any HTTP response (even 400/403) means the server is up."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return s.recv(12).startswith(b"HTTP/")
        except OSError:
            return False

    def __enter__(self) -> AzuriteTable:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unique_table_name(prefix: str = "t") -> str:
    """Table names: 3-63 alphanumerics starting with a letter."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"
