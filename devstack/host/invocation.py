"""The `func.Context` a function receives, as the Python worker builds it (trigger arguments come from
`azure.functions`' own converters: see devstack/host/payload.py)."""

from __future__ import annotations

import secrets
import threading
import uuid
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc


class LocalTraceContext(func_abc.TraceContext):
    def __init__(self, trace_parent: str, trace_state: str = "", attributes: dict[str, str] | None = None):
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = attributes or {}

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes


class LocalRetryContext(func_abc.RetryContext):
    """No retry policy is configured in the app: retry_count 0, max_retry_count 0."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


_thread_local = threading.local()


class LocalContext(func.Context):
    """func.Context as the worker provides it: fresh invocation id, W3C trace context per invocation."""

    def __init__(self, function_name: str, function_directory: str, trace_parent: str | None = None):
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = LocalTraceContext(trace_parent or new_trace_parent())
        self._retry_context = LocalRetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return _thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return self._retry_context


def new_trace_parent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
