"""The rules must fail on deliberately broken copies of the modules (proof they detect drift).

Each case copies one real module to a temp dir, breaks one property by text substitution, parses
the copy and expects at least one problem mentioning the broken property. When the checkov venv
(.venv-checkov, created by scripts/ci/infra_checks.sh) exists, the custom checkov policies are
run against broken copies too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra import bicep_rules as rules


def _broken(tmp_path: Path, module: str, old: str, new: str) -> Path:
    """Replace ``old`` in the module's code (never in its // comments), exactly once."""
    text = (rules.MODULES / module).read_text()
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if old.strip() in line and not line.lstrip().startswith("//")]
    if "\n" in old:  # multi-line snippet: plain text replacement
        hits = [0] if text.count(old) == 1 else []
        broken = text.replace(old, new)
    else:
        broken = "".join(line.replace(old, new) if i in hits else line for i, line in enumerate(lines))
    assert len(hits) == 1, f"{old!r} must occur exactly once in the code of {module}"
    copy = tmp_path / module
    copy.write_text(broken)
    return copy


CASES = [
    ("servicebus.bicep", "requiresSession: true", "requiresSession: false", "requiresSession"),
    ("servicebus.bicep", "disableLocalAuth: true", "disableLocalAuth: false", "disableLocalAuth"),
    ("servicebus.bicep", "minimumTlsVersion: '1.2'", "minimumTlsVersion: '1.0'", "minimumTlsVersion"),
    ("servicebus.bicep", "maxDeliveryCount: 10", "maxDeliveryCount: 5", "ORDERS_MAX_DELIVERY_COUNT"),
    ("servicebus.bicep", "maxDeliveryCount: 10", "maxDeliveryCount: 6", "outage budget"),
    ("servicebus.bicep", "lockDuration: 'PT1M'", "lockDuration: 'PT5M'", "lockDuration"),
    (
        "servicebus.bicep",
        "defaultMessageTimeToLive: 'P14D'",
        "defaultMessageTimeToLive: 'P30D'",
        "idempotency",
    ),
    (
        "servicebus.bicep",
        "requiresDuplicateDetection: true",
        "requiresDuplicateDetection: false",
        "Duplicate",
    ),
    ("storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true", "allowSharedKeyAccess"),
    ("storage.bicep", "allowBlobPublicAccess: false", "allowBlobPublicAccess: true", "allowBlobPublicAccess"),
    ("storage.bicep", "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'", "minimumTlsVersion"),
    ("monitoring.bicep", "DisableLocalAuth: true", "DisableLocalAuth: false", "DisableLocalAuth"),
    ("functionapp.bicep", "version: '3.13'", "version: '3.11'", "runtime"),
    ("functionapp.bicep", "name: 'FC1'", "name: 'Y1'", "plan sku"),
    (
        "functionapp.bicep",
        "ServiceBusConnection__credential: 'managedidentity'",
        "ServiceBusConnection__credential: 'connectionstring'",
        "ServiceBusConnection__credential",
    ),
    ("functionapp.bicep", "ORDERS_PARK_LIMIT: '50'", "ORDERS_PARK_LIMIT: '5'", "ORDERS_PARK_LIMIT"),
    (
        "functionapp.bicep",
        "ORDERS_STORE_RETRY_SECONDS: string(ordersStoreRetrySeconds)",
        "ORDERS_STORE_RETRY_SECONDS: '600'",
        "ORDERS_STORE_RETRY_SECONDS",
    ),
    (
        "functionapp.bicep",
        "param ordersStoreRetrySeconds int = 420",
        "param ordersStoreRetrySeconds int = 500",
        "does not fit",
    ),
    (
        "functionapp.bicep",
        "param ordersStoreRetrySeconds int = 420",
        "param ordersStoreRetrySeconds int = 300",
        "outage budget",
    ),
    ("functionapp.bicep", "@maxValue(450)", "@maxValue(500)", "@maxValue"),
    (
        "functionapp.bicep",
        "PYTHON_THREADPOOL_THREAD_COUNT: '16'",
        "PYTHON_THREADPOOL_THREAD_COUNT: '6'",
        "PYTHON_THREADPOOL_THREAD_COUNT",
    ),
    (
        "functionapp.bicep",
        "    ORDERS_QUEUE_NAME: ordersQueueName\n",
        "    FUNCTIONS_WORKER_RUNTIME: 'python'\n",
        "FUNCTIONS_WORKER_RUNTIME",
    ),
    (
        "functionapp.bicep",
        "type: 'UserAssignedIdentity'",
        "type: 'StorageAccountConnectionString'",
        "deployment storage auth",
    ),
]


