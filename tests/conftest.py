"""Root test configuration: shared fixtures live in tests/fixtures as plugins.

Two suites (docs/adapting.md "Tests"): the **engine** suite, the modules in ENGINE_SUITE, holds for any
workflow and runs with the one ORDERS_WORKFLOW selects (`make test-engine` runs it with accounts); every
other test is marked **orders**: it may assume the order workflow (its contract, traffic, CLI output).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.workflows import WorkflowBinding

pytest_plugins = [
    "tests.fixtures.servicebus_emulator",
    "tests.fixtures.azurite",
    "tests.fixtures.tracing",
]

TESTS = Path(__file__).resolve().parent
# Engine, stores, binding: none of these may assume the order workflow.
ENGINE_SUITE = frozenset(
    {
        "unit/test_engine.py",
        "unit/test_workflow_binding.py",
        "unit/test_publish_jsonl.py",
        "unit/test_store_retry.py",
        "integration/test_store_contract.py",
        "integration/test_store_workflow_record.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            where = item.path.resolve().relative_to(TESTS).as_posix()
        except ValueError:
            continue
        item.add_marker(pytest.mark.engine if where in ENGINE_SUITE else pytest.mark.orders)


@pytest.fixture
def selected() -> WorkflowBinding:
    """The workflow binding ORDERS_WORKFLOW selects (default orders): what the engine suite runs with."""
    from shared.workflows import selected_binding

    return selected_binding(os.environ)
