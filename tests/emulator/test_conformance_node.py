"""The shared conformance scenarios through the official Node client, and the two-client coverage check.

One Node process runs every scenario in order (its start-up and the SDK's import cost ~1 s, paid once);
each scenario then gets its own pytest result, so a failure names the scenario and the client.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.scenarios import BY_ID, CLIENTS, SCENARIOS, applicable, create_entities
from tests.emulator.test_conformance_python import IMPLEMENTATIONS
from tests.fixtures.node_servicebus import NodeServiceBus, node_servicebus  # noqa: F401 - fixture

SCRIPT = Path(__file__).parent / "node" / "conformance.cjs"
RUN_TIMEOUT_S = 600


def _node_implemented(node: NodeServiceBus) -> list[str]:
    out = subprocess.run(
        [node.node, str(SCRIPT), "--list"],
        env=node.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ids: list[str] = json.loads(out.stdout)
    return ids


@pytest.fixture(scope="module")
def node_results(
    servicebus_emulator: Any,
    node_servicebus: NodeServiceBus,  # noqa: F811
    tmp_path_factory: Any,
) -> dict[str, Any]:
    """Run every Node-applicable scenario once; id -> {"ok", "error", "ms"} (plus "_client")."""
    created: list[str] = []
    plan = []
    for sid in applicable("node"):
        names = create_entities(servicebus_emulator, BY_ID[sid])
        created += names.values()
        plan.append({"id": sid, "entities": names})
    config = tmp_path_factory.mktemp("node-conformance") / "config.json"
    conn = servicebus_emulator.connection_string
    config.write_text(json.dumps({"connectionString": conn, "scenarios": plan}))
    try:
        proc = subprocess.run(
            [node_servicebus.node, str(SCRIPT), str(config)],
            env=node_servicebus.env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    finally:
        for name in created:
            servicebus_emulator.delete_queue(name)
    results: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        if "client" in item:
            results["_client"] = item
        else:
            results[item["id"]] = item
    if proc.returncode != 0:
        pytest.fail(f"node conformance run exited {proc.returncode}:\n{proc.stderr[-3000:]}", pytrace=False)
    return results


@pytest.mark.parametrize("scenario_id", applicable("node"))
def test_scenario(scenario_id: str, node_results: dict[str, Any]) -> None:
    result = node_results.get(scenario_id)
    assert result is not None, f"the Node run reported nothing for {scenario_id}"
    assert result["ok"], f"@azure/service-bus {node_results['_client']['version']}: {result['error']}"


def test_both_clients_cover_exactly_the_scenario_list(node_servicebus: NodeServiceBus) -> None:  # noqa: F811
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS), "duplicate scenario id"
    for s in SCENARIOS:
        assert set(s.not_applicable) <= set(CLIENTS), s.id
    assert sorted(IMPLEMENTATIONS) == sorted(applicable("python"))
    assert sorted(_node_implemented(node_servicebus)) == sorted(applicable("node"))
