"""What every `orders` command shares: one-line errors and exit codes, and output for a person.

Errors are one line on stderr (`orders: error: ...`): exit 2 for usage, 1 for runtime failures. Output
for a person goes through rich (imported when printing); untrusted text passes `safe` first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import IO, Any, NoReturn

from shared.settings import DEFAULT_QUEUE_NAME, QUEUE_NAME_SETTING

PROG = "orders"


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
        print_error(root, message + hint)
        raise SystemExit(2)


def print_error(prog: str, message: str) -> None:
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
        print_error(prog, "interrupted")
        return 130
    except BrokenPipeError:  # `orders status | head`
        return 0
    except Exception as exc:
        from shared.settings import SettingsError

        code = getattr(exc, "exit_code", 2 if isinstance(exc, SettingsError) else 1)
        message = str(exc) if isinstance(exc, CliError) or hasattr(exc, "exit_code") else describe(exc)
        print_error(prog, message)
        return code if isinstance(code, int) and code > 0 else 1


def describe(exc: BaseException) -> str:
    from shared.settings import SettingsError

    if isinstance(exc, SettingsError):
        return f"bad settings: {exc}"
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name}: {text}" if text else name


def make_console(file: IO[str] | None = None) -> Any:
    import os

    from rich.console import Console

    out = file or sys.stdout
    # A terminal (or COLUMNS) sets the width; piped output gets room instead of rich's 80-column default.
    # Tables are laid out to fit 80 columns with every id whole (ids are for copying).
    wide = out.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(file=out, highlight=False, width=None if wide else 200)


def compact_table(title: str, **kwargs: Any) -> Any:
    """A compact table (no vertical rules) so 80 columns hold whole ids."""
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", **kwargs)


def id_column(table: Any, header: str) -> None:
    """A column of ids: never wrapped or cut, so it can be copied."""
    table.add_column(header, no_wrap=True, overflow="ignore")


def for_person(value: Any) -> str:
    """A value for a person: '-' for none, `k=v, ...` for mappings, never a Python repr."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={for_person(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(for_person(v) for v in value)
    return safe(str(value))


def print_json(doc: Any) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def safe(text: str) -> str:
    """Untrusted text for a terminal: control characters (escape sequences!) shown as \\xNN."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)


def add_servicebus_target(parser: argparse.ArgumentParser) -> None:
    """--queue and --namespace | --connection: where `publish`, `quarantine replay` and `dlq` send
    (resolved by orders_cli.sender.resolve_target, the settings filling in what is not given)."""
    parser.add_argument(
        "--queue", metavar="Q", help=f"queue (default: {QUEUE_NAME_SETTING} or {DEFAULT_QUEUE_NAME})"
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--namespace", metavar="FQDN", help="use DefaultAzureCredential against FQDN")
    target.add_argument(
        "--connection", metavar="STR", help="connection string (default: ServiceBusConnection)"
    )


COMMAND_WIDTH = 80  # printed commands fit this, whatever the terminal (docs/cli.md)


def command_lines(command: str, *, width: int = COMMAND_WIDTH, indent: str = "  ") -> list[str]:
    """A command to copy, as lines of at most `width`: split between words with a shell `\\`
    continuation, never inside a word (an id or a path stays whole; one longer than the line gets a
    line of its own). Pasted into a shell, the lines are the one command."""
    words = _units(command.split(" "))
    lines: list[str] = []
    line = indent + words[0]
    more = " " * len(indent) + "    "
    for word in words[1:]:
        if len(line) + 1 + len(word) + 2 <= width:
            line += " " + word
        else:
            lines.append(line + " \\")
            line = more + word
    lines.append(line)
    return lines


def _units(words: list[str]) -> list[str]:
    """Words, with a `--flag` and its value kept together (`--store PATH` is not split)."""
    units: list[str] = []
    for word in words:
        flag = units[-1] if units else ""
        if flag.startswith("--") and " " not in flag and not word.startswith(("-", "|", "(")):
            units[-1] += " " + word
        else:
            units.append(word)
    return units


def print_block(
    console: Any, head: str, lines: list[str], *, width: int = COMMAND_WIDTH, indent: str | None = None
) -> None:
    """One item stacked: `head`, then its lines indented under it, each wrapped between words within
    `width` (an id is never cut; only a word longer than the whole line is folded, every character
    kept). What a table cannot give at 80 columns when ids and reasons are long."""
    import textwrap

    indent = " " * (len(head) + 1) if indent is None else indent
    for number, line in enumerate(lines):
        wrapped = textwrap.wrap(
            safe(line), width=width, initial_indent=(head + " ") if number == 0 else indent,
            subsequent_indent=indent + "  ", break_on_hyphens=False,
        ) or [head]  # fmt: skip
        for text in wrapped:
            console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_command(console: Any, label: str, command: str, *, width: int = COMMAND_WIDTH) -> None:
    """`label: command` on one line when it fits `width`, else the label, then the command stacked."""
    if len(label) + 2 + len(command) <= width:
        console.print(f"{label}: {command}", markup=False, highlight=False, soft_wrap=True)
        return
    console.print(f"{label}:", markup=False, highlight=False, soft_wrap=True)
    for line in command_lines(command, width=width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
