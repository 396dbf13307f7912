"""Server wiring plus the programmatic API (`EmulatorServer`) used by tests and local tooling."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .admin import AdminApi
from .broker import Broker, BrokerError, Store
from .config import ConfigError, EmulatorConfig, QueueProperties, load_config, parse_config, parse_topic
from .connection import Connection
from .deadlines import Deadlines
from .limits import LimitError, Limits, check_config
from .management import Management
from .tls import TlsFiles, make_self_signed, server_context
from .topics import add_topic

log = logging.getLogger("devstack.emulator")

T = TypeVar("T")

TICK_S = 0.05
SAS_KEY_NAME = "RootManageSharedAccessKey"


def connection_string(host: str, port: int) -> str:
    """The connection string the SDK needs (plain AMQP, no TLS, because of UseDevelopmentEmulator)."""
    return (
        f"Endpoint=sb://{host}:{port};SharedAccessKeyName={SAS_KEY_NAME};SharedAccessKey=local;"
        "UseDevelopmentEmulator=true;"
    )


class ServerCore:
    """Broker + management + live connections; all methods run on the event-loop thread."""

    def __init__(
        self, broker: Broker, limits: Limits | None = None, deadlines: Deadlines | None = None
    ) -> None:
        """Hold shared state."""
        self.broker = broker
        self.limits = limits or Limits.standard()
        self.deadlines = deadlines or Deadlines()
        self.management = Management(broker)
        self.connections: set[Connection] = set()
        self.dirty: set[Connection] = set()

    def note_durable_write(self) -> None:
        """A send was accepted; flush() commits before acknowledging (kept explicit for readers)."""

    def flush(self) -> None:
        """Commit the store, then write all queued frames (durable before acknowledged)."""
        self.broker.store.commit()
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for c in dirty:
                c.flush()

    def tick(self) -> None:
        """Timers: lock/TTL/schedule processing (each connection's own watchdog sends its heartbeats)."""
        try:
            self.broker.tick()
        except Exception:  # keep the server alive; log the bug
            log.exception("timer processing failed")
        self.flush()


def _load_persisted(broker: Broker, store: Any) -> int:
    count = 0
    for entity, m in store.load_messages():
        try:
            q = broker.resolve(entity)
        except BrokerError:
            log.warning("persisted message for unknown entity %s dropped", entity)
            continue
        q.restore(m)
        broker.bump_seq(m.seq)
        count += 1
    for entity, sid, state in store.load_session_states():
        try:
            q = broker.resolve(entity)
        except BrokerError:
            continue
        q._session(sid).state = state
    for entity, message_id, expires_ms in store.load_message_ids():
        try:
            broker.resolve(entity).restore_message_id(message_id, expires_ms)
        except BrokerError:
            continue
    return count


class EmulatorServer:
    """An in-process Service Bus emulator speaking AMQP 1.0 on host:port.

    `start()` runs it on a background thread with its own event loop (port 0 picks a free port);
    `serve()` runs it on the caller's loop (used by the CLI).
    """

    def __init__(
        self,
        config: EmulatorConfig | str | Path | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data: str | Path | None = None,
        tls_port: int | None = None,
        tls_dir: str | Path | None = None,
        limits: Limits | str | None = None,
        admin_port: int | None = None,
        cert_dir: str | Path | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        """Load the config (a path, a parsed document or an EmulatorConfig) and prepare the broker.

        tls_port (0 = any free port) adds an AMQP-over-TLS listener with a certificate made at start
        (tls.py), written to tls_dir (default: a fresh temporary directory, removed on stop).
        `limits` is a quota profile (limits.Limits or its name: standard (default), premium,
        official-emulator); a Config.json outside it is a ConfigError. `admin_port` (None: off, 0: any free
        port) serves the management API ServiceBusAdministrationClient uses (admin.py, admin_http.py), with
        a certificate from a local CA kept in `cert_dir` (default: a temporary directory).
        `deadlines` sets the connection time limits (header, open, idle time-out; deadlines.py).
        """
        if config is None:
            cfg = EmulatorConfig("sbemulatorns", ())
        elif isinstance(config, EmulatorConfig):
            cfg = config
        elif isinstance(config, dict):
            cfg = parse_config(config)
        else:
            cfg = load_config(config)
        try:
            self.limits = Limits.named(limits) if isinstance(limits, str) else (limits or Limits.standard())
            check_config(cfg, self.limits)
        except LimitError as exc:
            raise ConfigError(str(exc)) from exc
        self.config = cfg
        self.host = host
        self.port = port
        self.data = data
        self.tls_port = tls_port
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._tls_dir_owned = False
        self.tls_files: TlsFiles | None = None
        self._tls_server: asyncio.AbstractServer | None = None
        self._store: Any = None
        if data is not None:
            from .persistence import SqliteStore

            self._store = SqliteStore(data)
        self.broker = Broker(self._store)
        for q in cfg.queues:
            self.broker.add_queue(q.name, q.properties)
        for t in cfg.topics:
            add_topic(self.broker, t)
        self.admin = AdminApi(self.broker, self.limits, self._store, cfg.namespace)
        self.admin.restore({q.name.lower() for q in cfg.queues} | {t.name.lower() for t in cfg.topics})
        self.admin_port = admin_port
        self._cert_dir = Path(cert_dir) if cert_dir is not None else None
        self._admin_http: Any = None
        self.restored = _load_persisted(self.broker, self._store) if self._store is not None else 0
        self.core = ServerCore(self.broker, self.limits, deadlines)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def connection_string(self) -> str:
        """SDK connection string for this instance."""
        return connection_string(self.host, self.port)

    @property
    def tls_ca_file(self) -> Path | None:
        """The TLS listener's certificate, to hand to a client as its CA file (None without TLS)."""
        return self.tls_files.cert if self.tls_files is not None else None

    def tls_client_options(self) -> dict[str, Any]:
        """azure-servicebus keywords that reach the TLS listener: the SDK always uses TLS unless the
        connection string says UseDevelopmentEmulator=true, and takes the port from
        custom_endpoint_address."""
        if self.tls_files is None or self.tls_port is None:
            raise RuntimeError("the emulator was started without a TLS listener (tls_port)")
        return {
            "custom_endpoint_address": f"sb://localhost:{self.tls_port}",
            "connection_verify": str(self.tls_files.cert),
        }

    @property
    def tls_connection_string(self) -> str:
        """Connection string for TLS clients (no UseDevelopmentEmulator); pair it with tls_client_options."""
        return f"Endpoint=sb://localhost/;SharedAccessKeyName={SAS_KEY_NAME};SharedAccessKey=local;"

    @property
    def admin_connection_string(self) -> str:
        """Connection string for ServiceBusAdministrationClient (the management port, as the official
        emulator documents it: the same string with the management port)."""
        if self.admin_port is None:
            raise RuntimeError("the management endpoint is off (admin_port=None)")
        return connection_string(self.host, self.admin_port)

    @property
    def admin_ca_path(self) -> Path:
        """The local CA certificate to trust (connection_verify=...) for the management endpoint."""
        if self._admin_http is None:
            raise RuntimeError("the management endpoint is not running")
        return Path(self._admin_http.ca_path)

    @property
    def listening(self) -> bool:
        """AMQP is bound and, when asked for, the management endpoint too."""
        return self._server is not None and (self.admin_port is None or self._admin_http is not None)

    def _start_admin(self) -> None:
        if self.admin_port is None or self._admin_http is not None:
            return
        from .admin_http import AdminHttpServer

        if self._cert_dir is None:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="servicebus-emulator-certs-"))

        def handle(*request: Any) -> Any:
            return self.call(lambda: self.admin.handle(*request))

        self._admin_http = AdminHttpServer(handle, self.host, self.admin_port, self._cert_dir)
        self.admin_port = self._admin_http.port
        self._admin_http.start()

    def _stop_admin(self) -> None:
        if self._admin_http is not None:
            self._admin_http.stop()
            self._admin_http = None

    @property
    def queue_names(self) -> list[str]:
        """Names of all queues."""
        return [q.name for q in self.broker.queues.values() if q.kind == "queue"]

    @property
    def topic_names(self) -> list[str]:
        """Names of all topics."""
        return [q.name for q in self.broker.queues.values() if q.kind == "topic"]

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        server = await loop.create_server(lambda: Connection(self.core), self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        if self.tls_port is not None:
            try:
                await self._open_tls(loop)
            except BaseException:
                server.close()
                raise
        # set last: the CLI (and start()) treat a set _server as "every listener is up"
        self._server = server
        self._ticker = loop.create_task(self._tick_forever())

    async def _open_tls(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._tls_dir is None:
            self._tls_dir = Path(tempfile.mkdtemp(prefix="servicebus-emulator-tls-"))
            self._tls_dir_owned = True
        self.tls_files = make_self_signed(self._tls_dir, self.host)
        self._tls_server = await loop.create_server(
            lambda: Connection(self.core), self.host, self.tls_port, ssl=server_context(self.tls_files)
        )
        self.tls_port = self._tls_server.sockets[0].getsockname()[1]

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.core.tick()

    async def _close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        if self._tls_server is not None:
            self._tls_server.close()
        for c in list(self.core.connections):
            if c.transport is not None:
                c.transport.abort()
        self.core.connections.clear()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._tls_server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tls_server.wait_closed(), 1.0)
        if self._tls_dir_owned and self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
        self.broker.store.commit()

    async def serve(self, stop: asyncio.Event) -> None:
        """Run on the current loop until `stop` is set."""
        await self._open()
        try:
            await asyncio.to_thread(self._start_admin)
            await stop.wait()
        finally:
            await asyncio.to_thread(self._stop_admin)
            await self._close()
            if self._store is not None:
                self._store.close()

    def start(self) -> int:
        """Start on a background thread; returns the bound port."""
        if self._thread is not None:
            return self.port
        ready = threading.Event()
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=run, name="servicebus-emulator", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        try:
            self._start_admin()
        except BaseException:
            self.stop()
            raise
        return self.port

    def stop(self) -> None:
        """Stop the background server and close the store."""
        self._stop_admin()
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> EmulatorServer:
        """Start on enter."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop on exit."""
        self.stop()

    # ------------------------------------------------------------------ inspection / admin
    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server loop (thread-safe access to broker state)."""
        loop = self._loop
        # not running (setup), or already on the loop's thread; `serve()` (the CLI) runs the loop on the
        # caller's thread, so the thread is recorded by _open, not taken from start()
        if loop is None or loop.is_closed() or threading.get_ident() == self._loop_thread:
            return fn()

        async def wrapper() -> T:
            result = fn()
            self.core.flush()
            return result

        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(wrapper(), loop)
        return fut.result(10)

    def create_queue(self, name: str, properties: QueueProperties | None = None, **changes: Any) -> str:
        """Create (or reconfigure) a queue at runtime; keyword changes override QueueProperties fields."""
        props = (
            (properties or QueueProperties()).with_(**changes)
            if changes
            else (properties or QueueProperties())
        )
        self.call(lambda: self.broker.add_queue(name, props))
        return name

    def create_topic(self, definition: dict[str, Any]) -> str:
        """Create (or replace) a topic at runtime from one official-format `Topics[]` entry."""
        topic = parse_topic(definition)
        self.call(lambda: add_topic(self.broker, topic))
        return topic.name

    def delete_queue(self, name: str) -> None:
        """Drop a queue and its messages."""
        self.call(lambda: self.broker.delete_queue(name))

    def queue_counts(self, name: str) -> dict[str, int]:
        """{'active', 'locked', 'deferred', 'scheduled', 'dead_lettered', 'total'} for a queue."""
        return self.call(lambda: self.broker.resolve(name).counts())

    def session_counts(self, name: str) -> dict[str, int]:
        """Messages per session id (any state)."""
        return self.call(lambda: self.broker.resolve(name).session_counts())

    def dead_letter_count(self, name: str) -> int:
        """Messages in the queue's dead-letter sub-queue."""
        return self.queue_counts(name)["dead_lettered"]

    def active_count(self, name: str) -> int:
        """Messages that are available or locked (not deferred/scheduled)."""
        c = self.queue_counts(name)
        return c["active"] + c["locked"]

    def expire_locks(self, name: str) -> None:
        """Force every message lock of a queue to expire now (lets tests reach lock-lost paths)."""

        def run() -> None:
            q = self.broker.resolve(name)
            for m in list(q.locks.values()):
                if m.session_id is None or not q.requires_session:
                    m.locked_until_ms = 0
                    q._unlock(m, 0, failed=True)

        self.call(run)

    def store(self) -> Store:
        """The broker store (for diagnostics)."""
        return self.broker.store
