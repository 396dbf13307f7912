"""Custom checkov policies for the orders infrastructure (framework: bicep).

Built-in checkov has no Bicep checks for these properties, which this app depends on:

* CKV_ORD_1  Service Bus queues are session-enabled (per-customer ordering relies on it and the
             flag cannot be changed after the queue exists).
* CKV_ORD_2  Service Bus namespaces disable local (SAS key) authentication.
* CKV_ORD_3  Service Bus namespaces require TLS 1.2.
* CKV_ORD_4  Storage accounts disable shared key access.
* CKV_ORD_5  Application Insights components disable local (instrumentation key) authentication.
* CKV_ORD_6  Service Bus queues keep maxDeliveryCount 10: with ORDERS_STORE_RETRY_SECONDS it is the
             store-outage budget ((10 - 1) x 420 s = 63 min without a dead letter; docs/reliability.md).

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
        check_id: str,
        resource_type: str,
        key: str,
        expected: object,
        category: CheckCategories,
        name: str,
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


_SERVICE_BUS = "Microsoft.ServiceBus/namespaces"

# (id, resource type, property, the literal it must have, category, title); one row a check.
_POLICIES: tuple[tuple[str, str, str, object, CheckCategories, str], ...] = (
    ("CKV_ORD_1", f"{_SERVICE_BUS}/queues", "requiresSession", True, CheckCategories.GENERAL_SECURITY,
     "Ensure Service Bus queues require sessions (ordered per-customer processing)"),
    ("CKV_ORD_2", _SERVICE_BUS, "disableLocalAuth", True, CheckCategories.IAM,
     "Ensure Service Bus namespaces disable local (SAS) authentication"),
    ("CKV_ORD_3", _SERVICE_BUS, "minimumTlsVersion", "1.2", CheckCategories.ENCRYPTION,
     "Ensure Service Bus namespaces require TLS 1.2"),
    ("CKV_ORD_4", "Microsoft.Storage/storageAccounts", "allowSharedKeyAccess", False, CheckCategories.IAM,
     "Ensure Storage accounts disable shared key access"),
    ("CKV_ORD_5", "Microsoft.Insights/components", "DisableLocalAuth", True, CheckCategories.IAM,
     "Ensure Application Insights disables local (instrumentation key) authentication"),
    ("CKV_ORD_6", f"{_SERVICE_BUS}/queues", "maxDeliveryCount", 10, CheckCategories.GENERAL_SECURITY,
     "Ensure Service Bus queues keep maxDeliveryCount 10 (the store-outage delivery budget)"),
)  # fmt: skip

CHECKS = [_LiteralPropertyCheck(*policy) for policy in _POLICIES]
