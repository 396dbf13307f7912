"""`orders`: the operator and helper console script (see docs/cli.md).

  orders status [--customer C] [--json] [--store CONN]
  orders quarantine list|show|replay ...
  orders dlq list|show|resubmit ...   (shared/cli_dlq.py over shared/dlq.py)
  orders publish ...            (same code as scripts/publish_orders.py)
  orders emulator ... / orders host ...   (delegated to devstack.emulator.cli / devstack.host.cli)

Errors are one line on stderr (`orders: error: ...`): exit 2 for usage, 1 for runtime failures.
Only argparse is imported up front; everything else is imported by the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from shared.publisher import SendFn
    from shared.store.base import OrderStore

PROG = "orders"
DEFAULT_LIMIT = 20


class CliError(Exception):
    """A failure to report as one line; `exit_code` 1 (runtime) or 2 (usage)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        root = self.prog.split()[0]
        hint = f" (see '{self.prog} --help')"
        _print_error(root, message + hint)
        raise SystemExit(2)


def _print_error(prog: str, message: str) -> None:
    text = " ".join(str(message).split()) or "failed"
    if len(text) > 400:
        text = text[:397] + "..."
    sys.stderr.write(f"{prog}: error: {text}\n")
    sys.stderr.flush()


def guarded(action: Callable[[], int], *, prog: str = PROG) -> int:
    """Run a command: its exit code, or a one-line error and 1/2 instead of a traceback."""
    try:
        return int(action() or 0)
    except SystemExit as exc:  # argparse (help, usage errors) and delegated commands
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        _print_error(prog, "interrupted")
        return 130
    except BrokenPipeError:  # `orders status | head`
        return 0
    except Exception as exc:
        code = getattr(exc, "exit_code", 1)
        message = str(exc) if isinstance(exc, CliError) or hasattr(exc, "exit_code") else _describe(exc)
        _print_error(prog, message)
        return code if isinstance(code, int) and code > 0 else 1


def _describe(exc: BaseException) -> str:
    from shared.settings import SettingsError

    if isinstance(exc, SettingsError):
        return f"bad settings: {exc}"
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name}: {text}" if text else name


# --------------------------------------------------------------------------------------------------
# parser


def build_parser(argv: Sequence[str] = (), *, send: SendFn | None = None) -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Operate the session-ordered order processor: status, quarantine, DLQ, test data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    store_opts = OneLineArgumentParser(add_help=False)
    store_opts.add_argument(
        "--store", metavar="CONNECTION", help="order store connection (default: OrderStoreConnection setting)"
    )

    p = sub.add_parser("status", parents=[store_opts], help="orders, outcomes and quarantine at a glance")
    p.add_argument("--customer", metavar="C", help="only this customer (session id)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help="orders shown in the table")
    p.set_defaults(handler=_status)

    q = sub.add_parser("quarantine", help="list, show and replay quarantined messages")
    qsub = q.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    p = qsub.add_parser("list", parents=[store_opts], help="quarantined messages (open ones by default)")
    p.add_argument("--all", action="store_true", help="include replayed ones")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_quarantine_list)
    p = qsub.add_parser("show", parents=[store_opts], help="one quarantined message, body included")
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_quarantine_show)
    p = qsub.add_parser(
        "replay", parents=[store_opts], help="re-publish a quarantined message (or a corrected body)"
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("--body-file", metavar="F", help="send this corrected JSON body instead of the original")
    p.add_argument("--queue", metavar="Q", help="queue (default: ORDERS_QUEUE_NAME or orders-with-sessions)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--namespace", metavar="FQDN", help="use DefaultAzureCredential against FQDN")
    target.add_argument(
        "--connection", metavar="STR", help="connection string (default: ServiceBusConnection)"
    )
    p.add_argument(
        "--new-message-id",
        action="store_true",
        help="send the original body under a new message id (the queue drops a repeated id for 10 minutes)",
    )
    p.add_argument("--force", action="store_true", help="replay even if already replayed or invalid")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=lambda args: _quarantine_replay(args, send))

    from shared import cli_dlq  # argparse only at import time

    cli_dlq.add_parser(sub)

    from shared import publisher  # standard library only at import time

    p = sub.add_parser("publish", help="generate and send test order-step messages")
    publisher.add_arguments(p)
    p.set_defaults(handler=lambda args: publisher.run(args, send=send))

    first = next((a for a in argv if not a.startswith("-")), None)
    _add_delegate(sub, "emulator", "devstack.emulator.cli", "the local Service Bus emulator", first)
    _add_delegate(sub, "host", "devstack.host.cli", "the local Functions host", first)
    return parser


