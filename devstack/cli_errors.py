"""One error convention for `orders emulator` and `orders host`, the same as every `orders` subcommand
(docs/cli.md): one line on stderr, `orders: error: ...`, saying what to do; exit 2 when what you gave the
command cannot be used (a bad argument, a file an argument names that is not there, a bad setting, an app
the Python worker will not load: fix it, retrying will not help), 1 for runtime failures (a store or
Service Bus that does not answer, a busy port, an unknown id)."""

from __future__ import annotations

import errno
import sys

PROG = "orders"
USAGE = 2
RUNTIME = 1


def fail(message: str, code: int = RUNTIME) -> int:
    """Print `orders: error: message` (one line) and return `code` for the caller to exit with."""
    text = " ".join(str(message).split()) or "failed"
    sys.stderr.write(f"{PROG}: error: {text}\n")
    sys.stderr.flush()
    return code


def cannot_listen(what: str, address: str, port: int, exc: OSError) -> str:
    """The one message for a port that cannot be bound, for the emulator and the host alike."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {address} is in use (another `{what}` running?): stop it, or pass --port N "
            "(0: any free port)"
        )
    return f"cannot listen on {address}:{port}: {exc.strerror or exc}; pass --port N (0: any free port)"