def _run_rule(module: str, path: Path) -> list[str]:
    parsed = rules.parse_file(path)
    host, local = rules.load_host_json(), rules.load_local_settings_example()
    if module == "servicebus.bicep":
        functionapp = rules.parse_file(rules.MODULES / "functionapp.bicep")
        return rules.check_servicebus(parsed, host, local) + rules.check_outage_budget(parsed, functionapp)
    if module == "storage.bicep":
        return rules.check_storage(parsed, local)
    if module == "monitoring.bicep":
        return rules.check_monitoring(parsed)
    if module == "functionapp.bicep":
        servicebus = rules.parse_file(rules.MODULES / "servicebus.bicep")
        return (
            rules.check_functionapp(parsed, local)
            + rules.check_store_retry_budget(parsed, host)
            + rules.check_outage_budget(servicebus, parsed)
        )
    raise AssertionError(module)


@pytest.mark.parametrize(("module", "old", "new", "mentions"), CASES, ids=[f"{c[0]}:{c[3]}" for c in CASES])
def test_rule_fails_on_broken_copy(tmp_path: Path, module: str, old: str, new: str, mentions: str) -> None:
    assert _run_rule(module, rules.MODULES / module) == [], "the real module must be clean"
    problems = _run_rule(module, _broken(tmp_path, module, old, new))
    assert any(mentions.lower() in p.lower() for p in problems), problems


def test_role_assignment_without_scope_or_guid_is_rejected(tmp_path: Path) -> None:
    copy = _broken(
        tmp_path,
        "rbac-deployer.bicep",
        "  name: guid(storage.id, principalId, '76199698-9eea-4c19-bc75-cec21354c6b6')\n  scope: storage\n",
        "  name: 'operator-table-reader'\n",
    )
    problems = rules.check_all_role_assignments({copy.name: rules.parse_file(copy)})
    assert any("without scope" in p for p in problems), problems
    assert any("guid" in p for p in problems), problems


def test_keyless_scan_catches_list_keys(tmp_path: Path) -> None:
    shutil.copytree(rules.INFRA, tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "infra" / "modules" / "storage.bicep"
    target.write_text(target.read_text() + "\noutput leaked string = storage.listKeys().keys[0].value\n")
    problems = rules.check_keyless_text(tmp_path / "infra")
    assert any("listkeys(" in p for p in problems), problems


def test_dead_letter_alert_must_filter_on_the_queue(tmp_path: Path) -> None:
    copy = _broken(tmp_path, "alerts.bicep", "name: 'EntityName'", "name: 'OperationName'")
    assert any("dimension" in p for p in rules.check_alerts(rules.parse_file(copy)))


CHECKOV = rules.REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.mark.skipif(not CHECKOV.exists(), reason=".venv-checkov not created (run scripts/ci/infra_checks.sh)")
@pytest.mark.parametrize(
    ("module", "old", "new", "check_id"),
    [
        ("servicebus.bicep", "requiresSession: true", "requiresSession: false", "CKV_ORD_1"),
        ("servicebus.bicep", "disableLocalAuth: true", "disableLocalAuth: false", "CKV_ORD_2"),
        ("storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true", "CKV_ORD_4"),
        ("monitoring.bicep", "DisableLocalAuth: true", "DisableLocalAuth: false", "CKV_ORD_5"),
        ("servicebus.bicep", "maxDeliveryCount: 10", "maxDeliveryCount: 3", "CKV_ORD_6"),
    ],
)
def test_custom_checkov_policy_fails_on_broken_copy(
    tmp_path: Path, module: str, old: str, new: str, check_id: str
) -> None:
    copy = _broken(tmp_path, module, old, new)
    env: dict[str, Any] = {**os.environ, "CI": "true", "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "bicep",
            "--file",
            str(copy),
            "--check",
            check_id,
            "--external-checks-dir",
            str(rules.INFRA / "checkov"),
            "--skip-download",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert f'"check_id": "{check_id}"' in result.stdout
    assert '"failed": 1' in result.stdout.replace(" ", "").replace('"failed":1', '"failed": 1')
