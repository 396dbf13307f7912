"""Azure's Python worker (the `azure-functions-runtime` library, what Azure runs for Python 3.13+), driven
the way Azure's proxy worker drives it: FunctionRpc messages in, FunctionRpc messages out.

Azure: the Functions host talks gRPC to the proxy worker (azure-functions-python-worker
`workers/proxy_worker/dispatcher.py`), which hands each StreamingMessage to the library's handlers
(`worker_init_request`, `functions_metadata_request`, `function_load_request`, `invocation_request`),
wrapped in a request object with `.request` (the StreamingMessage) and `.properties` (`protos`, `host`),
on its asyncio loop, and turns the root logger's records into `RpcLog` messages for the host.

Here: the same handlers, the same messages and the same wrapping, on an asyncio loop thread of ours, in
the local host's process (no gRPC channel; the messages are the same). So function indexing, annotation
checks, argument conversion, the `Context`, sync/async execution on the library's thread pool and the
exception the host gets back are Azure's own code. What differs from Azure is in docs/local-host.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.host.rpc import protos

log = logging.getLogger("devstack.host")

HOST_VERSION = "4.1044.0.0"  # what WorkerInitRequest.host_version reports: a Functions host 4.x
# The capabilities the host offers at init (azure-functions-host RpcWorkerChannel): the worker answers
# with its own; the local host honours RawHttpBodyBytes and TypedDataCollection, which the library asks for.
HOST_CAPABILITIES = {"FunctionDataCache": "false"}


_LEVELS = (
    (logging.CRITICAL, "Critical"),
    (logging.ERROR, "Error"),
    (logging.WARNING, "Warning"),
    (logging.INFO, "Information"),
    (logging.DEBUG, "Debug"),
)
SYSTEM_LOGGERS = ("azure.functions", "azure_functions_runtime", "azure_functions_worker")


def in_worker() -> bool:
    """Whether the record being logged comes from the worker's side of the process: its asyncio loop
    (init, indexing, argument conversion, async functions) or a sync function on the library's thread
    pool (which sets the library's invocation-id context variable around the call)."""
    if threading.current_thread().name == WORKER_LOOP_THREAD:
        return True
    try:
        from azure_functions_runtime import invocation_id_cv
    except ImportError:
        return False
    return invocation_id_cv.get() is not None


class RpcLogHandler(logging.Handler):
    """What the proxy worker puts on the worker's root logger (`AsyncLoggingHandler`): every record the
    worker side emits becomes an RpcLog (level, category = logger name, User or System, the invocation id)
    sent to the host, which prints it. Formatted by whatever formatter the app sets on root handlers (ours
    sets azure_functions_logging's JsonFormatter), as in Azure."""

    def __init__(self, sink: Callable[[Any, logging.LogRecord], None]) -> None:
        super().__init__()
        self.sink = sink
        self.addFilter(lambda record: in_worker())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from azure_functions_runtime import invocation_id_cv

            level = next((name for number, name in _LEVELS if record.levelno >= number), "None")
            system = record.name.startswith(SYSTEM_LOGGERS)
            message = protos.RpcLog(
                level=getattr(protos.RpcLog, level),
                message=self.format(record),
                category=record.name,
                log_category=protos.RpcLog.System if system else protos.RpcLog.User,
                invocation_id=invocation_id_cv.get() or getattr(record, "invocation_id", None) or "",
            )
            self.sink(message, record)
        except Exception:
            self.handleError(record)


class WorkerInitError(RuntimeError):
    """WorkerInitResponse / FunctionLoadResponse failed: the app is not served at all (as in Azure,
    where a failed init or load leaves the app with no function)."""


@dataclass(frozen=True)
class LoadedFunction:
    """One function as the worker reported it in FunctionMetadataResponse and then loaded it."""

    function_id: str
    name: str
    directory: str
    raw_bindings: tuple[str, ...]


@dataclass
class _Request:
    """The object the proxy worker hands the library: `.request` is the StreamingMessage; `.properties`
    carries the generated `protos` module and the host address (init only)."""

    name: str
    request: Any
    properties: dict[str, Any] | None = None


def _failure(result: Any) -> str:
    """A StatusResult's exception as one line: `Type: message` as the worker serialized it."""
    text = (result.exception.message or result.result or "unknown failure").strip()
    return text.splitlines()[0] if text else "unknown failure"


class LanguageWorker:
    """One Python language worker for one function app directory."""

    def __init__(
        self,
        app_dir: Path,
        *,
        script_file: str = "function_app.py",
        on_log: Callable[[Any, logging.LogRecord], None] | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.log_handler = RpcLogHandler(on_log) if on_log is not None else None
        self.script_file = script_file
        self.functions: dict[str, LoadedFunction] = {}  # by function name
        self.worker_metadata: Any = None
        self.capabilities: dict[str, str] = {}
        self._lib: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """WorkerInitRequest (the library indexes function_app.py here), FunctionsMetadataRequest, one
        FunctionLoadRequest per function. Raises WorkerInitError with the worker's own one-line cause."""
        import azure_functions_runtime as lib

        self._lib = lib
        if self.log_handler is not None:  # before init: what the app logs while it is indexed is the worker's
            logging.getLogger().addHandler(self.log_handler)
        self._start_loop()
        # A fresh import of the app, as a new worker process would make (a previous worker in this
        # process, e.g. a test's, imported it with other settings).
        module = Path(self.script_file).stem
        sys.modules.pop(module, None)
        if sys.path[:1] != [str(self.app_dir)]:  # first, as the worker puts the app's directory
            if str(self.app_dir) in sys.path:
                sys.path.remove(str(self.app_dir))
            sys.path.insert(0, str(self.app_dir))
        lib.start_threadpool_executor()
        init = self.call(
            lib.worker_init_request,
            protos.StreamingMessage(
                request_id=_new_id(),
                worker_init_request=protos.WorkerInitRequest(
                    host_version=HOST_VERSION,
                    capabilities=HOST_CAPABILITIES,
                    worker_directory=str(Path(lib.__file__).resolve().parent),
                    function_app_directory=str(self.app_dir),
                ),
            ),
            init=True,
        )
        if init.result.status != protos.StatusResult.Success:
            raise WorkerInitError(_failure(init.result))
        self.worker_metadata = init.worker_metadata
        self.capabilities = dict(init.capabilities)
        metadata = self.call(
            lib.functions_metadata_request,
            protos.StreamingMessage(
                request_id=_new_id(),
                functions_metadata_request=protos.FunctionsMetadataRequest(
                    function_app_directory=str(self.app_dir)
                ),
            ),
        )
        if metadata.result.status != protos.StatusResult.Success:
            raise WorkerInitError(_failure(metadata.result))
        for fn in metadata.function_metadata_results:
            loaded = self.call(
                lib.function_load_request,
                protos.StreamingMessage(
                    request_id=_new_id(),
                    function_load_request=protos.FunctionLoadRequest(function_id=fn.function_id, metadata=fn),
                ),
            )
            if loaded.result.status != protos.StatusResult.Success:
                raise WorkerInitError(f"{fn.name}: {_failure(loaded.result)}")
            self.functions[fn.name] = LoadedFunction(
                fn.function_id, fn.name, fn.directory, tuple(fn.raw_bindings)
            )

    def restart_threadpool(self) -> None:
        """What a worker restart does to running invocations (functionTimeout): they are abandoned. The
        library's thread pool is replaced; a thread still running user code cannot be killed in-process
        and runs on, its result discarded."""
        if self._lib is not None:
            self._lib.start_threadpool_executor()

    def stop(self) -> None:
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
        if self._lib is not None:
            try:
                executor = self._lib.get_threadpool_executor()
                if executor is not None:
                    executor.shutdown(wait=False, cancel_futures=True)
            except Exception:
                log.debug("stopping the worker thread pool failed", exc_info=True)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = self._thread = None

    # ------------------------------------------------------------------ messages
    def call(self, handler: Callable[[Any], Any], message: Any, *, init: bool = False) -> Any:
        """Hand one StreamingMessage to a library handler and wait for its response."""
        return self.submit(handler, message, init=init).result()

    def submit(
        self, handler: Callable[[Any], Any], message: Any, *, init: bool = False
    ) -> concurrent.futures.Future[Any]:
        assert self._loop is not None, "worker not started"
        properties = {"protos": protos, "host": "127.0.0.1"} if init else None
        request = _Request(type(message).__name__, message, properties)
        return asyncio.run_coroutine_threadsafe(handler(request), self._loop)

    def invoke(self, invocation: Any) -> concurrent.futures.Future[Any]:
        """One InvocationRequest; the future holds the InvocationResponse."""
        return self.submit(
            self._lib.invocation_request,
            protos.StreamingMessage(request_id=_new_id(), invocation_request=invocation),
        )

    # ------------------------------------------------------------------ internals
    def _start_loop(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            started.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=WORKER_LOOP_THREAD, daemon=True)
        self._thread.start()
        started.wait()


WORKER_LOOP_THREAD = "python-worker"


def _new_id() -> str:
    return str(uuid.uuid4())
