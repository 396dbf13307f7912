"""`orders why ORDER_ID`: one order's story, what it waits for, and the next command for each problem;
and the stuck-order flags of `orders status`. The use cases are shared/story.py's; this is the glue.

The store is read as for `orders status` (--store or OrderStoreConnection); the dead-letter queue is peeked
as for `orders dlq list` (--queue, --namespace | --connection or the ServiceBusConnection settings). When
the broker cannot be reached the story is told from the store alone and says the DLQ was not checked.
Only argparse is imported at import time.
"""

from __future__ import annotations

import argparse
import shlex
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orders_cli.console import (
    COMMAND_WIDTH,
    CliError,
    add_servicebus_target,
    command_lines,
    compact_table,
    id_column,
    make_console,
    print_command,
    print_json,
    safe,
)

if TYPE_CHECKING:
    from shared.store.base import OrderStore
    from shared.story import Story


def add_parser(sub: Any, store_opts: argparse.ArgumentParser, open_store: Any) -> None:
    """Register `why` on the `orders` subparsers; `open_store(args)` is orders_cli.cli.open_store_from."""
    p = sub.add_parser(
        "why",
        parents=[store_opts],
        help="one order's story: applied, parked, quarantined, dead-lettered, and what to do next",
    )
    p.add_argument("order_id", metavar="ORDER_ID", help="the order (stream) id")
    p.add_argument(
        "--customer", metavar="C", help="the customer (session) id: needed when two customers use ORDER_ID"
    )
    add_stuck_after(p)
    add_servicebus_target(p)
    p.add_argument("--no-dlq", action="store_true", help="do not peek the dead-letter queue")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=lambda args: run(args, open_store))


def add_stuck_after(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stuck-after",
        metavar="MINUTES",
        help="parked steps older than this are stuck (default: ORDERS_STUCK_AFTER_MINUTES or 15)",
    )


def stuck_after(args: argparse.Namespace) -> timedelta:
    """--stuck-after, else the ORDERS_STUCK_AFTER_MINUTES setting, else 15 minutes."""
    from shared.settings import AppSettings, SettingsError
    from shared.settings import stuck_after_minutes as parse

    flag = getattr(args, "stuck_after", None)
    if flag is not None:
        try:
            return timedelta(minutes=parse(flag, "--stuck-after"))
        except SettingsError as exc:
            raise CliError(str(exc), exit_code=2) from None
    return timedelta(minutes=AppSettings.load().stuck_after_minutes)


def store_flag(args: argparse.Namespace) -> str:
    store = getattr(args, "store", None)
    return f" --store {shlex.quote(store)}" if store else ""


def target_flags(args: argparse.Namespace) -> str:
    """The --queue/--namespace the command was given, so a printed `orders dlq ...` reads the same queue
    (a --connection is a secret: never printed; pass it again, as for `orders dlq list`'s hint)."""
    flags = ""
    for name in ("queue", "namespace"):
        value = getattr(args, name, None)
        if value:
            flags += f" --{name} {shlex.quote(value)}"
    return flags


# --------------------------------------------------------------------------------------------------
# orders status: stuck orders


def stuck_section(args: argparse.Namespace, store: OrderStore[Any]) -> dict[str, Any]:
    """`stuck` of `orders status --json`: the orders with parked steps, stuck ones flagged."""
    from shared.story import stuck_report

    return stuck_report(
        store,
        now=datetime.now(UTC),
        stuck_after=stuck_after(args),
        session_id=getattr(args, "customer", None),
    )


def render_stuck(section: dict[str, Any], *, store_flag: str = "") -> None:
    """The orders waiting for a missing step; 80 columns, ids whole; a `why` command for the oldest."""
    waiting = section["waiting"]
    if not waiting:
        return
    console = make_console()
    minutes = f"{section['stuck_after_minutes']:g}"
    title = f"orders waiting for a step ({section['stuck']} stuck: parked > {minutes} min)"
    table = compact_table(title)
    id_column(table, "customer")
    id_column(table, "order")
    table.add_column("waits for", no_wrap=True)
    table.add_column("parked")
    table.add_column("since (UTC)", no_wrap=True)
    table.add_column("", no_wrap=True)
    for w in waiting:
        since = datetime.fromisoformat(w["parked_since"])
        table.add_row(
            safe(w["session_id"]),
            safe(w["stream_key"]),
            f"seq {w['waiting_for_sequence']}",
            ",".join(str(s) for s in w["parked_sequences"]),
            f"{since:%H:%M} ({_age(w['parked_for_s'])})",
            "STUCK" if w["stuck"] else "",
        )
    console.print(table)
    first = next((w for w in waiting if w["stuck"]), waiting[0])
    command = (
        f"orders why {shlex.quote(first['stream_key'])} --customer {shlex.quote(first['session_id'])}"
        f"{store_flag}"
    )
    print_command(console, "see why with" if first["stuck"] else "see one with", command)


