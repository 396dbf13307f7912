"""The shared conformance scenarios through a third client stack: azure-servicebus on uamqp, over TLS.

uamqp (the C stack, azure-uamqp-c) decodes every performative and management reply against the AMQP
type system strictly, and it speaks only amqps, so this run goes through the emulator's TLS listener
(`tls_port`, certificate made at start). One side-venv process runs every scenario in order; each
scenario gets its own pytest result, like the Node run (test_conformance_node.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.emulator.server import EmulatorServer
from tests.emulator.scenarios import BY_ID, applicable, create_entities
from tests.emulator.test_conformance_python import IMPLEMENTATIONS
from tests.fixtures.python_amqp_clients import (  # noqa: F401 - fixture
    INSTALL_TIMEOUT_S,
    PythonAmqpClients,
    python_amqp_clients,
)
from tests.fixtures.servicebus_emulator import CONFIG_PATH, ServiceBusEmulator

MODULE = "tests.emulator.side_clients.uamqp_conformance"
RUN_TIMEOUT_S = 900
# the first test's setup may build the side venv, and one fixture runs every scenario
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + RUN_TIMEOUT_S + 60)


@pytest.fixture(scope="module")
def tls_emulator() -> Iterator[ServiceBusEmulator]:
    """An emulator with a TLS listener (any free port) next to its plain one."""
    server = EmulatorServer(CONFIG_PATH, host="127.0.0.1", port=0, tls_port=0)
    server.start()
    try:
        yield ServiceBusEmulator(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def uamqp_results(
    tls_emulator: ServiceBusEmulator,
    python_amqp_clients: PythonAmqpClients,  # noqa: F811
    tmp_path_factory: Any,
) -> dict[str, Any]:
    """Run every Python scenario once through uamqp; id -> {"ok", "error", "ms"} (plus "_client")."""
    created: list[str] = []
    plan = []
    for sid in applicable("uamqp"):
        names = create_entities(tls_emulator, BY_ID[sid])
        created += names.values()
        plan.append({"id": sid, "entities": names})
    server = tls_emulator.server
    config = tmp_path_factory.mktemp("uamqp-conformance") / "config.json"
    config.write_text(
        json.dumps(
            {
                "connectionString": server.tls_connection_string,
                "clientOptions": server.tls_client_options(),
                "scenarios": plan,
            }
        )
    )
    try:
        return python_amqp_clients.run_conformance(MODULE, config, RUN_TIMEOUT_S)
    finally:
        for name in created:
            tls_emulator.delete_queue(name)


@pytest.mark.parametrize("scenario_id", applicable("uamqp"))
def test_scenario(scenario_id: str, uamqp_results: dict[str, Any]) -> None:
    result = uamqp_results.get(scenario_id)
    assert result is not None, f"the uamqp run reported nothing for {scenario_id}"
    client = uamqp_results["_client"]
    assert result["ok"], f"azure-servicebus {client['version']} on uamqp {client['uamqp']}: {result['error']}"


def test_runs_the_python_implementations(python_amqp_clients: PythonAmqpClients) -> None:  # noqa: F811
    assert python_amqp_clients.listed(MODULE) == sorted(IMPLEMENTATIONS)
    assert set(applicable("uamqp")) <= set(applicable("python")), "uamqp reuses the Python implementations"
    assert python_amqp_clients.version("uamqp").startswith("1.6.")
