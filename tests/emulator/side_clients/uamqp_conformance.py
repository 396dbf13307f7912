"""Run the shared conformance scenarios through azure-servicebus on its uamqp transport (side venv).

Started by tests/emulator/test_conformance_uamqp.py with the side venv's interpreter
(tests/fixtures/python_amqp_clients.py). The scenario code is the Python implementation in
tests/emulator/test_conformance_python.py, unchanged: only the client keywords differ
(`uamqp_transport=True`, the emulator's TLS endpoint and its CA file), so the two Python runs check the
same behaviour through two independent AMQP stacks.

Usage: python -m tests.emulator.side_clients.uamqp_conformance CONFIG.json | --list
CONFIG: {"connectionString", "clientOptions": {...}, "scenarios": [{"id", "entities"}]}.
Prints one JSON line per scenario: {"id", "ok", "error", "ms"}, after a {"client": ...} line.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from importlib.metadata import version
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the scenarios named in the config file; exit 0 when the run itself worked."""
    from tests.emulator import test_conformance_python as impl

    if argv and argv[0] == "--list":
        print(json.dumps(sorted(impl.IMPLEMENTATIONS)))
        return 0
    config = json.loads(Path(argv[0]).read_text())
    from azure.servicebus import TransportType

    # custom_endpoint_address alone switches the SDK to AMQP over WebSockets; the listener is plain amqps
    impl.CLIENT_OPTIONS.update(
        config["clientOptions"], uamqp_transport=True, transport_type=TransportType.Amqp
    )
    print(
        json.dumps(
            {
                "client": "azure-servicebus+uamqp",
                "version": version("azure-servicebus"),
                "uamqp": version("uamqp"),
            }
        ),
        flush=True,
    )
    for item in config["scenarios"]:
        started = time.monotonic()
        try:
            impl.IMPLEMENTATIONS[item["id"]](config["connectionString"], item["entities"])
            ok, error = True, None
        except BaseException as exc:  # report every failure (pytest.raises failures are BaseException)
            ok = False
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2500:]}"
        ms = round((time.monotonic() - started) * 1000)
        print(json.dumps({"id": item["id"], "ok": ok, "error": error, "ms": ms}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