def _add_delegate(sub: Any, name: str, module: str, what: str, first: str | None) -> None:
    """`orders NAME ...` runs `module.run(args)`; the module is imported only when NAME is the command."""
    help_text = f"{what} (delegates to {module})"
    if first == name:
        import importlib

        try:
            mod = importlib.import_module(module)
            add_arguments, run = mod.add_arguments, mod.run
        except Exception as exc:
            raise CliError(f"{module} is not available ({_describe(exc)})") from None
        p = sub.add_parser(name, help=help_text, description=f"{what}.")
        add_arguments(p)
        p.set_defaults(handler=run)
        return
    p = sub.add_parser(name, help=help_text, add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)


def main(argv: list[str] | None = None, *, send: SendFn | None = None) -> int:
    """Entry point of the `orders` console script. `send` replaces publisher.send_messages (tests)."""
    args_in = list(sys.argv[1:] if argv is None else argv)

    def run() -> int:
        parser = build_parser(args_in, send=send)
        args = parser.parse_args(args_in)
        return int(args.handler(args) or 0)

    return guarded(run)


# --------------------------------------------------------------------------------------------------
# store access


def open_store_from(args: argparse.Namespace) -> OrderStore:
    """The store named by --store or the settings; a missing SQLite file is an error, not a new store."""
    from dataclasses import replace
    from pathlib import Path

    from shared.settings import DEFAULT_SQLITE_URL, AppSettings

    settings = AppSettings.load()
    if getattr(args, "store", None):
        settings = replace(settings, store_connection=args.store.strip(), store_identity={})
    conn = (settings.store_connection or "").strip()
    if conn.startswith("sqlite:") or (not conn and "tableServiceUri" not in settings.store_identity):
        path = (conn or DEFAULT_SQLITE_URL).removeprefix("sqlite:///").partition("?")[0]
        if path and path != ":memory:" and not Path(path).is_file():
            raise CliError(f"no order store at {path} (nothing processed yet, or wrong --store?)")
    from shared.order_workflow import ORDERS
    from shared.store.factory import open_store

    try:
        return open_store(settings, ORDERS)
    except ImportError as exc:
        raise CliError(f"this order store is not available here: {_describe(exc)}") from None
    except (ValueError, OSError) as exc:
        raise CliError(f"cannot open the order store: {_describe(exc)}") from None


def _with_store(args: argparse.Namespace, action: Callable[[OrderStore], int]) -> int:
    store = open_store_from(args)
    try:
        return action(store)
    finally:
        store.close()


def _check_id(value: str | None, what: str) -> None:
    import re

    from shared.contract import ID_PATTERN

    if value is not None and not re.fullmatch(ID_PATTERN, value):
        raise CliError(f"{what} must match {ID_PATTERN}", exit_code=2)


def _console(file: IO[str] | None = None) -> Any:
    import os

    from rich.console import Console

    out = file or sys.stdout
    # A terminal (or COLUMNS) sets the width; piped output gets room instead of rich's 80-column default.
    # Tables are laid out to fit 80 columns with every id whole (ids are for copying).
    wide = out.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(file=out, highlight=False, width=None if wide else 200)


def _table(title: str, **kwargs: Any) -> Any:
    """A compact table (no vertical rules) so 80 columns hold whole ids."""
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", **kwargs)


