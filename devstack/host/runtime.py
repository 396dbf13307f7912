"""The local Functions host: runs the Service Bus, timer and HTTP triggers a v2-model function_app.py
declares, the way the Functions host + Service Bus extension do (see docs/local-host.md). The app runs in
Azure's own Python worker library, driven with FunctionRpc messages (devstack/host/worker.py): the host
indexes nothing and calls nothing itself."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.host.bindings import Listener, listener_for, with_overrides
from devstack.host.config import HostConfigError, ServiceBusOptions, load_host_json
from devstack.host.discovery import FunctionSpec, binding_data_type, spec_from_worker
from devstack.host.invocation import new_trace_parent
from devstack.host.locks import LockKeeper
from devstack.host.payload import (
    ReceiverObjects,
    TriggerInput,
    servicebus_batch_invocation,
    servicebus_invocation,
    timer_request,
)
from devstack.host.rpc import protos
from devstack.host.timespan import TimeSpanError, parse_timespan
from devstack.host.worker import LanguageWorker, WorkerInitError, in_worker

log = logging.getLogger("devstack.host")

SDK_LOGGERS = ("azure", "uamqp", "urllib3", "msal")
_PRINT_LOCK = threading.Lock()  # one RpcLog line at a time on the console


@dataclass
class HostCounters:
    invocations: int = 0
    completed: int = 0
    abandoned: int = 0
    failed: int = 0  # invocations that raised (abandoned or not settled)
    timer_invocations: int = 0
    sessions_acquired: int = 0
    sessions_released: int = 0
    lock_lost: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def configure_logging(level: int = logging.INFO, log_format: str = "json") -> logging.Handler:
    """One stderr handler on the root logger, installed before function_app is imported, so the app's
    setup_logging() finds it as it would the worker's: JSON lines through the app's formatter
    (azure_functions_logging.JsonFormatter), or the human console (devstack/host/console.py)."""
    from azure_functions_logging import JsonFormatter, setup_logging

    from devstack.host.console import ConsoleHandler

    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_devstack_host", False)), None)
    wanted: type[logging.Handler] = ConsoleHandler if log_format == "human" else logging.StreamHandler
    if handler is not None and type(handler) is not wanted:
        root.removeHandler(handler)
        handler = None
    if handler is None:
        handler = ConsoleHandler(sys.stderr) if log_format == "human" else logging.StreamHandler(sys.stderr)
        setattr(handler, "_devstack_host", True)  # noqa: B010
        handler.setFormatter(JsonFormatter())
        # The worker's records reach the host as RpcLog messages (LocalHost._on_worker_log), as from
        # Azure's worker process; this handler prints the host's own.
        handler.addFilter(lambda record: not in_worker())
        root.addHandler(handler)
    root.setLevel(level)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if log_format == "human" else logging.WARNING)
    setup_logging(functions_formatter=JsonFormatter(), format="json")
    return handler


class InvocationFailed(RuntimeError):
    """The worker answered the InvocationRequest with a failure: its RpcException (`Type: message` and the
    Python traceback), which is all the Functions host learns of the exception."""

    def __init__(self, exception: Any) -> None:
        self.message = str(exception.message or "unknown failure")
        self.stack_trace = str(exception.stack_trace or "")
        self.type_name = self.message.split(":", 1)[0].strip() if ":" in self.message else "Exception"
        # Raised by the worker's argument conversion (azure-functions-runtime `from_incoming_proto`)
        # before any frame of the function: the trigger input, not the app, is at fault.
        self.before_user_code = "in from_incoming_proto" in self.stack_trace
        super().__init__(self.message)

    def conversion_detail(self) -> str:
        """Which trigger metadata field failed (the library names it), never its value."""
        m = re.search(r"field '([^']+)' in trigger metadata", self.message)
        if m:
            return f"trigger metadata field {m.group(1)!r} could not be converted ({self.type_name})"
        return f"the trigger input could not be converted ({self.type_name})"


class WorkerRestarted(RuntimeError):
    """Another invocation overran functionTimeout: the host restarted the language worker, and every
    invocation that was running in it failed."""


class FunctionTimeout(TimeoutError):
    """This invocation overran functionTimeout (host.json)."""


def app_expected_failures() -> frozenset[str]:
    """Names of the exceptions the app raises on purpose to have a message redelivered:
    TransientStoreError and its subclasses, raised once its in-invocation retry burst gave up, after the
    app logged that burst as one line. The host only sees the worker's RpcException (`Type: message`), so
    it matches by type name. It logs an invocation failing with one of these as one line, without a
    traceback; anything else is a bug and is logged with its traceback."""
    from shared.store.base import TransientStoreError

    names: set[str] = set()
    pending: list[type] = [TransientStoreError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return frozenset(names)


class LocalHost:
    """Programmatic API: `start()` / `stop()` (listeners run on threads), or `run_until_idle(seconds)`.

    settings_overrides win over the environment, which wins over local.settings.json `Values`;
    everything resolved is put into os.environ before function_app is imported (restored by stop()
    when restore_environment is true). host_json_overrides patch `extensions.serviceBus`."""

    def __init__(
        self,
        app_dir: str | Path = ".",
        *,
        settings_path: str | Path | None = None,
        settings_overrides: Mapping[str, str] | None = None,
        host_json_overrides: Mapping[str, Any] | None = None,
        max_concurrent_sessions: int | None = None,
        configure_logging: bool = True,
        restore_environment: bool = True,
        session_accept_wait: float = 2.0,
        poll_interval: float = 0.5,
        shutdown_grace: float = 10.0,
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
        binding_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        log_format: str = "json",
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.settings_path = Path(settings_path) if settings_path else self.app_dir / "local.settings.json"
        self.settings_overrides = dict(settings_overrides or {})
        self.host_json_overrides = dict(host_json_overrides or {})
        self.max_concurrent_sessions_override = max_concurrent_sessions
        self.configure_logging = configure_logging
        self.restore_environment = restore_environment
        self.session_accept_wait = session_accept_wait
        self.poll_interval = poll_interval
        self.shutdown_grace = shutdown_grace
        self.http_port = http_port
        self.http_host = http_host
        self.binding_overrides = {k: dict(v) for k, v in (binding_overrides or {}).items()}
        self.http_route_prefix = "api"
        self.log_format = log_format
        self.http_server: Any = None
        self._generation = 0  # language-worker generation: bumped by a functionTimeout restart
        self._sequence = 0  # invocations started, for the running counter
        self._broker_down = False
        self.expected_failures = app_expected_failures()

        self.counters = HostCounters()
        self.options = ServiceBusOptions()
        self.function_timeout: float | None = None
        self.functions: list[FunctionSpec] = []
        self.values: dict[str, str] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.worker: LanguageWorker | None = None
        self._client_ids: dict[str, str] = {}  # per Service Bus function: its client's Identifier
        self._saved_env: dict[str, str | None] = {}
        self._prepared = False
        self._started_at = time.monotonic()
        self._last_activity = time.monotonic()
        self._in_flight = 0
        self._held_sessions = 0
        self._unpolled = 0  # receivers that have not yet made their first accept/attach: not idle yet
        self._fatal: BaseException | None = None

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Resolve settings and connections, start the language worker (WorkerInitRequest: the library
        indexes function_app.py; FunctionsMetadataRequest; one FunctionLoadRequest per function), read
        the triggers from what it reported. Raises HostConfigError (a bad setting/connection/host.json, or
        the worker's init or load failed: its one-line cause) or DiscoveryError."""
        if self._prepared:
            return
        from shared.host_json import GUARDED_HOST_JSON_KEYS, validate_host_json
        from shared.settings import AppSettings, SettingsError, merged_environment

        try:
            values = merged_environment(local_settings=self.settings_path)
        except SettingsError as exc:
            raise HostConfigError(str(exc)) from None
        values.update(self.settings_overrides)
        values.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
        self.values = values

        host_json = load_host_json(self.app_dir)
        sb = dict(((host_json.get("extensions") or {}).get("serviceBus")) or {})
        sb.update(self.host_json_overrides)
        host_json = {**host_json, "extensions": {**(host_json.get("extensions") or {}), "serviceBus": sb}}
        self.options = ServiceBusOptions.from_host_json(host_json)
        # The app checks host.json itself when the worker imports it (function_app.py, from the file on
        # disk); the host's overrides are not in that file, so the host applies the same check to the
        # host.json in effect when it overrides a key the check reads. An app without overrides (any app,
        # not only this one) is checked by its own code alone, as in Azure.
        if {k.lower() for k in self.host_json_overrides} & GUARDED_HOST_JSON_KEYS:
            try:
                validate_host_json(host_json, AppSettings.from_values(values))
            except SettingsError as exc:
                raise HostConfigError(str(exc)) from None
        if self.max_concurrent_sessions_override is not None:
            if self.max_concurrent_sessions_override < 1:
                raise HostConfigError("max concurrent sessions must be at least 1")
            self.options = replace(
                self.options, max_concurrent_sessions=self.max_concurrent_sessions_override
            )
        timeout = host_json.get("functionTimeout")
        try:
            self.function_timeout = parse_timespan(str(timeout)) if timeout not in (None, "", "-1") else None
        except TimeSpanError as exc:
            raise HostConfigError(f"host.json: functionTimeout: {exc}") from None

        for key, value in values.items():  # the host hands every app setting to the worker as env
            if os.environ.get(key) != value:
                self._saved_env.setdefault(key, os.environ.get(key))
                os.environ[key] = value
        if self.configure_logging:
            configure_logging(log_format=self.log_format)

        http_ext = (host_json.get("extensions") or {}).get("http") or {}
        if isinstance(http_ext, dict) and isinstance(http_ext.get("routePrefix"), str):
            self.http_route_prefix = http_ext["routePrefix"].strip("/")

        worker = LanguageWorker(self.app_dir, on_log=self._on_worker_log if self.configure_logging else None)
        try:
            worker.start()
        except WorkerInitError as exc:
            worker.stop()
            raise HostConfigError(f"the Python worker failed to load the app: {exc}") from None
        self.worker = worker
        self.functions = [
            with_overrides(spec_from_worker(fn), self.binding_overrides) for fn in worker.functions.values()
        ]
        self._listeners = [x for x in (listener_for(spec, self.values) for spec in self.functions) if x]
        self._prepared = True

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.prepare()
        self._stopping.clear()
        self._stopped.clear()
        self._started_at = self._last_activity = time.monotonic()
        sb_listeners = [x for x in self._listeners if x.kind == "servicebus"]
        http_listeners = [x for x in self._listeners if x.kind == "http"]
        if http_listeners and self.http_port is not None:
            from devstack.host.http import LocalHttpServer

            self.http_server = LocalHttpServer(self, http_listeners, self.http_host, self.http_port)
            self.http_server.start()
        log.info(
            "local host started",
            extra={
                "app_dir": str(self.app_dir),
                "functions": [
                    {
                        "function": x.spec.name,
                        "trigger": x.spec.trigger_type,
                        "entity": x.entity or None,
                        "sessions": x.sessions,
                        "cardinality": ("many" if x.batch else "one") if x.kind == "servicebus" else None,
                        "data_type": binding_data_type(x.spec.trigger) or None,
                        "schedule": x.schedule.expression if x.schedule else None,
                        "connection": x.connection.describe() if x.connection else None,
                        "url": self.http_url(x) if x.kind == "http" else None,
                        "methods": list(x.methods) or None,
                        "auth_level": x.auth_level or None,
                    }
                    for x in self._listeners
                ],
                "http": (
                    "auth levels are not enforced locally (as Core Tools); deployed, FUNCTION routes need "
                    "?code= or x-functions-key"
                    if http_listeners and self.http_server is not None
                    else ("not served (no --port)" if http_listeners else None)
                ),
                "max_concurrent_sessions": self.options.max_concurrent_sessions,
                "max_message_batch_size": (
                    self.options.max_message_batch_size if any(x.batch for x in sb_listeners) else None
                ),
                "session_idle_timeout_s": self._session_idle_timeout(),
                "prefetch_count": self.options.prefetch_count,
                "auto_complete_messages": self.options.auto_complete_messages,
                "max_auto_lock_renewal_s": self.options.max_auto_lock_renewal_duration,
                "ignored_host_json": list(self.options.ignored) or None,
            },
        )
        with self._lock:
            self._unpolled = sum(self._receivers_for(x) for x in sb_listeners)
        for listener in self._listeners:
            if listener.kind == "servicebus":
                for i in range(self._receivers_for(listener)):
                    self._spawn(
                        f"sb-{listener.spec.name}-{i}",
                        self._session_worker if listener.sessions else self._queue_worker,
                        listener,
                    )
            elif listener.kind == "timer":
                self._spawn(f"timer-{listener.spec.name}", self._timer_worker, listener)

    def http_url(self, listener: Listener) -> str:
        port = self.http_server.port if self.http_server is not None else self.http_port
        prefix = f"/{self.http_route_prefix}" if self.http_route_prefix else ""
        return f"http://{self.http_host}:{port}{prefix}/{listener.route}"

    def _receivers_for(self, listener: Listener) -> int:
        # Sessions: maxConcurrentSessions receivers, one message at a time each
        # (maxConcurrentCallsPerSession=1).
        # Non-session: maxConcurrentCalls is not modelled; use the same number of receivers.
        # Batches (cardinality many): ONE receive loop per function, as the extension's
        # ServiceBusListener.RunBatchReceiveLoopAsync ("only executes functions at a concurrency level of
        # 1"): one session at a time per host instance, whatever maxConcurrentSessions says.
        if listener.batch:
            return 1
        return self.options.max_concurrent_sessions

    def _spawn(self, name: str, target: Callable[[Listener], None], listener: Listener) -> None:
        def run() -> None:
            try:
                target(listener)
            except BaseException as exc:  # a listener must never die silently
                log.error(
                    "listener crashed",
                    extra={"function": listener.spec.name, "error": repr(exc)},
                    exc_info=True,
                )
                self._fatal = exc

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking messages, let in-flight invocations finish (abandoning any still running after
        shutdown_grace), close receivers, clients and the lock renewer."""
        if self._stopped.is_set() or not (self._threads or self.http_server):
            self._stop_worker()
            self._restore_env()
            return
        log.info("local host stopping", extra={"in_flight": self._in_flight})
        self._stopping.set()
        _release_waiting_invocations()  # invocations holding through a store outage must not pin it
        if self.http_server is not None:
            self.http_server.stop()
            self.http_server = None
        deadline = time.monotonic() + (timeout if timeout is not None else self.shutdown_grace + 15)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._stop_worker()
        self._threads = []
        self._stopped.set()
        log.info("local host stopped", extra={**self.counters.as_dict(), "stuck_threads": alive or None})
        self._restore_env()

    def _on_worker_log(self, rpc_log: Any, record: logging.LogRecord) -> None:
        """An RpcLog from the worker, printed as the Functions host prints a worker's logs: the app's
        (User) records from Information up; the worker library's own (System) from Warning up."""
        from devstack.host.console import render_rpc_log

        if rpc_log.log_category == protos.RpcLog.System and rpc_log.level < protos.RpcLog.Warning:
            return
        if rpc_log.level < protos.RpcLog.Information:
            return
        line = render_rpc_log(rpc_log, record, human=self.log_format == "human")
        with _PRINT_LOCK:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def _stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
            self._prepared = False  # a later start() starts a fresh worker, as the host would

    def _restore_env(self) -> None:
        if not self.restore_environment:
            return
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env = {}

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def idle_for(self) -> float:
        """Seconds since a message last arrived, an invocation finished or a session was released; 0 while
        an invocation runs or a session is held (a held session may still be hiding others' messages:
        sessions wait for a free receiver, which frees up sessionIdleTimeout after its last message)."""
        with self._lock:
            if self._in_flight or self._held_sessions or self._unpolled:
                return 0.0
            return time.monotonic() - self._last_activity

    def wait_until_idle(self, idle_seconds: float, timeout: float | None = None) -> bool:
        """Block until nothing has arrived for idle_seconds (True) or timeout passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._fatal is not None:
                raise RuntimeError(f"a listener crashed: {self._fatal!r}")
            if self.idle_for() >= idle_seconds:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(min(0.1, idle_seconds / 4))

    def run_until_idle(self, idle_seconds: float, timeout: float | None = None) -> HostCounters:
        """start(), wait until idle for idle_seconds, stop(); returns the counters. Raises TimeoutError
        if it is still busy after `timeout` seconds."""
        self.start()
        try:
            if not self.wait_until_idle(idle_seconds, timeout):
                raise TimeoutError(f"local host still busy after {timeout} s: {self.counters.as_dict()}")
        finally:
            self.stop()
        return self.counters

    def __enter__(self) -> LocalHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ bookkeeping
    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.counters, name, getattr(self.counters, name) + delta)

    def _polled_once(self) -> bool:
        """A receiver's first accept (or attach) is over: from now on, no session or message is idleness.
        Without this, a host whose first accept takes longer than idle_seconds (a loaded machine) would
        look idle before it had looked at the queue."""
        with self._lock:
            self._unpolled = max(0, self._unpolled - 1)
            self._last_activity = time.monotonic()
        return True

    def _touch(self, in_flight: int = 0, held: int = 0) -> None:
        with self._lock:
            self._in_flight += in_flight
            self._held_sessions += held
            self._last_activity = time.monotonic()

    def _session_idle_timeout(self) -> float:
        # Extension default when unset: the client's try timeout (as ServiceBusSessionProcessor does).
        idle = self.options.session_idle_timeout
        return idle if idle is not None and idle > 0 else self.options.retry.try_timeout

    # ------------------------------------------------------------------ Service Bus
    def _client(self, listener: Listener) -> Any:
        assert listener.connection is not None
        return listener.connection.create_client(
            **self.options.retry.client_kwargs(), try_timeout=self.options.retry.try_timeout
        )

    def _receiver(self, client: Any, listener: Listener, **kwargs: Any) -> Any:
        kwargs.setdefault("prefetch_count", self.options.prefetch_count)
        if listener.topic:
            return client.get_subscription_receiver(listener.topic, str(listener.subscription), **kwargs)
        return client.get_queue_receiver(listener.entity, **kwargs)

    def _session_worker(self, listener: Listener) -> None:
        from azure.servicebus import NEXT_AVAILABLE_SESSION
        from azure.servicebus.exceptions import OperationTimeoutError, ServiceBusError

        idle_timeout = self._session_idle_timeout()
        failures = 0
        polled = False
        with self._client(listener) as client:
            while not self._stopping.is_set():
                receiver = self._receiver(
                    client,
                    listener,
                    session_id=NEXT_AVAILABLE_SESSION,
                    max_wait_time=self.session_accept_wait,
                )
                # Accepting a session that is not there is not an error to retry (the SDK would retry the
                # timeout clientRetryOptions.maxRetries times, with backoff): no retries while accepting.
                config: Any = getattr(receiver, "_config", None)
                retries = getattr(config, "retry_total", None)
                if retries is not None:
                    config.retry_total = 0
                try:
                    try:
                        receiver.__enter__()
                    finally:
                        polled = polled or self._polled_once()
                    if retries is not None:
                        config.retry_total = retries
                except OperationTimeoutError:
                    failures = 0
                    _close_quietly(receiver)
                    self._broker_ok()
                    continue  # no session available within session_accept_wait
                except ServiceBusError as exc:
                    failures += 1
                    _close_quietly(receiver)
                    self._backoff_after(exc, listener, failures, "could not accept a session")
                    continue
                failures = 0
                self._broker_ok()
                session_id = receiver.session.session_id
                self._count(sessions_acquired=1)
                self._touch(held=1)
                log.info("session acquired", extra={"function": listener.spec.name, "session_id": session_id})
                released_because = "idle"
                try:
                    keeper = LockKeeper(receiver, self.options.max_auto_lock_renewal_duration)
                    released_because = self._pump(receiver, listener, idle_timeout, session_id, keeper)
                except ServiceBusError as exc:
                    released_because = type(exc).__name__
                    if "lock" in type(exc).__name__.lower():
                        self._count(lock_lost=1)
                    log.warning(
                        "session receiver failed",
                        extra={
                            "function": listener.spec.name,
                            "session_id": session_id,
                            "error": type(exc).__name__,
                            "detail": str(exc)[:300],
                        },
                    )
                finally:
                    try:
                        receiver.close()
                    except Exception as exc:
                        log.warning(
                            "closing session receiver failed",
                            extra={"session_id": session_id, "error": repr(exc)[:300]},
                        )
                    self._count(sessions_released=1)
                    self._touch(held=-1)
                    log.info(
                        "session released",
                        extra={
                            "function": listener.spec.name,
                            "session_id": session_id,
                            "reason": released_because,
                        },
                    )

    def _queue_worker(self, listener: Listener) -> None:
        from azure.servicebus.exceptions import ServiceBusError

        failures = 0
        polled = False
        with self._client(listener) as client:
            while not self._stopping.is_set():
                try:
                    receiver = self._receiver(client, listener)
                    try:
                        receiver.__enter__()  # attach (the first poll is over even if this fails)
                    finally:
                        polled = polled or self._polled_once()
                    try:
                        keeper = LockKeeper(receiver, self.options.max_auto_lock_renewal_duration)
                        self._pump(receiver, listener, None, None, keeper)
                    finally:
                        receiver.__exit__(None, None, None)
                    failures = 0
                except ServiceBusError as exc:
                    failures += 1
                    self._backoff_after(exc, listener, failures, "receiver failed")

    def _backoff_after(self, exc: Exception, listener: Listener, failures: int, what: str) -> None:
        """Wait before retrying, with back-off. An unreachable broker is said once, in one line, however
        many receivers notice it; other failures are warnings."""
        delay = min(30.0, 0.5 * 2 ** min(failures, 6))
        if _is_unreachable(exc):
            with self._lock:
                first = not self._broker_down
                self._broker_down = True
            if first:
                where = _endpoint(listener)
                hint = (
                    "start it with `make emulator`"
                    if where.split(":")[0] in ("127.0.0.1", "localhost", "::1")
                    else f"check the {listener.connection.name if listener.connection else ''} setting"
                )
                log.warning(
                    f"Service Bus not reachable at {where}: {hint}",
                    extra={"entity": listener.entity, "cause": type(exc).__name__, "retrying": True},
                )
            else:
                log.debug(what, extra={"error": type(exc).__name__, "retry_in_s": delay})
        else:
            log.warning(
                what,
                extra={
                    "function": listener.spec.name,
                    "entity": listener.entity,
                    "error": type(exc).__name__,
                    "detail": str(exc)[:300],
                    "retry_in_s": delay,
                },
            )
        self._stopping.wait(delay)

    def _broker_ok(self) -> None:
        if self._broker_down:
            with self._lock:
                was_down, self._broker_down = self._broker_down, False
            if was_down:
                log.info("Service Bus reachable again")

    def _pump(
        self,
        receiver: Any,
        listener: Listener,
        idle_timeout: float | None,
        session_id: str | None,
        keeper: LockKeeper | None = None,
    ) -> str:
        """Receive until idle_timeout passes without a message (sessions: the session is then released) or
        stop. One message per invocation, or (cardinality many, as the extension's RunBatchReceiveLoopAsync)
        up to maxMessageBatchSize messages of the one session per invocation. The locks are renewed from
        this thread (`keeper`, devstack/host/locks.py), between receives and while an invocation runs."""
        batch = self.options.max_message_batch_size if listener.batch else 1
        idle_deadline = None if idle_timeout is None else time.monotonic() + idle_timeout
        keeper = keeper or LockKeeper(receiver, 0.0)
        while not self._stopping.is_set():
            keeper.keep_alive()
            wait = self.poll_interval
            if idle_deadline is not None:
                left = idle_deadline - time.monotonic()
                if left <= 0:
                    return "idle"
                wait = min(wait, left)
            messages = list(receiver.receive_messages(max_message_count=batch, max_wait_time=max(wait, 0.05)))
            invocations = [messages] if listener.batch and messages else [[m] for m in messages]
            for invocation in invocations:
                self._touch()
                self._handle(receiver, listener, invocation, session_id, keeper)
                if idle_deadline is not None:
                    idle_deadline = time.monotonic() + float(idle_timeout or 0)
        return "shutdown"

    def _handle(
        self,
        receiver: Any,
        listener: Listener,
        messages: list[Any],
        session_id: str | None,
        keeper: LockKeeper | None = None,
    ) -> None:
        """One invocation (one message, or the batch for cardinality many), then settle every message:
        complete on success (autoCompleteMessages), abandon on failure (the extension abandons a failed
        batch whatever autoCompleteMessages says)."""
        spec = listener.spec
        data_type = binding_data_type(spec.trigger)
        objects = self._receiver_objects(receiver, listener)
        if listener.batch:
            build: Callable[[], TriggerInput] = lambda: servicebus_batch_invocation(  # noqa: E731
                messages, data_type, objects
            )
            fields: dict[str, Any] = {"session_id": session_id, "batch_size": len(messages)}
        else:
            build = lambda: servicebus_invocation(messages[0], data_type, objects)  # noqa: E731
            fields = {"message_id": messages[0].message_id, "session_id": session_id}
        keeper = keeper or LockKeeper(receiver, 0.0)
        if not listener.sessions:
            keeper.handling(messages)
        ok, _ = self._invoke(spec, build, fields, keep_alive=keeper.keep_alive)
        keeper.done()
        try:
            for message in messages:
                if ok:
                    if self.options.auto_complete_messages:
                        receiver.complete_message(message)
                        self._count(completed=1)
                else:
                    receiver.abandon_message(message)
                    self._count(abandoned=1)
        finally:
            self._touch()

    def _receiver_objects(self, receiver: Any, listener: Listener) -> ReceiverObjects:
        """The extension's receiver/actions/client binding data for this receiver (payload.ReceiverObjects):
        the session lock's expiry for a session trigger, and the listener's client."""
        locked_until = None
        if listener.sessions:
            session = getattr(receiver, "session", None)
            locked_until = getattr(session, "locked_until_utc", None) or datetime.now(UTC)
        namespace = _endpoint(listener).rsplit(":", 1)[0]
        with self._lock:
            identifier = self._client_ids.setdefault(listener.spec.name, f"{namespace}-{uuid.uuid4()}")
        return ReceiverObjects(locked_until, namespace, identifier)

    def invoke(
        self, spec: FunctionSpec, build: Callable[[], TriggerInput], fields: dict[str, Any]
    ) -> tuple[bool, Any]:
        """Public for the HTTP server: run one invocation; (True, InvocationResponse.return_value) or
        (False, exception)."""
        return self._invoke(spec, build, fields)

    def _invoke(
        self,
        spec: FunctionSpec,
        build: Callable[[], TriggerInput],
        fields: dict[str, Any],
        keep_alive: Callable[[], None] | None = None,
    ) -> tuple[bool, Any]:
        """One InvocationRequest to the worker: the trigger input and metadata (`build`), a fresh
        invocation id and W3C trace context. True and the return value when the worker answered Success.
        It fails when the worker answers Failure (conversion or the function raised: its RpcException),
        when it (or any other invocation: the worker restart) overruns functionTimeout, or when it is
        still running shutdown_grace after shutdown began."""
        invocation_id = str(uuid.uuid4())
        with self._lock:
            self._sequence += 1
            number = self._sequence
            generation = self._generation
        self._count(invocations=1, timer_invocations=1 if spec.trigger_type == "timerTrigger" else 0)
        is_sb = spec.trigger_type == "serviceBusTrigger"
        if is_sb:
            self._touch(in_flight=1)
        started = time.perf_counter()
        outcome, error, result = "Succeeded", None, None
        try:
            trigger = build()
            request = protos.InvocationRequest(
                invocation_id=invocation_id,
                function_id=spec.function_id,
                input_data=[protos.ParameterBinding(name=spec.trigger_arg, data=trigger.data)],
                trigger_metadata=trigger.metadata,
                trace_context=protos.RpcTraceContext(trace_parent=new_trace_parent()),
                retry_context=protos.RetryContext(),
            )
            assert self.worker is not None, "the host is not prepared"
            response = self._await(self.worker.invoke(request), spec, started, generation, keep_alive)
            if response.result.status != protos.StatusResult.Success:
                raise InvocationFailed(response.result.exception)
            result = response.return_value if response.HasField("return_value") else None
            return True, result
        except BaseException as exc:
            self._count(failed=1)
            outcome, error, result = "Failed", exc, exc
            return False, exc
        finally:
            if is_sb:
                self._touch(in_flight=-1)
            self._log_invocation(spec, number, invocation_id, fields, outcome, error, started)

    def _log_invocation(
        self,
        spec: FunctionSpec,
        number: int,
        invocation_id: str,
        fields: dict[str, Any],
        outcome: str,
        error: BaseException | None,
        started: float,
    ) -> None:
        extra: dict[str, Any] = {
            "n": number,
            "function": spec.name,
            "trigger": spec.trigger_type,
            **fields,
            "status": outcome,  # not "outcome": that is the app's per-message field
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "invocation_id": invocation_id,
        }
        if error is None:
            log.info("invocation", extra=extra)
            return
        if isinstance(error, InvocationFailed):
            extra["error"] = error.type_name
            if error.before_user_code:
                # The worker could not convert the trigger input: what failed, never the value (it may
                # come from the message body). One WARNING line, no traceback: not a bug in the app.
                extra["conversion"] = True
                extra["detail"] = error.conversion_detail()
                log.warning("invocation", extra=extra)
            elif error.type_name in self.expected_failures:
                # Expected (a store outage outlasting the retry burst): the app already logged the burst
                # as one line with its detail; the redelivery is the retry. One line, no traceback.
                extra["expected"] = True
                log.warning("invocation", extra=extra)
            else:
                # A bug, or an input the worker could not convert: at ERROR with the worker's traceback,
                # as the Functions host logs a failed invocation ("Executed '<name>' (Failed, Id=...)"
                # with the RpcException's message and stack).
                extra["detail"] = error.message[:300]
                extra["stack_trace"] = error.stack_trace
                log.error("invocation", extra=extra)
            return
        extra["error"] = type(error).__name__
        if isinstance(error, WorkerRestarted | FunctionTimeout):
            # The host's own failures: the detail says what failed without any payload value.
            extra["detail"] = str(error)
            log.warning("invocation", extra=extra)
        else:
            log.error("invocation", extra=extra, exc_info=error)

    def _await(
        self,
        future: Any,
        spec: FunctionSpec,
        started: float,
        generation: int,
        keep_alive: Callable[[], None] | None = None,
    ) -> Any:
        grace_deadline: float | None = None
        while True:
            if keep_alive is not None:
                keep_alive()  # the receiver's locks, renewed from its own thread (locks.py)
            if self._generation != generation:
                future.cancel()
                raise WorkerRestarted(
                    "the language worker was restarted (another invocation overran functionTimeout)"
                )
            elapsed = time.perf_counter() - started
            if self.function_timeout is not None and elapsed > self.function_timeout:
                future.cancel()
                self._restart_worker(spec, generation)
                raise FunctionTimeout(f"{spec.name} overran functionTimeout ({self.function_timeout:g} s)")
            if self._stopping.is_set():
                grace_deadline = grace_deadline or time.monotonic() + self.shutdown_grace
                if time.monotonic() > grace_deadline:
                    future.cancel()
                    raise TimeoutError(
                        f"{spec.name} still running {self.shutdown_grace:g} s after shutdown began"
                    )
            try:
                return future.result(timeout=0.05)
            except concurrent.futures.TimeoutError:
                continue

    def _restart_worker(self, spec: FunctionSpec, generation: int) -> None:
        """What the host does when an invocation overruns functionTimeout: restart the language worker,
        failing every invocation running in it. Threads cannot be killed in-process, so the worker's
        thread pool is replaced (the library's own start_threadpool_executor); the overrunning call keeps
        running on its abandoned thread, its result discarded."""
        with self._lock:
            if self._generation != generation:
                return  # another overrun already restarted this worker
            self._generation += 1
            in_flight = self._in_flight
        if self.worker is not None:
            self.worker.restart_threadpool()
        log.error(
            "functionTimeout exceeded: language worker restarted",
            extra={
                "function": spec.name,
                "function_timeout_s": self.function_timeout,
                "in_flight_failed": in_flight,
            },
        )

    # ------------------------------------------------------------------ timers
    def _timer_worker(self, listener: Listener) -> None:
        schedule = listener.schedule
        assert schedule is not None
        last: datetime | None = None
        if listener.run_on_startup and not self._stopping.is_set():
            nxt = schedule.next_after(datetime.now(UTC))
            self._fire_timer(listener, lambda: timer_request(schedule.expression, None, nxt, past_due=False))
            last = datetime.now(UTC)
        while not self._stopping.is_set():
            due = schedule.next_after(datetime.now(UTC))
            log.info("timer scheduled", extra={"function": listener.spec.name, "next": due.isoformat()})
            while not self._stopping.is_set():
                left = (due - datetime.now(UTC)).total_seconds()
                if left <= 0:
                    break
                self._stopping.wait(min(left, 1.0))
            if self._stopping.is_set():
                return
            late = (datetime.now(UTC) - due).total_seconds()
            self._fire_timer(
                listener,
                functools.partial(
                    timer_request, schedule.expression, last, schedule.next_after(due), past_due=late > 1.0
                ),
            )
            last = due

    def _fire_timer(self, listener: Listener, request: Callable[[], Any]) -> None:
        self._invoke(
            listener.spec,
            request,
            {"schedule": listener.schedule.expression if listener.schedule else None},
        )


def _is_unreachable(exc: BaseException) -> bool:
    from azure.servicebus.exceptions import ServiceBusCommunicationError, ServiceBusConnectionError

    return isinstance(exc, ServiceBusCommunicationError | ServiceBusConnectionError | OSError)


def _endpoint(listener: Listener) -> str:
    """host:port of the listener's namespace (AMQP 5671, or 5672 for the development emulator)."""
    conn = listener.connection
    if conn is None:
        return "?"
    if conn.connection_string:
        m = re.search(r"endpoint=[a-z]+://([^;/]+)", conn.connection_string, re.IGNORECASE)
        where = m.group(1) if m else "?"
    else:
        where = str(conn.fully_qualified_namespace)
    if ":" not in where:
        where += ":5672" if conn.uses_development_emulator else ":5671"
    return where


def _close_quietly(receiver: Any) -> None:
    try:
        receiver.close()
    except Exception:
        log.debug("closing a receiver failed", exc_info=True)


def _release_waiting_invocations() -> None:
    """Stopping: the app's invocations that hold through a store outage (shared/store/circuit.py) give up
    now. Without this the pool's worker threads, joined at interpreter exit, keep a stopped host alive
    for the rest of their hold budget (up to ORDERS_STORE_RETRY_SECONDS)."""
    service = sys.modules.get("shared.service")
    if service is not None:
        service.release_waiting_invocations()
