"""Command line entry point: `orders emulator ...` or `python -m devstack.emulator`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from .config import ConfigError

DEFAULT_CONFIG = "dev/servicebus/Config.json"
DEFAULT_ADMIN_PORT = 5300  # the official emulator's management port (EMULATOR_HTTP_PORT)
DEFAULT_CERT_DIR = ".local/servicebus-emulator"
log = logging.getLogger("devstack.emulator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the emulator's options on a (sub)parser."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=5672, help="AMQP port (default 5672; 0 = any free port)"
    )
    parser.add_argument(
        "--tls-port",
        type=_port,
        default=None,
        help="also listen for AMQP over TLS (amqps; Service Bus uses 5671) with a self-signed certificate "
        "made at start (0 = any free port; default: no TLS listener)",
    )
    parser.add_argument(
        "--tls-dir",
        default=None,
        help="where to write the TLS certificate (the clients' CA file) and key (default: a temporary "
        "directory, removed on exit)",
    )
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"official emulator Config.json (default {DEFAULT_CONFIG})"
    )
    parser.add_argument("--data", default=None, help="SQLite file or directory: messages survive restarts")
    parser.add_argument(
        "--limits",
        default="standard",
        choices=["standard", "premium", "official-emulator"],
        help="quota profile: Service Bus Standard (default: 256 KB messages, 256 KiB frames), Premium "
        "(1 MiB frames, per-entity message size up to 100 MiB) or the official emulator's quota table",
    )
    parser.add_argument(
        "--admin-port",
        type=_port,
        default=DEFAULT_ADMIN_PORT,
        help=f"management API port for ServiceBusAdministrationClient, HTTPS and HTTP (default "
        f"{DEFAULT_ADMIN_PORT}; 0 = any free port)",
    )
    parser.add_argument("--no-admin", action="store_true", help="do not serve the management API")
    parser.add_argument(
        "--admin-cert-dir",
        default=DEFAULT_CERT_DIR,
        help=f"directory of the management API's local CA (admin-ca.pem; default {DEFAULT_CERT_DIR})",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from exc
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM. Returns a process exit code; errors are one line, no traceback, as for
    every `orders` subcommand (devstack/cli_errors.py: `orders: error: ...`, 2 usage, 1 runtime)."""
    from devstack.cli_errors import USAGE, cannot_listen, fail

    from .server import EmulatorServer

    logging.basicConfig(
        level=getattr(logging, str(args.log_level)), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        server = EmulatorServer(
            Path(args.config),
            host=args.host,
            port=args.port,
            data=args.data,
            tls_port=args.tls_port,
            tls_dir=args.tls_dir,
            limits=args.limits,
            admin_port=None if args.no_admin else args.admin_port,
            cert_dir=args.admin_cert_dir,
        )
    except ConfigError as exc:  # --config names a file that is missing or invalid
        return fail(f"--config {args.config}: {exc}", USAGE)
    except Exception as exc:  # e.g. unusable --data path
        return fail(f"emulator cannot start: {exc}", USAGE)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-POSIX
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        task = asyncio.create_task(server.serve(stop))
        while not server.listening and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
            return 1
        queues = ", ".join(server.queue_names) or "(none)"
        if server.topic_names:
            queues += "; topics: " + ", ".join(server.topic_names)
        extra = f", restored {server.restored} messages from {args.data}" if args.data else ""
        log.info(
            "Service Bus emulator listening on %s:%s, queues: %s%s (limits: %s)",
            args.host,
            server.port,
            queues,
            extra,
            server.limits.name,
        )
        if server.tls_files is not None:
            log.info(
                "AMQP over TLS on %s:%s, CA certificate for clients: %s",
                args.host,
                server.tls_port,
                server.tls_files.cert,
            )
        if server.admin_port is not None:
            log.info(
                "management API (ServiceBusAdministrationClient) on https and http %s:%s; trust %s",
                args.host,
                server.admin_port,
                server.admin_ca_path,
            )
        await task
        log.info("Service Bus emulator stopped")
        return 0

    try:
        return asyncio.run(main())
    except OSError as exc:
        return fail(cannot_listen("orders emulator", args.host, args.port, exc))
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m devstack.emulator` entry point."""
    parser = argparse.ArgumentParser(prog="python -m devstack.emulator", description="Service Bus emulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))
