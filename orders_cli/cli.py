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

from orders_cli import why
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
    print_command,
    print_json,
    safe,
)

if TYPE_CHECKING:
    from orders_cli.sender import SendFn
    from shared.store.base import OrderStore
    from shared.workflows import WorkflowBinding

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
    why.add_stuck_after(p)
    add_servicebus_target(p)  # queue depth and DLQ count (orders_cli/queue_depth.py)
    p.set_defaults(handler=_status)
    why.add_parser(sub, store_opts, open_store_from)

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
    # Every replay now gets a new derived message id (shared/replay.py); the flag stays for old scripts.
    p.add_argument("--new-message-id", action="store_true", help=argparse.SUPPRESS)
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


def selected_binding() -> WorkflowBinding:
    """The workflow ORDERS_WORKFLOW selects (environment, then local.settings.json)."""
    from shared.settings import AppSettings, SettingsError

    try:
        return AppSettings.load().binding()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def open_store_from(args: argparse.Namespace) -> OrderStore:
    """The store named by --store or the settings; a missing SQLite file is an error, not a new store.
    The store must belong to the selected workflow (its record, shared/store/workflow_record.py)."""
    from dataclasses import replace
    from pathlib import Path

    from shared.settings import DEFAULT_SQLITE_URL, AppSettings

    settings = AppSettings.load()
    if getattr(args, "store", None):
        check_store_flag(args.store)
        settings = replace(settings, store_connection=args.store.strip(), store_identity={})
        from shared.settings import STORE_CONNECTION, SettingsError, store_kind

        try:
            store_kind(settings)
        except SettingsError as exc:  # about the flag, not the setting
            raise CliError(str(exc).replace(STORE_CONNECTION, "--store"), exit_code=2) from None
    args.store_label = store_label(settings)  # errors name the store they searched
    conn = (settings.store_connection or "").strip()
    if conn.startswith("sqlite:") or (not conn and "tableServiceUri" not in settings.store_identity):
        path = (conn or DEFAULT_SQLITE_URL).removeprefix("sqlite:///").partition("?")[0]
        if path and path != ":memory:" and not Path(path).is_file():
            raise CliError(f"no order store at {path} (nothing processed yet, or wrong --store?)")
    from shared.store.factory import open_store
    from shared.store.workflow_record import WorkflowMismatch

    binding = selected_binding()
    try:
        return open_store(settings, binding.load(), binding.record)
    except WorkflowMismatch as exc:
        raise CliError(str(exc)) from None
    except ImportError as exc:
        raise CliError(f"this order store is not available here: {describe(exc)}") from None
    except (ValueError, OSError) as exc:
        from shared.settings import STORE_CONNECTION, SettingsError

        if isinstance(exc, SettingsError) and getattr(args, "store", None):  # the flag, not the setting
            raise CliError(str(exc).replace(STORE_CONNECTION, "--store"), exit_code=2) from None
        raise CliError(f"cannot open the order store: {describe(exc)}") from None


STORE_FORMS = "sqlite:///PATH, UseDevelopmentStorage=true or a storage connection string"


def check_store_flag(value: str) -> None:
    """--store names its kind: a bare path is a usage error that says how to write it."""
    import shlex

    text = value.strip()
    if text.startswith("sqlite:") or "=" in text:
        return
    hint = f"; for the SQLite file {text} write --store {shlex.quote('sqlite:///' + text)}" if text else ""
    raise CliError(f"--store takes {STORE_FORMS}, not {value!r}{hint}", exit_code=2)


def store_label(settings: Any) -> str:
    """The store for a message, without secrets: the SQLite URL, or the table and its account/endpoint."""
    import re

    conn = (settings.store_connection or "").strip()
    uri = settings.store_identity.get("tableServiceUri")
    if not conn and uri:
        return f"table {settings.table_name} at {uri}"
    if not conn or conn.startswith("sqlite:"):
        from shared.settings import DEFAULT_SQLITE_URL

        return (conn or DEFAULT_SQLITE_URL).partition("?")[0]
    if re.search(r"usedevelopmentstorage\s*=\s*true", conn, re.IGNORECASE):
        return f"table {settings.table_name} in Azurite (UseDevelopmentStorage=true)"
    found = re.search(r"(?:^|;)\s*(accountname|tableendpoint)\s*=\s*([^;]+)", conn, re.IGNORECASE)
    return f"table {settings.table_name} at {found.group(2).strip() if found else 'the connection string'}"


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

        binding = selected_binding()
        report = status_report(binding, store, args.customer)
        report["stuck"] = why.stuck_section(args, store)  # orders_cli/why.py: parked steps too old
        depth = _queue_depth(args)
        if args.json:
            print_json({**report, "servicebus": depth})
        else:
            render_status(
                report,
                limit=args.limit,
                customer=args.customer,
                store_flag=_store_flag(args),
                binding=binding,
            )
            why.render_stuck(report["stuck"], store_flag=_store_flag(args))
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
    report: dict[str, Any],
    *,
    limit: int = DEFAULT_LIMIT,
    customer: str | None = None,
    store_flag: str = "",
    binding: WorkflowBinding | None = None,
) -> None:
    """`orders status` for a person: fits 80 columns, ids whole. Names come from the workflow binding."""
    from collections import Counter

    from shared.workflows import ORDERS

    b = binding or ORDERS
    console = make_console()
    scope = f" for {customer}" if customer else ""
    outcomes = compact_table(f"outcomes{scope}")
    labels = {"parked": "parked now"}  # parked steps still waiting, not how many were ever parked
    for name in report["outcomes"]:
        outcomes.add_column(labels.get(name, name), justify="right")
    outcomes.add_row(*(str(v) for v in report["outcomes"].values()))
    console.print(outcomes)

    orders = report[b.stream_plural]
    by_state = Counter(o["state"] for o in orders)
    states = compact_table(f"{b.stream_plural} by state")
    states.add_column("state")
    states.add_column(b.stream_plural, justify="right")
    for state, count in sorted(by_state.items()):
        states.add_row(state, str(count))
    states.add_row("total", str(len(orders)), style="bold")
    console.print(states)

    if orders:
        table = compact_table(
            f"{b.stream_plural} (steps applied; parked steps wait for the missing sequence)"
        )
        id_column(table, b.session_label)
        id_column(table, b.stream_label)
        table.add_column("state", no_wrap=True)
        table.add_column("steps", justify="right")
        table.add_column("parked now")
        table.add_column("waiting for", justify="right")
        for o in orders[:limit]:
            table.add_row(
                safe(o[b.session_field]),
                safe(o[b.stream_field]),
                o["state"],
                str(len(o["applied_steps"])),
                ",".join(str(s) for s in o["parked_sequences"]) or "-",
                "-" if o["waiting_for_sequence"] is None else f"seq {o['waiting_for_sequence']}",
            )
        console.print(table)
        if len(orders) > limit:
            console.print(
                f"... {len(orders) - limit} more {b.stream_plural} not shown"
                " (use --limit, --customer or --json)"
            )

    quarantine = report["quarantine"]
    reasons = compact_table(f"quarantined messages ({len(quarantine)} open)")
    reasons.add_column("reason")
    reasons.add_column("messages", justify="right")
    for reason, count in sorted(Counter(q["reason"] for q in quarantine).items()):
        reasons.add_row(reason, str(count))
    console.print(reasons)
    if quarantine:
        print_command(console, "see them with", f"orders quarantine list{store_flag}")


