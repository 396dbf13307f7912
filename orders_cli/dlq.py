"""`orders dlq list|show|resubmit`: argparse and rich glue over the use cases in shared/dlq.py.

The broker is reached through orders_cli/deadletters.py (the SDK adapter).

The Service Bus target is resolved exactly as for `orders quarantine replay` and `orders publish`
(`sender.resolve_target` + `sender.open_client`): `--namespace` (DefaultAzureCredential) or
`--connection`, else the ServiceBusConnection settings. Only argparse is imported at import time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from orders_cli.console import (
    CliError,
    OneLineArgumentParser,
    add_servicebus_target,
    compact_table,
    make_console,
    print_block,
    print_command,
    print_json,
    safe,
)

if TYPE_CHECKING:
    from orders_cli.deadletters import ServiceBusDeadLetters
    from shared.dlq import DeadLetter, ResubmitReport

DEFAULT_LIMIT = 50


@contextmanager
def connect_servicebus(args: argparse.Namespace) -> Iterator[ServiceBusDeadLetters]:
    """The queue's DLQ (and a sender to the queue) over the real SDK."""
    from orders_cli import sender
    from orders_cli.deadletters import ServiceBusDeadLetters
    from shared.settings import merged_environment

    connection, namespace, queue = sender.resolve_target(
        merged_environment(), connection=args.connection, namespace=args.namespace, queue=args.queue
    )
    try:
        client, endpoint = sender.open_client(connection, namespace)
    except sender.PublishError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:  # a malformed connection string
        raise CliError(f"bad Service Bus connection string: {exc}") from None
    dlq = ServiceBusDeadLetters(client, queue)
    dlq.endpoint = endpoint  # type: ignore[attr-defined]
    with dlq:
        yield dlq


# Tests replace this with a fake (an object with peek/receive/complete/abandon/send, queue, endpoint).
connect: Callable[[argparse.Namespace], AbstractContextManager[Any]] = connect_servicebus


def add_parser(sub: Any) -> None:
    """Register `dlq` and its actions on the `orders` subparsers."""
    target = OneLineArgumentParser(add_help=False)
    add_servicebus_target(target)
    target.add_argument("--json", action="store_true", help="machine-readable output")

    d = sub.add_parser("dlq", help="list, show and resubmit dead-lettered messages")
    dsub = d.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)

    p = dsub.add_parser("list", parents=[target], help="dead-lettered messages, counted by DeadLetterReason")
    p.add_argument("--reason", metavar="R", help="only messages with this DeadLetterReason")
    p.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help="messages shown in the table"
    )
    p.set_defaults(handler=_list)

    p = dsub.add_parser("show", parents=[target], help="one dead-lettered message, body included")
    p.add_argument("id", metavar="ID", help="message id, or seq:N for the DLQ sequence number N")
    p.set_defaults(handler=_show)

    p = dsub.add_parser(
        "resubmit",
        parents=[target],
        help="re-send dead-lettered messages to the queue under derived ids, then remove them from the DLQ",
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="message ids, or seq:N")
    p.add_argument("--reason", metavar="R", help="every message with this DeadLetterReason")
    p.add_argument("--all", action="store_true", help="every message in the DLQ")
    p.add_argument("--dry-run", action="store_true", help="show what would be sent; send and remove nothing")
    p.add_argument(
        "--batch-size", type=int, default=50, metavar="B", help="messages received and sent at once"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_resubmit)


def _peek(dlq: Any) -> list[DeadLetter]:
    from shared.dlq import peek_all

    return peek_all(dlq)


def _where(dlq: Any) -> dict[str, Any]:
    return {"queue": dlq.queue, "endpoint": getattr(dlq, "endpoint", None)}


# --------------------------------------------------------------------------------------------------
# list


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}", exit_code=2)
    from shared.dlq import count_by_reason

    with connect(args) as dlq:
        letters = _peek(dlq)
        where = _where(dlq)
    if args.reason is not None:
        letters = [m for m in letters if m.reason == args.reason]
    by_reason = count_by_reason(letters)
    if args.json:
        print_json(
            where
            | {"total": len(letters), "by_reason": by_reason, "messages": [m.summary() for m in letters]}
        )
        return 0
    console = make_console()
    scope = f" with reason {args.reason!r}" if args.reason is not None else ""
    console.print(
        f"dead-lettered messages in {where['queue']}{scope}: {len(letters)}", style="bold", markup=False
    )
    for reason, count in by_reason.items():  # stacked, not a table: whole reasons at 80 columns
        mine = [m for m in letters if m.reason == reason]
        sessions = len({m.session_id for m in mine})
        plural = "s" if count != 1 else ""
        print_block(
            console,
            f"  {reason}:",
            [
                f"{count} message{plural} from {sessions} session{'s' if sessions != 1 else ''}",
                f"e.g. {mine[0].description or '(no description)'}",
            ],
            indent="    ",
        )
    if letters:
        console.print("messages (oldest first)", style="bold")
        for m in letters[: args.limit]:
            _print_letter(console, m)
        if len(letters) > args.limit:
            console.print(f"... {len(letters) - args.limit} more not shown (use --limit, --reason or --json)")
        print_command(
            console,
            "resubmit with (try --dry-run first)",
            f"orders dlq resubmit --all | --reason R | ID ...{_target_flags(args)}",
        )
    return 0


