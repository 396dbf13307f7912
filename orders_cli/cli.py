"""`orders`: the operator and helper console script (see docs/cli.md).

  orders status [--customer C] [--json] [--store CONN]
  orders quarantine list|show|replay ...
  orders dlq list|show|resubmit ...   (orders_cli/dlq.py over shared/dlq.py)
  orders publish ...            (same code as scripts/publish_orders.py)
  orders emulator ... / orders host ...   (delegated to devstack.emulator.cli / devstack.host.cli)

Errors are one line on stderr (`orders: error: ...`): exit 2 for usage, 1 for runtime failures
(orders_cli/console.py). The use cases live in the deployed package (shared/views.py, shared/replay.py,
shared/dlq.py); this module parses, opens the store and renders. Only argparse is imported up
front; everything else is imported by the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from orders_cli.console import (
    PROG,
    CliError,
    OneLineArgumentParser,
    add_servicebus_target,
    compact_table,
    describe,
    for_person,
    guarded,
    id_column,
    make_console,
    print_json,
    safe,
)

if TYPE_CHECKING:
    from orders_cli.sender import SendFn
    from shared.store.base import OrderStore

DEFAULT_LIMIT = 20


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
    add_servicebus_target(p)  # queue depth and DLQ count (orders_cli/queue_depth.py)
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
    add_servicebus_target(p)
    p.add_argument(
        "--new-message-id",
        action="store_true",
        help="send the original body under a new message id (the queue drops a repeated id for 10 minutes)",
    )
    p.add_argument("--force", action="store_true", help="replay even if already replayed or invalid")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=lambda args: _quarantine_replay(args, send))

    from orders_cli import dlq, publish  # argparse only at import time

    dlq.add_parser(sub)
    p = sub.add_parser("publish", help="generate and send test order-step messages")
    publish.add_arguments(p)
    p.set_defaults(handler=lambda args: publish.run(args, send=send))

    first = next((a for a in argv if not a.startswith("-")), None)
    _add_delegate(sub, "emulator", "the local Service Bus emulator", first)
    _add_delegate(sub, "host", "the local Functions host", first)
    return parser


def _add_delegate(sub: Any, name: str, what: str, first: str | None) -> None:
    """`orders emulator|host ...` runs devstack's own command line; it is imported only when it is the
    command, so `orders --help` and the operator commands stay light."""
    module = f"devstack.{name}.cli"
    help_text = f"{what} (delegates to {module})"
    if first != name:
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        return
    if name == "emulator":
        from devstack.emulator import cli as command
    else:
        from devstack.host import cli as command  # type: ignore[no-redef]
    p = sub.add_parser(name, help=help_text, description=f"{what}.")
    command.add_arguments(p)
    p.set_defaults(handler=command.run)


def main(argv: list[str] | None = None, *, send: SendFn | None = None) -> int:
    """Entry point of the `orders` console script. `send` replaces orders_cli.sender.send_messages (tests)."""
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
        raise CliError(f"this order store is not available here: {describe(exc)}") from None
    except (ValueError, OSError) as exc:
        raise CliError(f"cannot open the order store: {describe(exc)}") from None


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


def _store_flag(args: argparse.Namespace) -> str:
    """` --store X` when the command was given one, so printed follow-up commands work as shown."""
    import shlex

    store = getattr(args, "store", None)
    return f" --store {shlex.quote(store)}" if store else ""


# --------------------------------------------------------------------------------------------------
# status


def _status(args: argparse.Namespace) -> int:
    from orders_cli import queue_depth

    _check_id(args.customer, "--customer")
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}", exit_code=2)

    def show(store: OrderStore) -> int:
        from shared.views import status_report

        report = status_report(store, args.customer)
        depth = _queue_depth(args)
        if args.json:
            print_json({**report, "servicebus": depth})
        else:
            render_status(report, limit=args.limit, customer=args.customer, store_flag=_store_flag(args))
            queue_depth.render(depth)
        return 0

    return _with_store(args, show)


def _queue_depth(args: argparse.Namespace) -> dict[str, Any] | None:
    from orders_cli import queue_depth, sender
    from shared.settings import merged_environment

    values = merged_environment()
    connection, namespace, queue = sender.resolve_target(
        values, connection=args.connection, namespace=args.namespace, queue=args.queue
    )
    return queue_depth.queue_depth(values, connection, namespace, queue)


def render_status(
    report: dict[str, Any], *, limit: int = DEFAULT_LIMIT, customer: str | None = None, store_flag: str = ""
) -> None:
    """`orders status` for a person: fits 80 columns, ids whole."""
    from collections import Counter

    console = make_console()
    scope = f" for {customer}" if customer else ""
    outcomes = compact_table(f"outcomes{scope}")
    labels = {"parked": "parked now"}  # parked steps still waiting, not how many were ever parked
    for name in report["outcomes"]:
        outcomes.add_column(labels.get(name, name), justify="right")
    outcomes.add_row(*(str(v) for v in report["outcomes"].values()))
    console.print(outcomes)

    orders = report["orders"]
    by_state = Counter(o["state"] for o in orders)
    states = compact_table("orders by state")
    states.add_column("state")
    states.add_column("orders", justify="right")
    for state, count in sorted(by_state.items()):
        states.add_row(state, str(count))
    states.add_row("total", str(len(orders)), style="bold")
    console.print(states)

    if orders:
        table = compact_table("orders (steps applied; parked steps wait for the missing sequence)")
        id_column(table, "customer")
        id_column(table, "order")
        table.add_column("state", no_wrap=True)
        table.add_column("steps", justify="right")
        table.add_column("parked now")
        table.add_column("waiting for", justify="right")
        for o in orders[:limit]:
            table.add_row(
                safe(o["customer_id"]),
                safe(o["order_id"]),
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
    reasons = compact_table(f"quarantined messages ({len(quarantine)} open)")
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
            print_json({"quarantine": rows})
            return 0
        render_quarantine_list(rows, include_replayed=args.all, store_flag=_store_flag(args))
        return 0

    return _with_store(args, show)


def render_quarantine_list(
    rows: list[dict[str, Any]], *, include_replayed: bool, store_flag: str = ""
) -> None:
    """Quarantine ids whole (the first column, for `show`/`replay`); fits 80 columns."""
    table = compact_table(f"quarantined messages ({len(rows)}{'' if include_replayed else ' open'})")
    id_column(table, "id")
    table.add_column("reason")
    table.add_column("order (session)")
    table.add_column("seq", justify="right")
    if include_replayed:  # without --all every row is open
        table.add_column("status")
    for r in rows:
        where = safe(r["order_id"]) if r["order_id"] else f"({safe(r['session_id'])})"
        cells = [r["id"], r["reason"], where, "-" if r["sequence"] is None else str(r["sequence"])]
        table.add_row(*cells, *([r["status"]] if include_replayed else []))
    console = make_console()
    console.print(table)
    if rows:
        console.print(f"details: orders quarantine show ID{store_flag}", markup=False, soft_wrap=True)


def _get_record(store: OrderStore, quarantine_id: str) -> Any:
    record = store.get_quarantine(quarantine_id)
    if record is None:
        raise CliError(f"no quarantined message with id {safe(quarantine_id)!r}")
    return record


def _quarantine_show(args: argparse.Namespace) -> int:
    def show(store: OrderStore) -> int:
        record = _get_record(store, args.id)
        if args.json:
            print_json(record.to_document())
            return 0
        render_quarantine_record(record)
        return 0

    return _with_store(args, show)


def render_quarantine_record(record: Any) -> None:
    """One record for a person: '-' for missing values, metadata flattened, the body as text."""
    table = compact_table(f"quarantined message {record.id}", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    row = _quarantine_row(record)
    for key in ("reason", "detail", "status", "quarantined_at", "replayed_at", "session_id", "message_id"):
        table.add_row(key, for_person(row[key]))
    for key in ("order_id", "sequence", "step"):
        table.add_row(key, for_person(row[key]))
    for key, value in record.metadata.items():
        if key in ("session_id", "message_id"):
            continue
        if isinstance(value, dict):  # application properties: one row each, so ids stay whole
            table.add_row(key.removeprefix("application_"), "-" if not value else "")
            for name, item in value.items():
                table.add_row(f"  {safe(str(name))}", for_person(item))
        else:
            table.add_row(key, for_person(value))
    console = make_console()
    console.print(table)
    if record.body_encoding == "omitted":
        from shared.replay import body_not_kept

        console.print(body_not_kept(record), style="bold", markup=False)
        console.print("to replay it, pass the body with: orders quarantine replay ID --body-file F")
        return
    label = "body (base64: not UTF-8)" if record.body_encoding == "base64" else "body"
    console.print(f"{label}, {len(record.raw_body)} bytes:", style="bold")
    console.print(safe(record.body), markup=False, highlight=False, soft_wrap=True)
    if record.body_encoding == "base64":
        console.print("as text (invalid bytes replaced):", style="bold")
        text = record.raw_body.decode("utf-8", "replace")
        console.print(safe(text), markup=False, highlight=False, soft_wrap=True)


def _quarantine_replay(args: argparse.Namespace, send: SendFn | None) -> int:
    """`quarantine replay`: shared/replay.py's use case, sending through the publisher's sender."""
    from pathlib import Path

    corrected: bytes | None = None
    if args.body_file:
        try:
            corrected = Path(args.body_file).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read --body-file {args.body_file}: {exc.strerror or exc}") from None
        _validate_json(corrected, args.body_file)

    def replay(store: OrderStore) -> int:
        from orders_cli import sender
        from orders_cli.traffic import CONTENT_TYPE, Expected, OutgoingMessage
        from shared.engine.outcomes import Outcome
        from shared.order_workflow import ORDERS
        from shared.replay import ReplayError, ReplayMessage
        from shared.replay import replay as replay_record
        from shared.settings import merged_environment

        record = _get_record(store, args.id)
        connection, namespace, queue = sender.resolve_target(
            merged_environment(), connection=args.connection, namespace=args.namespace, queue=args.queue
        )

        def send_one(m: ReplayMessage) -> None:
            message = OutgoingMessage(
                session_id=m.session_id,
                message_id=m.message_id,
                body=m.body,
                content_type=CONTENT_TYPE,
                application_properties=m.application_properties,
                kind="step",
                expected=Expected(Outcome.APPLIED),
                order_id=m.stream_key,
                sequence=m.sequence,
                step=m.step,
            )
            (send or sender.send_messages)(
                [message],
                connection_string=connection,
                namespace=namespace,
                queue=queue,
                batch_size=1,
                progress=False,
            )

        try:
            sent = replay_record(
                store,
                record,
                send_one,
                parse=ORDERS.parse,
                corrected=corrected,
                new_message_id=args.new_message_id,
                force=args.force,
            )
        except ReplayError as exc:
            raise CliError(str(exc)) from None
        result = {
            "replayed": record.id,
            "queue": queue,
            "session_id": sent.session_id,
            "message_id": sent.message_id,
            "corrected_body": sent.corrected,
        }
        if args.json:
            print_json(result)
        else:
            what = "corrected body" if sent.corrected else "original body"
            make_console().print(
                f"replayed {record.id} ({what}) to {queue}: session {safe(sent.session_id)}, "
                f"message id {safe(sent.message_id)}",
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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
