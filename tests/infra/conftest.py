"""Fixtures for the offline infra tests: parsed Bicep modules and the app's own configuration."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra import bicep_rules as rules


@pytest.fixture(scope="session")
def bicep() -> dict[str, dict[str, Any]]:
    """Every .bicep file under infra/, parsed, keyed by file name (main.bicep, servicebus.bicep, ...)."""
    return {path.name: rules.parse_file(path) for path in sorted(rules.INFRA.rglob("*.bicep"))}


@pytest.fixture(scope="session")
def host_json() -> dict[str, Any]:
    return rules.load_host_json()


@pytest.fixture(scope="session")
def local_settings() -> dict[str, str]:
    return rules.load_local_settings_example()