# --------------------------------------------------------------------------------------------------
# quarantine


def _quarantine_row(record: Any, binding: WorkflowBinding) -> dict[str, Any]:
    from shared.views import quarantine_view

    return quarantine_view(binding, record) | {
        "step": record.step,
        "status": record.status,
        "detail": record.detail,
        "quarantined_at": record.quarantined_at.isoformat(),
        "replayed_at": record.replayed_at.isoformat() if record.replayed_at else None,
    }


def _quarantine_list(args: argparse.Namespace) -> int:
    def show(store: OrderStore) -> int:
        binding = selected_binding()
        rows = [_quarantine_row(r, binding) for r in store.list_quarantine(include_replayed=args.all)]
        if args.json:
            print_json({"quarantine": rows})
            return 0
        render_quarantine_list(rows, include_replayed=args.all, store_flag=_store_flag(args), binding=binding)
        return 0

    return _with_store(args, show)


def render_quarantine_list(
    rows: list[dict[str, Any]],
    *,
    include_replayed: bool,
    store_flag: str = "",
    binding: WorkflowBinding | None = None,
) -> None:
    """Quarantine ids whole (the first column, for `show`/`replay`); fits 80 columns."""
    from shared.workflows import ORDERS

    b = binding or ORDERS
    table = compact_table(f"quarantined messages ({len(rows)}{'' if include_replayed else ' open'})")
    id_column(table, "id")
    table.add_column("reason")
    table.add_column(f"{b.stream_label} (session)")
    table.add_column("seq", justify="right")
    if include_replayed:  # without --all every row is open
        table.add_column("status")
    for r in rows:
        where = safe(r[b.stream_field]) if r[b.stream_field] else f"({safe(r['session_id'])})"
        cells = [r["id"], r["reason"], where, "-" if r["sequence"] is None else str(r["sequence"])]
        table.add_row(*cells, *([r["status"]] if include_replayed else []))
    console = make_console()
    console.print(table)
    if rows:
        print_command(console, "details", f"orders quarantine show ID{store_flag}")


def _get_record(store: OrderStore, quarantine_id: str, args: argparse.Namespace | None = None) -> Any:
    record = store.get_quarantine(quarantine_id)
    if record is None:
        where = getattr(args, "store_label", None) or "the order store"
        raise CliError(
            f"no quarantined message with id {safe(quarantine_id)!r} in {where} "
            f"(ids: orders quarantine list --all{_store_flag(args) if args else ''})"
        )
    return record


def _quarantine_show(args: argparse.Namespace) -> int:
    def show(store: OrderStore) -> int:
        record = _get_record(store, args.id, args)
        if args.json:
            print_json(record.to_document())
            return 0
        render_quarantine_record(record, selected_binding())
        return 0

    return _with_store(args, show)


def render_quarantine_record(record: Any, binding: WorkflowBinding | None = None) -> None:
    """One record for a person: '-' for missing values, metadata flattened, the body as text."""
    from shared.workflows import ORDERS

    b = binding or ORDERS
    table = compact_table(f"quarantined message {record.id}", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    row = _quarantine_row(record, b)
    for key in ("reason", "detail", "status", "quarantined_at", "replayed_at", "session_id", "message_id"):
        table.add_row(key, for_person(row[key]))
    for key in (b.stream_field, "sequence", "step"):
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
        from shared.replay import ReplayError, ReplayMessage
        from shared.replay import replay as replay_record
        from shared.settings import merged_environment

        record = _get_record(store, args.id, args)
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
                parse=selected_binding().load().parse,
                corrected=corrected,
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
