"""`orders publish` and scripts/publish_orders.py: flags -> a traffic plan -> the sender, and the summary.

A run remembers the message ids it sent (.local/publish-history.json) and warns when a new run repeats
ids the queue saw within its duplicate-detection window (the broker drops those without an error).
Only argparse and the settings are imported at module level (the `orders` parser is built from this);
the generator, the SDK and rich are imported when a run needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orders_cli.console import OneLineArgumentParser, add_servicebus_target, guarded

if TYPE_CHECKING:
    from collections.abc import Sequence

    from orders_cli.sender import SendFn
    from orders_cli.traffic import OutgoingMessage, PublishPlan

# The queue's duplicateDetectionHistoryTimeWindow (infra/modules/servicebus.bicep and
# dev/servicebus/Config.json): a message id seen within it is dropped by the broker without an error.
DUPLICATE_WINDOW = timedelta(minutes=10)
HISTORY_PATH = Path(".local") / "publish-history.json"  # relative to where `orders publish` runs
# The PublishPlan fields that are flags of the same name (--orders-per-customer -> orders_per_customer).
PLAN_FLAGS = ("customers", "orders_per_customer", "cancel_rate", "duplicates", "shuffle", "poison", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--customers", type=int, default=3, metavar="N", help="customers = sessions (default 3)"
    )
    parser.add_argument("--orders-per-customer", type=int, default=2, metavar="M", help="default 2")
    parser.add_argument("--cancel-rate", type=float, default=0.0, metavar="F", help="0..1 (default 0)")
    parser.add_argument(
        "--duplicates", type=float, default=0.0, metavar="F",
        help="fraction of step messages re-sent with the same body and a new message id (default 0)",
    )  # fmt: skip
    parser.add_argument("--shuffle", action="store_true", help="shuffle messages within each session")
    parser.add_argument("--poison", type=int, default=0, metavar="K", help="poison messages (default 0)")
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    prefix = parser.add_mutually_exclusive_group()
    prefix.add_argument("--id-prefix", default="", metavar="P", help="prefix for customer and order ids")
    prefix.add_argument(
        "--run-id", metavar="R",
        help="a fresh set of ids for this run: R, or 'auto' for the time (r-HHMMSS), as the id prefix",
    )  # fmt: skip
    add_servicebus_target(parser)
    parser.add_argument("--batch-size", type=int, default=100, metavar="B", help="messages per batch")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the messages as JSON lines, send nothing"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--jsonl", metavar="FILE",
        help="publish the messages in FILE ('-': stdin), one JSON object per line (session_id, message_id, "
        "body), for any workflow, instead of generating order steps",
    )  # fmt: skip
    generator = (*PLAN_FLAGS, "id_prefix", "run_id")
    parser.set_defaults(generator_defaults={name: parser.get_default(name) for name in generator})


def run_id_prefix(value: str | None, now: datetime | None = None) -> str:
    """`--run-id`: 'auto' -> `r-HHMMSS` (UTC), anything else as given (checked by PublishPlan.validate)."""
    if not value:
        return ""
    if value.strip().lower() == "auto":
        return "r-" + (now or datetime.now(UTC)).strftime("%H%M%S")
    return value.strip()


def plan_from_args(args: argparse.Namespace) -> PublishPlan:
    from orders_cli.traffic import PublishPlan, PublishUsageError

    run_id = getattr(args, "run_id", None)
    if run_id is not None and not run_id.strip():
        raise PublishUsageError("--run-id must not be empty")
    chosen = {name: getattr(args, name) for name in PLAN_FLAGS}
    plan = PublishPlan(**chosen, id_prefix=run_id_prefix(run_id) or args.id_prefix)
    plan.validate()
    if args.batch_size < 1:
        raise PublishUsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    return plan


@dataclass(frozen=True, slots=True)
class WindowOverlap:
    """Message ids of this run that the queue saw within its duplicate-detection window."""

    count: int
    last_sent: datetime


def _target_key(queue: str, connection: str | None, namespace: str | None) -> str:
    from orders_cli.sender import endpoint_of

    return f"{endpoint_of(connection) if connection else namespace}/{queue}"


def _load_history(path: Path, now: datetime) -> list[dict[str, Any]]:
    """Earlier runs still inside the window; an unreadable file counts as none (it is only a hint)."""
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    fresh = []
    for entry in runs if isinstance(runs, list) else []:
        try:
            sent = datetime.fromisoformat(entry["sent_at"])
        except (KeyError, TypeError, ValueError):
            continue
        if now - sent < DUPLICATE_WINDOW:
            fresh.append(entry)
    return fresh


def window_overlap(
    messages: Sequence[OutgoingMessage], target: str, *, now: datetime, path: Path = HISTORY_PATH
) -> WindowOverlap | None:
    """How many of these message ids this machine sent to `target` within DUPLICATE_WINDOW, if any."""
    ids = {m.message_id for m in messages}
    seen: set[str] = set()
    last: datetime | None = None
    for entry in _load_history(path, now):
        if entry.get("target") != target:
            continue
        hit = ids.intersection(entry.get("message_ids") or ())
        if hit:
            seen |= hit
            sent = datetime.fromisoformat(entry["sent_at"])
            last = sent if last is None or sent > last else last
    return WindowOverlap(len(seen), last) if seen and last is not None else None


def remember_sent(
    messages: Sequence[OutgoingMessage], target: str, *, now: datetime, path: Path = HISTORY_PATH
) -> None:
    """Record this run's ids (the window's worth of runs is kept) so the next run can warn."""
    runs = _load_history(path, now)
    runs.append(
        {"target": target, "sent_at": now.isoformat(), "message_ids": [m.message_id for m in messages]}
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(runs), encoding="utf-8")
    except OSError:
        pass  # a hint only: never fail a publish for it


def _warn_overlap(
    overlap: WindowOverlap,
    total: int,
    target: str,
    now: datetime,
    advice: str = "For new orders add --run-id auto (or --id-prefix P).",
) -> None:
    minutes = max(0, int((now - overlap.last_sent).total_seconds() // 60))
    ago = "less than a minute ago" if minutes == 0 else f"{minutes} min ago"
    sys.stderr.write(
        f"warning: {overlap.count} of these {total} message ids were sent to {target} {ago}; the queue's "
        f"duplicate detection ({int(DUPLICATE_WINDOW.total_seconds() // 60)} min) drops them without an "
        f"error, so the app will not see them. {advice}\n"
    )
    sys.stderr.flush()


@dataclass(frozen=True)
class Sent:
    """What one publish sent: the sender's summary, and the ids the queue had seen within its window."""

    summary: Any
    overlap: WindowOverlap | None