# --------------------------------------------------------------------------------------------------
# orders why


def run(args: argparse.Namespace, open_store: Any) -> int:
    """`orders why`: `open_store(args)` is orders_cli.cli.open_store_from (passed in: no import cycle)."""
    import re

    from shared.contract import ID_PATTERN

    for value, what in ((args.order_id, "ORDER_ID"), (args.customer, "--customer")):
        if value is not None and not re.fullmatch(ID_PATTERN, value):
            raise CliError(f"{what} must match {ID_PATTERN}", exit_code=2)
    threshold = stuck_after(args)
    letters, dlq = ([], {"checked": False, "error": "--no-dlq"}) if args.no_dlq else _peek_dlq(args)
    store = open_store(args)
    try:
        return _tell(args, store, letters, dlq, threshold)
    finally:
        store.close()


def _peek_dlq(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """Every dead-lettered message (peeked: nothing locked), or none and why not."""
    from orders_cli import dlq as dlq_cli
    from shared.dlq import peek_all

    try:
        with dlq_cli.connect(args) as dlq:
            letters = peek_all(dlq)
            where = {"queue": dlq.queue, "endpoint": getattr(dlq, "endpoint", None)}
    except CliError as exc:
        return [], {"checked": False, "error": str(exc)}
    except Exception as exc:  # the SDK's errors: the story is still told from the store
        from orders_cli.console import describe

        return [], {"checked": False, "error": f"cannot read the dead-letter queue: {describe(exc)}"}
    return letters, {"checked": True, "error": None, **where, "total": len(letters)}


def _tell(
    args: argparse.Namespace,
    store: OrderStore[Any],
    letters: list[Any],
    dlq: dict[str, Any],
    threshold: timedelta,
) -> int:
    from shared.order_workflow import ORDERS
    from shared.story import sessions_of, story

    sessions = [args.customer] if args.customer else sessions_of(store, args.order_id, letters, ORDERS)
    searched = getattr(args, "store_label", None) or "the order store"
    if not sessions:
        where = " or the dead-letter queue" if dlq["checked"] else ""
        raise CliError(
            f"no order {safe(args.order_id)!r} in {searched}{where} (ids: orders status{store_flag(args)})"
        )
    if len(sessions) > 1:
        names = ", ".join(sessions)
        raise CliError(f"order {args.order_id} exists for customers {names}: add --customer C", exit_code=2)
    found = story(
        store,
        ORDERS,
        sessions[0],
        args.order_id,
        dead_letters=letters,
        now=datetime.now(UTC),
        stuck_after=threshold,
    )
    if found is None:
        raise CliError(f"no order {safe(args.order_id)!r} of customer {sessions[0]} in {searched}")
    problems = next_steps(found, dlq, args)
    if args.json:
        print_json(
            found.to_json()
            | {
                "customer_id": found.session_id,
                "order_id": found.stream_key,
                "stuck_after_minutes": round(threshold.total_seconds() / 60),
                "dead_letter_queue": dlq,
                "problems": problems,
            }
        )
        return 0
    render_story(found, problems, dlq)
    return 0


def next_steps(s: Story, dlq: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each problem the story shows, with the next command to run (None when no command helps)."""
    store, target = store_flag(args), target_flags(args)
    problems: list[dict[str, Any]] = []
    handled_quarantine: set[str] = set()
    handled_letters: set[int] = set()
    if s.waiting is not None:
        w, missing = s.waiting, s.waiting.waiting_for
        n = len(w.parked)
        state = "stuck" if w.stuck else "waiting"
        head = (
            f"{state}: sequence {missing} missing since {w.since:%H:%M} UTC ({_age(w.age_s)} ago), "
            f"{n} step{'s' if n != 1 else ''} parked ({', '.join(str(x) for x in w.parked)})"
        )
        record = next((q for q in s.open_quarantine if q.sequence == missing), None)
        letter = next((m for m in s.dead_letters if _sequence(s, m) == missing), None)
        if record is not None:
            handled_quarantine.add(record.id)
            problems.append(
                {
                    "problem": f"{head}; sequence {missing} was quarantined ({record.reason}): look at it, "
                    "then replay it (corrected with --body-file if the data was wrong)",
                    "command": f"orders quarantine show {record.id}{store}",
                }
            )
        elif letter is not None:
            handled_letters.add(letter.sequence_number)
            problems.append(
                {
                    "problem": f"{head}; sequence {missing} is in the dead-letter queue ({letter.reason}): "
                    "look at it, then resubmit it",
                    "command": f"orders dlq show seq:{letter.sequence_number}{target}",
                }
            )
        elif not dlq["checked"]:
            problems.append(
                {
                    "problem": f"{head}; sequence {missing} is not in the store; the dead-letter queue was "
                    f"not checked ({dlq['error']})",
                    "command": f"orders dlq list{target}",
                }
            )
        else:
            problems.append(
                {
                    "problem": f"{head}; sequence {missing} is not in the store, the quarantine or the "
                    "dead-letter queue: it was never sent, or still waits in the queue (is the host "
                    "running?). The producer must send it (message id "
                    f"{s.stream_key}:{missing})",
                    "command": None,
                }
            )
    for q in s.open_quarantine:
        if q.id in handled_quarantine:
            continue
        seq = "" if q.sequence is None else f"sequence {q.sequence} "
        problems.append(
            {
                "problem": f"{seq}quarantined ({q.reason}: {q.detail}); look at it, then replay it "
                "(corrected with --body-file if the data was wrong)",
                "command": f"orders quarantine show {q.id}{store}",
            }
        )
    for m in s.dead_letters:
        if m.sequence_number in handled_letters:
            continue
        number = _sequence(s, m)
        what = f"sequence {number} " if number is not None else ""
        problems.append(
            {
                "problem": f"{what}dead-lettered ({m.reason}); look at it, then resubmit it",
                "command": f"orders dlq show seq:{m.sequence_number}{target}",
            }
        )
    return problems


def _sequence(s: Story, letter: Any) -> int | None:
    ref = f"seq:{letter.sequence_number}"
    return next((e.sequence for e in s.events if e.kind == "dead-lettered" and e.ref == ref), None)


def render_story(s: Story, problems: list[dict[str, Any]], dlq: dict[str, Any]) -> None:
    """The story for a person: 80 columns, ids whole, commands stacked rather than wrapped."""
    console = make_console()
    state = s.status or "nothing applied"
    _say(
        console,
        f"order {safe(s.stream_key)} of customer {safe(s.session_id)}: {state}, "
        f"last sequence applied {s.last_sequence}",
    )
    table = compact_table("what happened (UTC)", pad_edge=False)
    table.add_column("time", no_wrap=True)
    table.add_column("what", no_wrap=True)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("step")
    table.add_column("reason, id", overflow="fold")  # wrapped at spaces; folded, never cut, if too long
    days = {e.at.date() for e in s.events if e.at}
    fmt = "%H:%M:%S" if len(days) <= 1 else "%m-%d %H:%M"
    for e in s.events:
        note = " ".join(safe(x) for x in (e.reason, e.ref if e.kind != "applied" else None) if x)
        if e.kind == "quarantined" and e.status == "replayed":
            note += " (replayed)"
        table.add_row(
            e.at.strftime(fmt) if e.at else "-",
            _KIND_LABELS.get(e.kind, e.kind),
            "-" if e.sequence is None else str(e.sequence),
            safe(e.step or "-"),
            note or "",
        )
    console.print(table)
    if not dlq["checked"]:
        _say(console, f"dead-letter queue not checked: {dlq['error']}")
    else:
        mine = len(s.dead_letters)
        _say(
            console,
            f"dead-letter queue of {dlq['queue']} at {dlq['endpoint']}: {dlq['total']} messages, "
            f"{mine} of this order",
        )
    if not problems:
        _say(console, "nothing to do: no step is missing, quarantined or dead-lettered")
        return
    console.print("to do", style="bold")
    for i, p in enumerate(problems, start=1):
        _say(console, p["problem"], first=f"{i}. ", rest="   ")
        if p["command"]:
            for line in command_lines(p["command"], indent="   $ "):
                console.print(line, markup=False, highlight=False, soft_wrap=True)


_KIND_LABELS = {"dead-lettered": "in DLQ"}  # the table's label; JSON keeps the kind


def _say(console: Any, text: str, *, first: str = "", rest: str = "") -> None:
    """Prose in lines of at most 80 columns, broken between words (an id or a path stays whole)."""
    import textwrap

    lines = textwrap.wrap(
        safe(text), width=COMMAND_WIDTH, initial_indent=first, subsequent_indent=rest,
        break_long_words=False, break_on_hyphens=False,
    )  # fmt: skip
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} d"
