"""Small helpers shared by the benchmarks: timing summaries, the machine line, log plumbing."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def host_command(app_dir: str, settings: str, until_idle: float, *extra: str) -> list[str]:
    """`python -m devstack.host` as the benchmarks run it: fast session idle timeout, until idle."""
    return [
        sys.executable,
        "-m",
        "devstack.host",
        "--app-dir",
        app_dir,
        "--settings",
        settings,
        "--until-idle",
        str(until_idle),
        "--session-idle-timeout",
        "0.5",
        "--log-format",
        "json",
        "--port",
        "0",
        *extra,
    ]


def lock_free(cmd: list[str]) -> list[str]:
    """`cmd` as root without CAP_DAC_OVERRIDE (setpriv), so file modes bind it as they bind the non-root
    user CI runs as (a read-only store file is read-only for it too); unchanged when not root."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        raise RuntimeError("running as root needs setpriv (util-linux) to make file modes bind the host")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]


def start_host_process(cmd: list[str], log: Path, repo: Path) -> subprocess.Popen[bytes]:
    """A local host process with its output appended to `log`, its settings from its settings file only
    (the environment's ORDERS_/OrderStore/ServiceBus values removed), in its own process group."""
    env = dict(os.environ, PYTHONPATH=str(repo), PYTHONUNBUFFERED="1")
    for key in [k for k in env if k.startswith(("ORDERS_", "OrderStore", "ServiceBus"))]:
        del env[key]  # the settings file decides
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            cwd=str(repo),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class FormatAndDiscard(logging.Handler):
    """Formats every record (so the formatter's cost is paid) and writes it nowhere."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.records = 0
        self.bytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.bytes += len(self.format(record))
        self.records += 1


@contextmanager
def json_logs_discarded(*logger_names: str) -> Iterator[FormatAndDiscard]:
    """Route the named loggers at INFO to a JSON-formatting handler that discards the text."""
    from azure_functions_logging import JsonFormatter

    handler = FormatAndDiscard(JsonFormatter())
    saved = []
    for name in logger_names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate, list(logger.handlers)))
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger, level, propagate, handlers in saved:
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def print_table(rows: Sequence[Sequence[object]], header: Sequence[str], out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print(
            "  ".join(c.rjust(w) if n else c.ljust(w) for c, w in zip(row, widths, strict=True)), file=stream
        )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def export_and_discard_spans() -> None:
    """A BatchSpanProcessor (what Application Insights uses) whose exporter drops every batch."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from shared import tracing

    class Discard(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracing.add_span_processor(BatchSpanProcessor(Discard()))


def tracing_environment(mode: str) -> dict[str, str]:
    """This process's environment for a child measuring tracing set-up `mode` (default, exported, off):
    no exporter from the environment (the child attaches its own for `exported`)."""
    env = dict(os.environ, OTEL_SDK_DISABLED="true" if mode == "off" else "false")
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    return env