def _print_letter(console: Any, m: DeadLetter) -> None:
    """One dead-lettered message, stacked under its `seq:N` (the ID `show` and `resubmit` take), so 80
    columns hold whole ids and reasons."""
    when = f"{m.enqueued_time:%Y-%m-%d %H:%M:%S} UTC" if m.enqueued_time else "-"
    tries = "-" if m.delivery_count is None else str(m.delivery_count)
    size = "-" if m.body is None else str(len(m.body))
    print_block(
        console,
        f"  seq:{m.sequence_number}",
        [
            m.message_id or "(no message id)",
            f"session {m.session_id or '-'}",
            m.reason,
            f"enqueued {when}, {tries} deliveries, {size} bytes",
        ],
    )


def _target_flags(args: argparse.Namespace) -> str:
    """The --queue/--namespace the command was given, so a printed command works as shown (a connection
    string is a secret: never printed)."""
    import shlex

    flags = ""
    for name in ("queue", "namespace"):
        value = getattr(args, name, None)
        if value:
            flags += f" --{name} {shlex.quote(value)}"
    return flags


# --------------------------------------------------------------------------------------------------
# show


def _body_doc(m: DeadLetter) -> dict[str, Any]:
    import base64

    if m.body is None:
        return {"body": None, "body_encoding": None}
    try:
        return {"body": m.body.decode("utf-8"), "body_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(m.body).decode("ascii"), "body_encoding": "base64"}


def _show(args: argparse.Namespace) -> int:
    from shared.dlq import find

    with connect(args) as dlq:
        found = find(_peek(dlq), args.id)
        where = _where(dlq)
    if not found:
        raise CliError(f"no dead-lettered message {safe(args.id)!r} in {where['queue']}")
    if args.json:
        print_json(where | {"messages": [m.summary() | _body_doc(m) for m in found]})
        return 0
    console = make_console()
    for m in found:
        table = compact_table(f"dead-lettered message seq:{m.sequence_number}", show_header=False)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in m.summary().items():
            if key == "application_properties":
                for name, prop in value.items():
                    table.add_row(f"property {safe(name)}", safe(str(prop)))
            else:
                table.add_row(key, safe("-" if value is None else str(value)))
        console.print(table)
        doc = _body_doc(m)
        if doc["body"] is None:
            console.print("body: not an AMQP data section (cannot be shown or resubmitted)", style="bold")
            continue
        label = "body (base64: not UTF-8)" if doc["body_encoding"] == "base64" else "body"
        console.print(f"{label}, {len(m.body or b'')} bytes:", style="bold")
        console.print(safe(doc["body"]), markup=False, highlight=False, soft_wrap=True)
    return 0


# --------------------------------------------------------------------------------------------------
# resubmit


def _resubmit(args: argparse.Namespace) -> int:
    from shared.dlq import DlqError, resubmit, select

    if sum((bool(args.ids), args.reason is not None, args.all)) != 1:
        raise CliError("choose the messages: ID ..., --reason R or --all (exactly one)", exit_code=2)
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, not {args.batch_size}", exit_code=2)
    with connect(args) as dlq:
        where = _where(dlq)
        chosen, missing = select(_peek(dlq), refs=args.ids, reason=args.reason, everything=args.all)
        if missing:
            names = ", ".join(repr(safe(r)) for r in missing)
            raise CliError(f"not in the DLQ of {where['queue']}: {names}; nothing was resubmitted")
        show_progress = not (args.json or args.no_progress) and sys.stderr.isatty() and len(chosen) > 1
        with _progress(len(chosen), show_progress, "checking" if args.dry_run else "resubmitting") as tick:
            try:
                report = resubmit(
                    dlq, dlq.send, chosen, dry_run=args.dry_run, batch_size=args.batch_size, progress=tick
                )
            except DlqError as exc:
                raise CliError(str(exc)) from None
    if args.json:
        print_json(where | report.to_json())
    else:
        _render_report(report, where["queue"])
    return 0 if report.ok else 1


def _render_report(report: ResubmitReport, queue: str) -> None:
    """The summary, then the messages (dry run) or those not resubmitted, each stacked under its seq:N."""
    console = make_console()
    counts = report.counts()
    if not report.items:
        console.print(f"nothing to resubmit in the DLQ of {queue}")
        return
    title = f"{'dry run: ' if report.dry_run else ''}resubmit to {queue}"
    summary = compact_table(title)
    summary.add_column("status")
    summary.add_column("messages", justify="right")
    for status in ("resubmitted", "would-resubmit", "skipped", "failed", "not-found"):
        if counts.get(status):
            summary.add_row(status, str(counts[status]))
    summary.add_row("selected", str(len(report.items)), style="bold")
    console.print(summary)
    shown = report.items if report.dry_run else [i for i in report.items if i.status != "resubmitted"]
    if shown:
        title = "messages" if report.dry_run else "not resubmitted (still in the DLQ)"
        console.print(title, style="bold")
        for i in shown:  # stacked: old and new ids, session, reason and status whole at 80 columns
            lines = [
                i.message_id or "(no message id)",
                f"new id {i.resubmit_message_id}",
                f"session {i.session_id or '-'}",
                i.reason,
                i.status + (f": {i.detail}" if i.detail else ""),
            ]
            print_block(console, f"  seq:{i.sequence_number}", lines)


@contextmanager
def _progress(total: int, enabled: bool, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (terminal only); otherwise a no-op."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
