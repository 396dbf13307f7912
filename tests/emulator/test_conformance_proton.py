"""Raw AMQP 1.0 conformance through Apache Qpid Proton (python-qpid-proton 0.40, no Service Bus SDK).

The checks live in tests/emulator/side_clients/proton_conformance.py and run in the side venv
(python-qpid-proton 0.40 is published as a source distribution only; tests/fixtures/python_amqp_clients.py
builds it once). One process runs every check; each gets its own pytest result here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.python_amqp_clients import (  # noqa: F401 - fixture
    INSTALL_TIMEOUT_S,
    PythonAmqpClients,
    python_amqp_clients,
)

MODULE = "tests.emulator.side_clients.proton_conformance"
RUN_TIMEOUT_S = 300
# the first test's setup may build the side venv, and one fixture runs every check
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + RUN_TIMEOUT_S + 60)

# check id -> (what it shows, whether it needs a session-enabled queue)
CHECKS: dict[str, tuple[str, bool]] = {
    "settle-modes": (
        "attach reply echoes the requested settle modes; pre-settled and unsettled sends",
        False,
    ),
    "outcome-accepted": ("accepted completes the message", False),
    "outcome-released": ("released unlocks without counting a delivery", False),
    "outcome-modified": ("modified abandons (count +1); with undeliverable-here it defers", False),
    "outcome-rejected": ("rejected dead-letters with the error's condition and description", False),
    "credit-and-drain": ("no delivery without credit; drain delivers what there is and zeroes credit", False),
    "multi-frame-transfer": ("a 200 KiB message over 4 KiB frames, both directions", False),
    "session-filter": ("com.microsoft:session-filter by id and next-available, named in the reply", True),
    "message-annotations": ("client annotations and typed properties kept; broker annotations typed", False),
}


@pytest.fixture(scope="module")
def proton_results(
    servicebus_emulator: Any,
    python_amqp_clients: PythonAmqpClients,  # noqa: F811
    tmp_path_factory: Any,
) -> dict[str, Any]:
    """Run every check once; id -> {"ok", "error", "ms"} (plus "_client")."""
    plan = [
        {"id": cid, "queue": servicebus_emulator.make_queue(requires_session=sessions, lock_duration=30.0)}
        for cid, (_, sessions) in CHECKS.items()
    ]
    config = tmp_path_factory.mktemp("proton-conformance") / "config.json"
    url = f"amqp://{servicebus_emulator.host}:{servicebus_emulator.port}"
    config.write_text(json.dumps({"url": url, "checks": plan}))
    try:
        return python_amqp_clients.run_conformance(MODULE, config, RUN_TIMEOUT_S)
    finally:
        for item in plan:
            servicebus_emulator.delete_queue(item["queue"])


@pytest.mark.parametrize("check_id", sorted(CHECKS))
def test_check(check_id: str, proton_results: dict[str, Any]) -> None:
    result = proton_results.get(check_id)
    assert result is not None, f"the Proton run reported nothing for {check_id}"
    assert result["ok"], f"python-qpid-proton {proton_results['_client']['version']}: {result['error']}"


def test_the_runner_implements_exactly_these_checks(python_amqp_clients: PythonAmqpClients) -> None:  # noqa: F811
    assert python_amqp_clients.listed(MODULE) == sorted(CHECKS)
    assert python_amqp_clients.version("python-qpid-proton").startswith("0.40.")