def _id_column(table: Any, header: str) -> None:
    """A column of ids: never wrapped or cut, so it can be copied."""
    table.add_column(header, no_wrap=True, overflow="ignore")


def _text(value: Any) -> str:
    """A value for a person: '-' for none, `k=v, ...` for mappings, never a Python repr."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return _safe(str(value))


def _store_flag(args: argparse.Namespace) -> str:
    """` --store X` when the command was given one, so printed follow-up commands work as shown."""
    import shlex

    store = getattr(args, "store", None)
    return f" --store {shlex.quote(store)}" if store else ""


def _print_json(doc: Any) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def _safe(text: str) -> str:
    """Untrusted text for a terminal: control characters (escape sequences!) shown as \\xNN."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)


# --------------------------------------------------------------------------------------------------
# status


def _status(args: argparse.Namespace) -> int:
    _check_id(args.customer, "--customer")
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}", exit_code=2)

    def show(store: OrderStore) -> int:
        from shared.views import status_report

        report = status_report(store, args.customer)
        if args.json:
            _print_json(report)
        else:
            render_status(report, limit=args.limit, customer=args.customer, store_flag=_store_flag(args))
        return 0

    return _with_store(args, show)


def render_status(
    report: dict[str, Any], *, limit: int = DEFAULT_LIMIT, customer: str | None = None, store_flag: str = ""
) -> None:
    """`orders status` for a person: fits 80 columns, ids whole."""
    from collections import Counter

    console = _console()
    scope = f" for {customer}" if customer else ""
    outcomes = _table(f"outcomes{scope}")
    labels = {"parked": "parked now"}  # parked steps still waiting, not how many were ever parked
    for name in report["outcomes"]:
        outcomes.add_column(labels.get(name, name), justify="right")
    outcomes.add_row(*(str(v) for v in report["outcomes"].values()))
    console.print(outcomes)

    orders = report["orders"]
    by_state = Counter(o["state"] for o in orders)
    states = _table("orders by state")
    states.add_column("state")
    states.add_column("orders", justify="right")
    for state, count in sorted(by_state.items()):
        states.add_row(state, str(count))
    states.add_row("total", str(len(orders)), style="bold")
    console.print(states)

    if orders:
        table = _table("orders (steps applied; parked steps wait for the missing sequence)")
        _id_column(table, "customer")
        _id_column(table, "order")
        table.add_column("state", no_wrap=True)
        table.add_column("steps", justify="right")
        table.add_column("parked now")
        table.add_column("waiting for", justify="right")
        for o in orders[:limit]:
            table.add_row(
                _safe(o["customer_id"]),
                _safe(o["order_id"]),
                o["state"],
                str(len(o["applied_steps"])),
                ",".join(str(s) for s in o["parked_sequences"]) or "-",
                "-" if o["waiting_for_sequence"] is None else f"seq {o['waiting_for_sequence']}",
            )
        console.print(table)
        if len(orders) > limit:
            console.print(
                f"... {len(orders) - limit} more orders not shown (use --limit, --customer or --json)"
            )

    quarantine = report["quarantine"]
    reasons = _table(f"quarantined messages ({len(quarantine)} open)")
    reasons.add_column("reason")
    reasons.add_column("messages", justify="right")
    for reason, count in sorted(Counter(q["reason"] for q in quarantine).items()):
        reasons.add_row(reason, str(count))
    console.print(reasons)
    if quarantine:
        console.print(f"see them with: orders quarantine list{store_flag}", markup=False, soft_wrap=True)


# --------------------------------------------------------------------------------------------------
# quarantine


def _quarantine_row(record: Any) -> dict[str, Any]:
    from shared.views import quarantine_view

    return quarantine_view(record) | {
        "step": record.step,
        "status": record.status,
        "detail": record.detail,
        "quarantined_at": record.quarantined_at.isoformat(),
        "replayed_at": record.replayed_at.isoformat() if record.replayed_at else None,
    }


