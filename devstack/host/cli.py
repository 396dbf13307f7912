"""`orders host` / `python -m devstack.host`: run function_app.py's Service Bus, timer and HTTP triggers."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TypeVar

log = logging.getLogger("devstack.host")
N = TypeVar("N", int, float)


def _number(text: str, cast: type[N], what: str) -> N:
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _positive_float(text: str) -> float:
    value = _number(text, float, "a number of seconds")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = _number(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535 (0: any free port)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app-dir", default=".", help="directory holding function_app.py and host.json (default: current)"
    )
    parser.add_argument(
        "--settings",
        default=None,
        metavar="PATH",
        help="local.settings.json to read Values from (default: APP_DIR/local.settings.json)",
    )
    parser.add_argument(
        "--until-idle",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="exit 0 once no message has arrived for this long (should exceed sessionIdleTimeout)",
    )
    parser.add_argument(
        "--max-concurrent-sessions",
        type=_positive_int,
        default=None,
        metavar="N",
        help="override host.json extensions.serviceBus.maxConcurrentSessions",
    )
    parser.add_argument(
        "--session-idle-timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="override host.json extensions.serviceBus.sessionIdleTimeout",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="on Ctrl-C/SIGTERM, how long in-flight invocations may finish before they are abandoned",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=7071,
        help="serve HTTP triggers on http://127.0.0.1:PORT/api/<route> (default 7071, as func start; 0: any)",
    )
    parser.add_argument(
        "--log-format",
        choices=("human", "json"),
        default="human",
        help="human: a startup block, one line per invocation (default); json: every record as a JSON line",
    )


def run(args: argparse.Namespace) -> int:
    """Errors follow devstack/cli_errors.py (`orders: error: ...`; 2 usage and configuration, 1 runtime). A
    WorkerInitResponse failure (a setting function_app refuses, an app the worker will not load) is 2 and
    nothing is consumed: Azure serves no function of such an app."""
    from devstack.cli_errors import USAGE, fail
    from devstack.host.config import HostConfigError
    from devstack.host.discovery import DiscoveryError
    from devstack.host.runtime import LocalHost
    from devstack.host.timespan import TimeSpanError

    app_dir = Path(args.app_dir)
    if not (app_dir / "function_app.py").is_file():
        return fail(f"no function_app.py in {app_dir.resolve()}: pass --app-dir DIR", USAGE)
    if args.settings and not Path(args.settings).is_file():
        return fail(f"--settings {args.settings} does not exist", USAGE)
    from shared.settings import (
        SERVICE_BUS_CONNECTION,
        SettingsError,
        merged_environment,
        validate_app_settings,
    )

    settings_file = Path(args.settings) if args.settings else app_dir / "local.settings.json"
    try:  # the same checks function_app runs at import, plus the Service Bus connection; before anything
        validate_app_settings(merged_environment(local_settings=settings_file), servicebus=True)
    except SettingsError as exc:
        if not settings_file.is_file() and SERVICE_BUS_CONNECTION in str(exc):
            return fail(_no_local_settings(app_dir), USAGE)  # the usual cause: the file was never made
        return fail(str(exc), USAGE)
    overrides: dict[str, object] = {}
    if getattr(args, "session_idle_timeout", None):
        overrides["sessionIdleTimeout"] = _as_timespan(args.session_idle_timeout)
    host = LocalHost(
        app_dir,
        settings_path=args.settings,
        host_json_overrides=overrides,
        max_concurrent_sessions=args.max_concurrent_sessions,
        shutdown_grace=getattr(args, "shutdown_grace", 10.0),
        restore_environment=False,
        http_port=getattr(args, "port", None),
        log_format=getattr(args, "log_format", "human"),
    )
    try:
        host.prepare()
    except (HostConfigError, DiscoveryError, TimeSpanError) as exc:
        return fail(str(exc), USAGE)
    except Exception as exc:  # the worker could not be started: say so in one line, the detail in the log
        log.debug("the Python worker failed to start", exc_info=True)
        return fail(f"could not load function_app.py: {type(exc).__name__}: {exc}", USAGE)

    stop_requested = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if stop_requested.is_set():  # second Ctrl-C: give up on the grace period
            host.shutdown_grace = 0.0
        stop_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    until_idle = args.until_idle
    sid = host.options.session_idle_timeout
    if until_idle is not None and sid is not None and until_idle <= sid:
        log.warning(
            "--until-idle is not longer than sessionIdleTimeout: sessions held idle by other receivers may "
            "look like an empty queue",
            extra={"until_idle_s": until_idle, "session_idle_timeout_s": sid},
        )
    code = 0
    try:
        try:
            host.start()
        except HostConfigError as exc:  # e.g. the HTTP port is in use
            return fail(str(exc))
        while not stop_requested.is_set():
            if host._fatal is not None:
                code = 1
                break
            if until_idle is not None and host.idle_for() >= until_idle:
                log.info("idle: nothing arrived", extra={"idle_s": until_idle, **host.counters.as_dict()})
                break
            stop_requested.wait(0.2)
        if received:
            log.info("shutdown requested", extra={"signal": signal.Signals(received[0]).name})
    except Exception as exc:
        code = fail(f"{type(exc).__name__}: {exc}")
    finally:
        host.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code  # Ctrl-C / SIGTERM is how a local host is stopped: exit 0, so `make host` reports no error


def _no_local_settings(app_dir: Path) -> str:
    where = app_dir.resolve()
    example = where / "local.settings.json.example"
    make = f"cp {example.name} local.settings.json" if example.is_file() else "create local.settings.json"
    return (
        f"no local.settings.json in {where}, so no Service Bus connection: {make} "
        "(its values are for the local emulator, `make emulator`)"
    )


def _as_timespan(seconds: float) -> str:
    whole = int(seconds)
    fraction = seconds - whole
    text = time.strftime("%H:%M:%S", time.gmtime(whole))
    return text + (f"{fraction:.7f}"[1:] if fraction else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="orders host",
        description="Run function_app.py's Service Bus, timer and HTTP triggers locally.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