def _print_or_send(
    args: argparse.Namespace, messages: list[Any], send: SendFn | None, *, advice: str | None = None
) -> Sent | None:
    """The one send path of `orders publish` (generated or --jsonl): --dry-run prints the messages as JSON
    lines (None); otherwise the target is resolved, a resend inside the queue's duplicate-detection window
    is warned about, the messages are sent (progress bar unless --json / --no-progress) and remembered."""
    from orders_cli import sender
    from shared.settings import merged_environment

    if args.dry_run:
        for m in messages:
            sys.stdout.write(json.dumps(m.to_json()) + "\n")
        return None
    connection, namespace, queue = sender.resolve_target(
        merged_environment(), connection=args.connection, namespace=args.namespace, queue=args.queue
    )
    target = _target_key(queue, connection, namespace)
    now = datetime.now(UTC)
    overlap = window_overlap(messages, target, now=now) if (connection or namespace) else None
    if overlap is not None:
        if advice is None:
            _warn_overlap(overlap, len(messages), target, now)
        else:
            _warn_overlap(overlap, len(messages), target, now, advice=advice)
    summary = (send or sender.send_messages)(
        messages,
        connection_string=connection,
        namespace=namespace,
        queue=queue,
        batch_size=args.batch_size,
        progress=not (args.no_progress or args.json),
    )
    remember_sent(messages, target, now=now)
    return Sent(summary, overlap)