def _quarantine_list(args: argparse.Namespace) -> int:
    def show(store: OrderStore) -> int:
        rows = [_quarantine_row(r) for r in store.list_quarantine(include_replayed=args.all)]
        if args.json:
            _print_json({"quarantine": rows})
            return 0
        render_quarantine_list(rows, include_replayed=args.all, store_flag=_store_flag(args))
        return 0

    return _with_store(args, show)


def render_quarantine_list(
    rows: list[dict[str, Any]], *, include_replayed: bool, store_flag: str = ""
) -> None:
    """Quarantine ids whole (the first column, for `show`/`replay`); fits 80 columns."""
    table = _table(f"quarantined messages ({len(rows)}{'' if include_replayed else ' open'})")
    _id_column(table, "id")
    table.add_column("reason")
    table.add_column("order (session)")
    table.add_column("seq", justify="right")
    if include_replayed:  # without --all every row is open
        table.add_column("status")
    for r in rows:
        where = _safe(r["order_id"]) if r["order_id"] else f"({_safe(r['session_id'])})"
        cells = [r["id"], r["reason"], where, "-" if r["sequence"] is None else str(r["sequence"])]
        table.add_row(*cells, *([r["status"]] if include_replayed else []))
    console = _console()
    console.print(table)
    if rows:
        console.print(f"details: orders quarantine show ID{store_flag}", markup=False, soft_wrap=True)


def _get_record(store: OrderStore, quarantine_id: str) -> Any:
    record = store.get_quarantine(quarantine_id)
    if record is None:
        raise CliError(f"no quarantined message with id {_safe(quarantine_id)!r}")
    return record


def _quarantine_show(args: argparse.Namespace) -> int:
    def show(store: OrderStore) -> int:
        record = _get_record(store, args.id)
        if args.json:
            _print_json(record.to_document())
            return 0
        render_quarantine_record(record)
        return 0

    return _with_store(args, show)


