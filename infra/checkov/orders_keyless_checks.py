"""Custom checkov policies for the orders infrastructure (framework: bicep).

Built-in checkov has no Bicep checks for these properties, which this app depends on:

* CKV_ORD_1  Service Bus queues are session-enabled (per-customer ordering relies on it and the
             flag cannot be changed after the queue exists).
* CKV_ORD_2  Service Bus namespaces disable local (SAS key) authentication.
* CKV_ORD_3  Service Bus namespaces require TLS 1.2.
* CKV_ORD_4  Storage accounts disable shared key access.
* CKV_ORD_5  Application Insights components disable local (instrumentation key) authentication.

Loaded with ``checkov --external-checks-dir infra/checkov`` (see scripts/ci/infra_checks.sh).
A property that is missing or not a literal fails the check: the secure value must be explicit.
"""

from __future__ import annotations

from typing import Any

from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class _LiteralPropertyCheck(BaseResourceCheck):
    """Passes only when ``properties.<key>`` is the expected literal value."""

    def __init__(
        self,
        *,
        name: str,
        check_id: str,
        resource_type: str,
        key: str,
        expected: object,
        category: CheckCategories,
    ) -> None:
        self.key = key
        self.expected = expected
        super().__init__(
            name=name,
            id=check_id,
            categories=(category,),
            supported_resources=(resource_type,),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        self.evaluated_keys = [f"properties/{self.key}"]
        properties = conf.get("properties")
        if not isinstance(properties, dict):
            return CheckResult.FAILED
        value = properties.get(self.key)
        if isinstance(value, str) and isinstance(self.expected, str):
            return CheckResult.PASSED if value.lower() == self.expected.lower() else CheckResult.FAILED
        return CheckResult.PASSED if value is self.expected or value == self.expected else CheckResult.FAILED


CHECKS = [
    _LiteralPropertyCheck(
        name="Ensure Service Bus queues require sessions (ordered per-customer processing)",
        check_id="CKV_ORD_1",
        resource_type="Microsoft.ServiceBus/namespaces/queues",
        key="requiresSession",
        expected=True,
        category=CheckCategories.GENERAL_SECURITY,
    ),
    _LiteralPropertyCheck(
        name="Ensure Service Bus namespaces disable local (SAS) authentication",
        check_id="CKV_ORD_2",
        resource_type="Microsoft.ServiceBus/namespaces",
        key="disableLocalAuth",
        expected=True,
        category=CheckCategories.IAM,
    ),
    _LiteralPropertyCheck(
        name="Ensure Service Bus namespaces require TLS 1.2",
        check_id="CKV_ORD_3",
        resource_type="Microsoft.ServiceBus/namespaces",
        key="minimumTlsVersion",
        expected="1.2",
        category=CheckCategories.ENCRYPTION,
    ),
    _LiteralPropertyCheck(
        name="Ensure Storage accounts disable shared key access",
        check_id="CKV_ORD_4",
        resource_type="Microsoft.Storage/storageAccounts",
        key="allowSharedKeyAccess",
        expected=False,
        category=CheckCategories.IAM,
    ),
    _LiteralPropertyCheck(
        name="Ensure Application Insights disables local (instrumentation key) authentication",
        check_id="CKV_ORD_5",
        resource_type="Microsoft.Insights/components",
        key="DisableLocalAuth",
        expected=True,
        category=CheckCategories.IAM,
    ),
]
