"""How `orders host` reads on a terminal, like `func start`: one block listing the functions at startup,
then one short line per invocation with a running counter. `--log-format json` keeps every record as a
JSON line instead (what tests and benchmarks parse)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any, TextIO

HOST_LOGGER = "devstack.host"
# The host's INFO records a terminal shows; the rest (sessions acquired/released, timers scheduled) are
# in the JSON lines.
_SHOWN = {
    "local host started",
    "invocation",
    "local host stopping",
    "local host stopped",
    "idle: nothing arrived",
    "shutdown requested",
    "Service Bus reachable again",
}


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]


class ConsoleFormatter(logging.Formatter):
    """Human lines for the host's own records; `level logger: message` for the app's warnings."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = record.__dict__
        message = record.getMessage()
        if record.name == HOST_LOGGER and message == "local host started":
            return self._started(data)
        if record.name == HOST_LOGGER and message == "invocation":
            return self._invocation(record, data) + self._traceback(record)
        text = f"[{_time(record)}] {message}"
        if record.name == HOST_LOGGER and message == "local host stopped":
            text += (
                f": {data.get('invocations', 0)} invocations, {data.get('completed', 0)} completed, "
                f"{data.get('abandoned', 0)} abandoned"
            )
        elif record.name == HOST_LOGGER and record.levelno >= logging.WARNING and data.get("error"):
            text += f" ({data['error']}" + (f": {data['detail']}" if data.get("detail") else "") + ")"
        if record.name != HOST_LOGGER:
            text = f"[{_time(record)}] {record.levelname.lower()} {record.name}: {message}"
        return text + self._traceback(record)

    def _traceback(self, record: logging.LogRecord) -> str:
        """Only ERROR records carry theirs to the terminal (a bug); expected failures have none."""
        if record.levelno < logging.ERROR:
            return ""
        if record.exc_info:
            return "\n" + self.formatException(record.exc_info)
        if record.exc_text:  # already rendered (and masked) by a logging filter
            return "\n" + record.exc_text
        stack = getattr(record, "stack_trace", None)  # the worker's RpcException.stack_trace
        if isinstance(stack, str) and stack.strip():
            return "\n" + stack.rstrip()
        return ""

    def _started(self, data: dict[str, Any]) -> str:
        lines = ["", "Functions:", ""]
        for fn in data.get("functions") or []:
            trigger = str(fn.get("trigger") or "")
            if fn.get("url"):
                methods = ",".join(fn.get("methods") or ["ANY"])
                lines.append(f"        {fn['function']}: [{methods}] {fn['url']}")
                continue
            if trigger == "serviceBusTrigger":
                what = f"queue {fn.get('entity')}" + (" (sessions)" if fn.get("sessions") else "")
                what += f", dataType {fn.get('data_type') or 'string (default)'}"
                what += f", {fn.get('connection')}"
            elif trigger == "timerTrigger":
                what = f"schedule {fn.get('schedule')}"
            else:
                what = ""
            lines.append(f"        {fn['function']}: {trigger}" + (f" - {what}" if what else ""))
        lines.append("")
        if data.get("http"):
            lines.append(f"HTTP: {data['http']}")
        lines.append(
            f"Sessions: up to {data.get('max_concurrent_sessions')} at once, released after "
            f"{data.get('session_idle_timeout_s')} s idle. Ctrl-C to stop."
        )
        return "\n".join(lines) + "\n"

    def _invocation(self, record: logging.LogRecord, data: dict[str, Any]) -> str:
        parts = [f"[{_time(record)}] #{data.get('n')} {data.get('function')}"]
        if data.get("session_id"):
            parts.append(f"session={data['session_id']}")
        if data.get("message_id"):
            parts.append(f"message={data['message_id']}")
        if data.get("route"):
            parts.append(f"{data.get('method')} /{data['route']}")
        outcome = str(data.get("status"))
        if data.get("error"):
            outcome += f" ({data['error']}" + (f": {data['detail']}" if data.get("detail") else "") + ")"
        parts.append(outcome)
        parts.append(f"{float(data.get('duration_ms') or 0):.0f} ms")
        return " ".join(parts)


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """Always formats with ConsoleFormatter (the app's setup_logging() sets its JSON formatter on every
    root handler, as it would the worker's), and shows the app's own records from WARNING up."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._console = ConsoleFormatter()

    def format(self, record: logging.LogRecord) -> str:
        return self._console.format(record)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and (
            record.name != HOST_LOGGER or record.getMessage() not in _SHOWN
        ):
            return False
        return bool(super().filter(record))


# The fields of the app's per-message line a terminal shows after its message, in this order.
# (The session and message id are on the host's invocation line that follows.)
_APP_FIELDS = ("outcome", "reason", "order_id", "sequence", "step", "delivery_count")
_RPC_LEVEL_NAMES = {0: "trace", 1: "debug", 2: "info", 3: "warning", 4: "error", 5: "critical", 6: "none"}


def render_rpc_log(rpc_log: Any, record: logging.LogRecord, *, human: bool) -> str:
    """An RpcLog from the worker as the host prints it. JSON form: the message as the worker formatted it
    (the app's JSON line). Human form, like `func start`: `[time] message`, with the app's per-message
    fields (outcome, reason, ids) after it when the message is one of its JSON lines."""
    text = str(rpc_log.message)
    if not human:
        return text
    level = _RPC_LEVEL_NAMES.get(int(rpc_log.level), "info")
    prefix = f"[{_time(record)}]" + (f" {level}" if level not in ("info", "debug", "trace") else "")
    try:
        doc = json.loads(text)
    except ValueError:
        return f"{prefix} {text}"
    if not isinstance(doc, dict):
        return f"{prefix} {text}"
    found = doc.get("extra")
    extra: dict[str, Any] = found if isinstance(found, dict) else {}
    fields = [f"{k}={extra[k]}" for k in _APP_FIELDS if extra.get(k) not in (None, "", [])]
    line = " ".join([prefix, str(doc.get("message", "")), *fields])
    stack = doc.get("exception")
    return line + (f"\n{stack}" if stack and int(rpc_log.level) >= 4 else "")