def _print_summary(
    sent: Sent,
    *,
    json_extra: dict[str, Any] | None,
    head: Sequence[tuple[str, str]] = (),
    body: Sequence[tuple[str, str]] = (),
    tail: Sequence[tuple[str, str]] = (),
) -> None:
    """The summary: one JSON document (`json_extra` merged in) when it is given, else a table: `head`, the
    sent count and window overlap, `body`, the send figures, `tail`."""
    summary, overlap = sent.summary, sent.overlap
    if json_extra is not None:
        doc = summary.to_json() | {"recently_sent_ids": overlap.count if overlap else 0} | json_extra
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"published to {summary.queue} @ {summary.endpoint}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [*head, ("messages sent", str(summary.sent))]
    if overlap is not None:
        rows.append(("  already sent < 10 min ago", f"{overlap.count} (dropped by the queue)"))
    rows += [
        *body,
        ("batches", str(summary.batches)),
        ("retries", str(summary.retries)),
        ("elapsed", f"{summary.elapsed_s:.2f} s"),
        ("rate", f"{summary.messages_per_second} msg/s"),
        *tail,
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(file=sys.stdout).print(table)


def run(args: argparse.Namespace, *, send: SendFn | None = None) -> int:
    from orders_cli import traffic

    if getattr(args, "jsonl", None):
        return run_jsonl(args, send=send)
    plan = plan_from_args(args)
    messages = traffic.generate_messages(plan)
    sent = _print_or_send(args, messages, send)
    if sent is None:
        return 0
    outcomes = traffic.expected_outcomes(messages)
    _print_summary(
        sent,
        json_extra={"plan": asdict(plan), "expected_outcomes": outcomes} if args.json else None,
        head=[("id prefix (run id)", plan.id_prefix)] if plan.id_prefix else [],
        body=[
            *((f"  {kind}", str(count)) for kind, count in sorted(sent.summary.by_kind.items())),
            ("sessions (customers)", str(plan.customers)),
            ("orders", str(len(traffic.expected_final_state(messages)))),
        ],
        tail=[(f"expected {outcome}", str(count)) for outcome, count in outcomes.items()],
    )
    return 0


def run_jsonl(args: argparse.Namespace, *, send: SendFn | None = None) -> int:
    """`--jsonl FILE`: the file's messages (orders_cli/publish_jsonl.py), sent like generated ones: same
    sender, progress bar, duplicate-window warning and history."""
    from orders_cli import sender
    from orders_cli.publish_jsonl import read_jsonl, summary_rows
    from orders_cli.traffic import PublishUsageError
    from shared.settings import AppSettings, SettingsError

    defaults = getattr(args, "generator_defaults", {})
    changed = [
        f"--{name.replace('_', '-')}" for name, value in defaults.items() if getattr(args, name) != value
    ]
    if changed:
        raise PublishUsageError(
            f"--jsonl publishes the file as it is: {', '.join(changed)} do not apply to it"
        )
    if args.batch_size < 1:
        raise PublishUsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    try:
        binding = AppSettings.load().binding()
    except SettingsError as exc:
        raise sender.PublishError(str(exc)) from None
    read = read_jsonl(args.jsonl, binding)
    sent = _print_or_send(args, read.messages, send, advice="Give them new message_id values to resend.")
    if sent is None:
        return 0
    rows = summary_rows(read.messages, read.derived_ids)
    json_extra = (
        {"file": args.jsonl, **{name.replace(" ", "_"): int(value) for name, value in rows}}
        if args.json
        else None
    )
    _print_summary(sent, json_extra=json_extra, body=rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    """scripts/publish_orders.py"""
    parser = OneLineArgumentParser(prog="publish_orders.py", description="Publish test order-step messages.")
    add_arguments(parser)
    return guarded(lambda: run(parser.parse_args(argv)), prog="publish_orders.py")