def render_quarantine_record(record: Any) -> None:
    """One record for a person: '-' for missing values, metadata flattened, the body as text."""
    table = _table(f"quarantined message {record.id}", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    row = _quarantine_row(record)
    for key in ("reason", "detail", "status", "quarantined_at", "replayed_at", "session_id", "message_id"):
        table.add_row(key, _text(row[key]))
    for key in ("order_id", "sequence", "step"):
        table.add_row(key, _text(row[key]))
    for key, value in record.metadata.items():
        if key in ("session_id", "message_id"):
            continue
        if isinstance(value, dict):  # application properties: one row each, so ids stay whole
            table.add_row(key.removeprefix("application_"), "-" if not value else "")
            for name, item in value.items():
                table.add_row(f"  {_safe(str(name))}", _text(item))
        else:
            table.add_row(key, _text(value))
    console = _console()
    console.print(table)
    if record.body_encoding == "omitted":
        console.print(_body_not_kept(record), style="bold", markup=False)
        console.print("to replay it, pass the body with: orders quarantine replay ID --body-file F")
        return
    label = "body (base64: not UTF-8)" if record.body_encoding == "base64" else "body"
    console.print(f"{label}, {len(record.raw_body)} bytes:", style="bold")
    console.print(_safe(record.body), markup=False, highlight=False, soft_wrap=True)
    if record.body_encoding == "base64":
        console.print("as text (invalid bytes replaced):", style="bold")
        text = record.raw_body.decode("utf-8", "replace")
        console.print(_safe(text), markup=False, highlight=False, soft_wrap=True)


def _body_not_kept(record: Any) -> str:
    """A body over the record's bound (MAX_BODY_BYTES) is kept only as its size and SHA-256."""
    from shared.envelope import MAX_BODY_BYTES

    size = "unknown size" if record.body_size is None else f"{record.body_size} bytes"
    sha = f", sha256 {record.body_sha256}" if record.body_sha256 else ""
    return f"body not kept: {size}{sha} (over the {MAX_BODY_BYTES // 1024} KiB a record keeps)"


def replay_message_id(record: Any, body: bytes | None, now: Any) -> str:
    """Message id for a replay. The original body keeps its message id (the app then sees the same
    message again); a corrected body gets `{order_id}:{sequence}:replay-{UTC time}` so the queue's
    duplicate detection does not take it for the original."""
    order_id, sequence = record.stream_key, record.sequence
    if body is not None:
        import json

        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                order_id = doc.get("order_id", order_id)
                sequence = doc.get("sequence", sequence)
        except ValueError:
            pass
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    base = f"{order_id}:{sequence}" if order_id and sequence is not None else record.message_id
    return f"{base}:replay-{stamp}"[-128:]


def _quarantine_replay(args: argparse.Namespace, send: SendFn | None) -> int:
    from pathlib import Path

    corrected: bytes | None = None
    if args.body_file:
        try:
            corrected = Path(args.body_file).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read --body-file {args.body_file}: {exc.strerror or exc}") from None
        _validate_json(corrected, args.body_file)

    def replay(store: OrderStore) -> int:
        from shared import publisher
        from shared.engine.records import utcnow
        from shared.settings import merged_environment

        record = _get_record(store, args.id)
        if not record.session_id:
            raise CliError(f"quarantined message {record.id} has no session id; cannot replay it")
        if corrected is None and record.body_encoding == "omitted":
            raise CliError(f"{record.id}: {_body_not_kept(record)}; pass the body to send with --body-file")
        if record.status == "replayed" and not args.force:
            raise CliError(
                f"{record.id} was already replayed at {record.replayed_at}; pass --force to replay again"
            )
        now = utcnow()
        if corrected is not None:
            if not args.force:
                _check_contract(corrected, record.session_id)
            body, message_id = corrected, replay_message_id(record, corrected, now)
        else:
            body = record.raw_body
            message_id = replay_message_id(record, None, now) if args.new_message_id else record.message_id
        props = {
            str(k): v
            for k, v in (record.metadata.get("application_properties") or {}).items()
            if isinstance(v, str | int | float | bool)
        }
        props["replayed-from"] = record.id
        message = publisher.OutgoingMessage(
            session_id=record.session_id,
            message_id=message_id,
            body=body,
            content_type=publisher.CONTENT_TYPE,
            application_properties=props,
            kind="step",
            expected=publisher.Expected("applied"),
            order_id=record.stream_key,
            sequence=record.sequence,
            step=record.step,
        )
        connection, namespace, queue = publisher.resolve_target(
            merged_environment(), connection=args.connection, namespace=args.namespace, queue=args.queue
        )
        (send or publisher.send_messages)(
            [message],
            connection_string=connection,
            namespace=namespace,
            queue=queue,
            batch_size=1,
            progress=False,
        )
        store.mark_replayed(record.id, now)
        result = {
            "replayed": record.id,
            "queue": queue,
            "session_id": record.session_id,
            "message_id": message_id,
            "corrected_body": corrected is not None,
        }
        if args.json:
            _print_json(result)
        else:
            what = "corrected body" if corrected is not None else "original body"
            _console().print(
                f"replayed {record.id} ({what}) to {queue}: session {_safe(record.session_id)}, "
                f"message id {_safe(message_id)}",
                markup=False,
            )
        return 0

    return _with_store(args, replay)


def _validate_json(body: bytes, name: str) -> None:
    import json

    try:
        json.loads(body)
    except UnicodeDecodeError as exc:
        raise CliError(f"--body-file {name} is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--body-file {name} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _check_contract(body: bytes, session_id: str) -> None:
    """A corrected body the app would quarantine again is refused (unless --force)."""
    from shared.contract import ContractError, parse_order_step

    try:
        message = parse_order_step(body)
    except ContractError as exc:
        raise CliError(
            f"corrected body would be quarantined again ({exc.reason}: {exc.detail}); --force sends it anyway"
        ) from None
    if message.customer_id != session_id:
        raise CliError(
            f"corrected body's customer_id is not the session id {session_id!r} (session-mismatch); "
            "--force sends it anyway"
        )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
