"""Offline rules for infra/: parse the Bicep with pycep and return a list of problems.

Each ``check_*`` function takes parsed Bicep (``pycep.BicepParser().parse`` output) and returns
human-readable problems; an empty list means the module is fine. The tests assert ``== []`` on
the real modules and ``!= []`` on deliberately broken copies (test_broken_copies.py), which
proves the rules actually detect a wrong property.

pycep turns a Bicep file into plain JSON-like data:
* literals stay literals (``true`` -> True, ``'PT1M'`` -> "PT1M"), identifiers become their name
  as a string (``identityClientId`` -> "identityClientId"), string interpolation stays verbatim;
* a conditional resource (``= if (...) {...}``) nests its body under ``config.config``;
* object keys written with quotes keep them (``'azd-env-name'`` -> "'azd-env-name'").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from pycep import BicepParser

from shared.store.retry import ATTEMPT_WORST_CASE_S
from shared.store.retry import HOLD_MARGIN_S as _HOLD_MARGIN_S

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
MODULES = INFRA / "modules"

# Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLE_IDS = {
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "090c5cfd-751d-490a-894a-3ce6f1109419": "Azure Service Bus Data Owner",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

# Text that would mean a key or connection string is created, read or passed around.
FORBIDDEN_TEXT = ("listkeys(", "accountkey", "sharedaccesskey", "connectionstring(", "listconnectionstrings(")

# Settings Flex Consumption rejects or that would bring back key-based access.
FORBIDDEN_APP_SETTINGS = (
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
    "ServiceBusConnection",
    "OrderStoreConnection",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
)

# Suffixes that make an identity-based connection "X" resolvable by the Functions host / SDK.
CONNECTION_SUFFIXES = (
    "__fullyQualifiedNamespace",
    "__accountName",
    "__serviceUri",
    "__blobServiceUri",
    "__queueServiceUri",
    "__tableServiceUri",
)

_PARSER = BicepParser()


# --------------------------------------------------------------------------- loading helpers


def parse_file(path: Path) -> dict[str, Any]:
    return dict(_PARSER.parse(file_path=path))


def parse_text(text: str) -> dict[str, Any]:
    return dict(_PARSER.parse(text=text))


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource body, unwrapping ``= if (cond) {...}``."""
    config: dict[str, Any] = resource["config"]
    if "condition" in config and isinstance(config.get("config"), dict):
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def resources_of_type(
    parsed: dict[str, Any], rtype: str, *, include_existing: bool = False
) -> dict[str, Any]:
    return {
        name: res
        for name, res in (parsed.get("resources") or {}).items()
        if res["type"].lower() == rtype.lower() and (include_existing or not res.get("existing"))
    }


def single(parsed: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = resources_of_type(parsed, rtype)
    if len(found) != 1:
        raise AssertionError(f"expected exactly one {rtype}, found {sorted(found)}")
    return body(next(iter(found.values())))


def props(parsed: dict[str, Any], rtype: str) -> dict[str, Any]:
    properties: dict[str, Any] = single(parsed, rtype).get("properties") or {}
    return properties


def param_default(parsed: dict[str, Any], name: str) -> Any:
    return parsed["parameters"][name].get("default")


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def expect(problems: list[str], where: str, actual: Any, expected: Any) -> None:
    if actual != expected:
        problems.append(f"{where}: expected {expected!r}, found {actual!r}")


# --------------------------------------------------------------------------- durations

_ISO = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
_SPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)$")


def iso_duration(value: str) -> timedelta:
    """ISO 8601 duration as used by ARM (``PT1M``, ``P14D``, ``PT10M``)."""
    match = _ISO.match(value)
    if not match or value in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {value!r}")
    parts = {k: float(v) for k, v in match.groupdict(default="0").items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def timespan(value: str) -> timedelta:
    """.NET TimeSpan as used in host.json (``00:05:00``, ``00:00:05``, ``1.00:00:00``)."""
    match = _SPAN.match(value)
    if not match:
        raise ValueError(f"not a TimeSpan: {value!r}")
    parts = {k: float(v) for k, v in match.groupdict(default="0").items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


# --------------------------------------------------------------------------- app configuration


def load_host_json(root: Path = REPO_ROOT) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "host.json").read_text())
    return data


def load_local_settings_example(root: Path = REPO_ROOT) -> dict[str, str]:
    values: dict[str, str] = json.loads((root / "local.settings.json.example").read_text())["Values"]
    return values


# --------------------------------------------------------------------------- rules


def check_servicebus(parsed: dict[str, Any], host: dict[str, Any], local: dict[str, str]) -> list[str]:
    """Namespace is Entra-only with TLS 1.2; the queue agrees with host.json and the app settings."""
    problems: list[str] = []
    ns = props(parsed, "Microsoft.ServiceBus/namespaces")
    expect(problems, "namespace disableLocalAuth", ns.get("disableLocalAuth"), True)
    expect(problems, "namespace minimumTlsVersion", ns.get("minimumTlsVersion"), "1.2")
    sku = parsed["parameters"].get("skuName", {})
    expect(problems, "skuName default", sku.get("default"), "Standard")
    allowed = [d.get("argument") for d in sku.get("decorators", []) if d.get("type") == "allowed"]
    expect(problems, "skuName allowed", allowed, [["Standard", "Premium"]])

    q = props(parsed, "Microsoft.ServiceBus/namespaces/queues")
    expect(problems, "queue requiresSession", q.get("requiresSession"), True)
    expect(problems, "queue lockDuration", q.get("lockDuration"), "PT1M")
    expect(problems, "queue maxDeliveryCount", q.get("maxDeliveryCount"), 10)
    expect(
        problems, "queue deadLetteringOnMessageExpiration", q.get("deadLetteringOnMessageExpiration"), True
    )
    expect(problems, "queue requiresDuplicateDetection", q.get("requiresDuplicateDetection"), True)
    expect(
        problems,
        "queue duplicateDetectionHistoryTimeWindow",
        q.get("duplicateDetectionHistoryTimeWindow"),
        "PT10M",
    )
    expect(problems, "queue defaultMessageTimeToLive", q.get("defaultMessageTimeToLive"), "P14D")

    # Agreement with local.settings.json.example (what the app is configured with).
    if str(q.get("maxDeliveryCount")) != local.get("ORDERS_MAX_DELIVERY_COUNT"):
        problems.append(
            f"queue maxDeliveryCount {q.get('maxDeliveryCount')!r} != ORDERS_MAX_DELIVERY_COUNT "
            f"{local.get('ORDERS_MAX_DELIVERY_COUNT')!r} in local.settings.json.example"
        )
    expect(
        problems,
        "queueName default vs ORDERS_QUEUE_NAME",
        param_default(parsed, "queueName"),
        local.get("ORDERS_QUEUE_NAME"),
    )

    # Agreement with host.json (client-side session settings).
    sb = host.get("extensions", {}).get("serviceBus", {})
    try:
        lock = iso_duration(str(q.get("lockDuration")))
        ttl = iso_duration(str(q.get("defaultMessageTimeToLive")))
        renew = timespan(sb["maxAutoLockRenewalDuration"])
        idle = timespan(sb["sessionIdleTimeout"])
        fn_timeout = timespan(host["functionTimeout"])
    except (KeyError, ValueError) as exc:
        return [*problems, f"cannot compare durations: {exc}"]
    if lock > timedelta(minutes=5):
        problems.append(f"lockDuration {lock} exceeds the Service Bus maximum of 5 minutes")
    if not lock < renew:
        problems.append(
            f"lockDuration {lock} must be shorter than maxAutoLockRenewalDuration {renew} (renewal)"
        )
    if fn_timeout > renew:
        problems.append(
            f"functionTimeout {fn_timeout} outlives lock renewal {renew}: the lock could be lost mid-run"
        )
    if not idle < lock:
        problems.append(f"sessionIdleTimeout {idle} should be shorter than lockDuration {lock}")
    if sb.get("autoCompleteMessages") is not True:
        problems.append("host.json autoCompleteMessages should be true (the app settles by returning)")
    retention_days = int(local.get("IDEMPOTENCY_RETENTION_DAYS", "0"))
    if ttl > timedelta(days=retention_days):
        problems.append(f"message TTL {ttl} outlives idempotency retention of {retention_days} days")
    return problems


def check_storage(parsed: dict[str, Any], local: dict[str, str]) -> list[str]:
    problems: list[str] = []
    p = props(parsed, "Microsoft.Storage/storageAccounts")
    expect(problems, "storage allowSharedKeyAccess", p.get("allowSharedKeyAccess"), False)
    expect(problems, "storage allowBlobPublicAccess", p.get("allowBlobPublicAccess"), False)
    expect(problems, "storage minimumTlsVersion", p.get("minimumTlsVersion"), "TLS1_2")
    expect(problems, "storage supportsHttpsTrafficOnly", p.get("supportsHttpsTrafficOnly"), True)
    container = props(parsed, "Microsoft.Storage/storageAccounts/blobServices/containers")
    expect(problems, "deployment container publicAccess", container.get("publicAccess"), "None")
    if not resources_of_type(parsed, "Microsoft.Storage/storageAccounts/tableServices/tables"):
        problems.append("order-store table is not created")
    expect(
        problems,
        "ordersTableName default vs ORDERS_TABLE_NAME",
        param_default(parsed, "ordersTableName"),
        local.get("ORDERS_TABLE_NAME"),
    )
    return problems


def check_monitoring(parsed: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    ai = props(parsed, "Microsoft.Insights/components")
    expect(problems, "App Insights DisableLocalAuth", ai.get("DisableLocalAuth"), True)
    if not ai.get("WorkspaceResourceId"):
        problems.append("App Insights must be workspace-based (WorkspaceResourceId)")
    if not resources_of_type(parsed, "Microsoft.OperationalInsights/workspaces"):
        problems.append("Log Analytics workspace missing")
    return problems


def app_settings(parsed: dict[str, Any]) -> dict[str, Any]:
    configs = resources_of_type(parsed, "Microsoft.Web/sites/config")
    for res in configs.values():
        b = body(res)
        if b.get("name") == "appsettings":
            settings: dict[str, Any] = b.get("properties") or {}
            return settings
    raise AssertionError("no Microsoft.Web/sites/config 'appsettings' resource")


def check_functionapp(parsed: dict[str, Any], local: dict[str, str]) -> list[str]:
    problems: list[str] = []
    plan = single(parsed, "Microsoft.Web/serverfarms")
    expect(problems, "plan sku", plan.get("sku"), {"tier": "FlexConsumption", "name": "FC1"})
    expect(problems, "plan reserved (Linux)", (plan.get("properties") or {}).get("reserved"), True)

    site = single(parsed, "Microsoft.Web/sites")
    expect(problems, "site kind", site.get("kind"), "functionapp,linux")
    expect(problems, "identity type", (site.get("identity") or {}).get("type"), "UserAssigned")
    sp = site.get("properties") or {}
    expect(problems, "httpsOnly", sp.get("httpsOnly"), True)
    fac = sp.get("functionAppConfig") or {}
    expect(problems, "runtime", fac.get("runtime"), {"name": "python", "version": "3.13"})
    storage = (fac.get("deployment") or {}).get("storage") or {}
    expect(problems, "deployment storage type", storage.get("type"), "blobContainer")
    expect(
        problems,
        "deployment storage auth",
        (storage.get("authentication") or {}).get("type"),
        "UserAssignedIdentity",
    )
    scale = fac.get("scaleAndConcurrency") or {}
    if "instanceMemoryMB" not in scale:
        problems.append("scaleAndConcurrency.instanceMemoryMB missing")
    if "alwaysReady" not in scale:
        problems.append("scaleAndConcurrency.alwaysReady missing")
    expect(problems, "alwaysReadyInstanceCount default", param_default(parsed, "alwaysReadyInstanceCount"), 0)
    always_ready_var = json.dumps(parsed.get("variables", {}).get("alwaysReady", {}))
    if (
        "alwaysReadyInstanceCount" not in always_ready_var
        or "function:${ordersFunctionName}" not in always_ready_var
    ):
        problems.append("alwaysReady must map alwaysReadyInstanceCount onto function:<ordersFunctionName>")

    tags = json.dumps(site.get("tags"))
    if "'azd-service-name'" not in tags:
        problems.append("function app lacks the azd-service-name tag")
    expect(problems, "serviceName default", param_default(parsed, "serviceName"), "api")

    settings = app_settings(parsed)
    for conn in ("AzureWebJobsStorage", "ServiceBusConnection", "OrderStoreConnection"):
        expect(problems, f"{conn}__credential", settings.get(f"{conn}__credential"), "managedidentity")
        expect(problems, f"{conn}__clientId", settings.get(f"{conn}__clientId"), "identityClientId")
    for key in (
        "AzureWebJobsStorage__accountName",
        "ServiceBusConnection__fullyQualifiedNamespace",
        "OrderStoreConnection__tableServiceUri",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
    ):
        if not settings.get(key):
            problems.append(f"app setting {key} missing")
    expect(
        problems,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
        "ClientId=${identityClientId};Authorization=AAD",
    )
    expect(problems, "ORDERS_QUEUE_NAME", settings.get("ORDERS_QUEUE_NAME"), "ordersQueueName")
    expect(problems, "ORDERS_TABLE_NAME", settings.get("ORDERS_TABLE_NAME"), "ordersTableName")
    expect(
        problems,
        "IDEMPOTENCY_RETENTION_DAYS",
        settings.get("IDEMPOTENCY_RETENTION_DAYS"),
        local.get("IDEMPOTENCY_RETENTION_DAYS"),
    )
    expect(problems, "ORDERS_PARK_LIMIT", settings.get("ORDERS_PARK_LIMIT"), local.get("ORDERS_PARK_LIMIT"))
    # Wired from the queue (servicebus.bicep output -> main.bicep -> this param), so it cannot drift.
    max_delivery = settings.get("ORDERS_MAX_DELIVERY_COUNT")
    fn = max_delivery.get("function", {}) if isinstance(max_delivery, dict) else {}
    if fn.get("type") != "string" or list(fn.get("parameters", {}).values()) != ["ordersMaxDeliveryCount"]:
        problems.append(
            f"ORDERS_MAX_DELIVERY_COUNT must be string(ordersMaxDeliveryCount), found {max_delivery!r}"
        )
    # The in-invocation store retry budget: a parameter (main.bicep passes it, azd can override it).
    retry = settings.get("ORDERS_STORE_RETRY_SECONDS")
    fn = retry.get("function", {}) if isinstance(retry, dict) else {}
    if fn.get("type") != "string" or list(fn.get("parameters", {}).values()) != ["ordersStoreRetrySeconds"]:
        problems.append(
            f"ORDERS_STORE_RETRY_SECONDS must be string(ordersStoreRetrySeconds), found {retry!r}"
        )
    expect(
        problems,
        "ordersStoreRetrySeconds default vs ORDERS_STORE_RETRY_SECONDS",
        param_default(parsed, "ordersStoreRetrySeconds"),
        int(float(local.get("ORDERS_STORE_RETRY_SECONDS", "nan"))),
    )
    for key in FORBIDDEN_APP_SETTINGS:
        if key in settings:
            problems.append(f"app setting {key} must not be set (key-based or rejected on Flex Consumption)")
    for key, value in settings.items():
        if isinstance(value, str) and any(bad in value.lower() for bad in (*FORBIDDEN_TEXT, "accountkey=")):
            problems.append(f"app setting {key} carries a key")

    publishing = resources_of_type(parsed, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    allowed = {
        body(r).get("name"): (body(r).get("properties") or {}).get("allow") for r in publishing.values()
    }
    expect(problems, "basic publishing credentials", allowed, {"ftp": False, "scm": False})
    return problems


# One store attempt's own worst case on top of the hold budget, and the step itself: one definition, in
# shared/store/retry.py (the app checks host.json against the same at start).
STORE_ATTEMPT_S = int(ATTEMPT_WORST_CASE_S)
HOLD_MARGIN_S = int(_HOLD_MARGIN_S)
# The store outage the shipped values must ride out without a dead letter, and the safety factor on it.
SURVIVABLE_OUTAGE_S = 30 * 60
OUTAGE_SAFETY = 2


def param_decorator(parsed: dict[str, Any], name: str, decorator: str) -> Any:
    for d in parsed["parameters"][name].get("decorators") or []:
        if d.get("type") == decorator:
            return d.get("argument")
    return None


def check_store_retry_budget(parsed: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """ORDERS_STORE_RETRY_SECONDS (the time one invocation holds while the store is down) against
    host.json: the default and even the largest allowed value, plus one store attempt begun just before
    the budget ran out and a margin for the step and its settlement, fit within functionTimeout and
    maxAutoLockRenewalDuration (never a worker restart or a lost lock because a store was down)."""
    problems: list[str] = []
    try:
        fn_timeout = timespan(host["functionTimeout"]).total_seconds()
        renew = timespan(host["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"]).total_seconds()
    except (KeyError, ValueError) as exc:
        return [f"cannot compare the store retry budget with host.json: {exc}"]
    limit = min(fn_timeout, renew)
    # Every concurrent session's invocation gets a worker thread: one queued behind a holding invocation
    # would count its wait towards functionTimeout (the host times from dispatch) and overrun it.
    sessions = host["extensions"]["serviceBus"].get("maxConcurrentSessions")
    threads = app_settings(parsed).get("PYTHON_THREADPOOL_THREAD_COUNT")
    if not isinstance(sessions, int) or not str(threads or "").isdigit() or int(str(threads)) < sessions:
        problems.append(
            f"PYTHON_THREADPOOL_THREAD_COUNT {threads!r} is below host.json maxConcurrentSessions"
            f" {sessions!r}: invocations queued behind ones holding through a store outage"
            " would overrun functionTimeout"
        )
    extra = STORE_ATTEMPT_S + HOLD_MARGIN_S
    for what, value in (
        ("default", param_default(parsed, "ordersStoreRetrySeconds")),
        ("@maxValue", param_decorator(parsed, "ordersStoreRetrySeconds", "max_value")),
    ):
        if not isinstance(value, int) or value + extra > limit:
            problems.append(
                f"ordersStoreRetrySeconds {what} {value!r} + {STORE_ATTEMPT_S} s (one attempt) + "
                f"{HOLD_MARGIN_S} s does not fit within functionTimeout / maxAutoLockRenewalDuration "
                f"({limit:g} s)"
            )
    return problems


def check_outage_budget(servicebus: dict[str, Any], functionapp: dict[str, Any]) -> list[str]:
    """The delivery budget of a store outage: each delivery of a message that meets it holds at least
    the default ORDERS_STORE_RETRY_SECONDS before it is given back, and the queue dead-letters on the
    maxDeliveryCount-th, so (maxDeliveryCount - 1) x budget of outage dead-letters nothing (the first
    delivery may have begun just before the outage). That must cover SURVIVABLE_OUTAGE_S twice."""
    q = props(servicebus, "Microsoft.ServiceBus/namespaces/queues")
    deliveries = q.get("maxDeliveryCount")
    budget = param_default(functionapp, "ordersStoreRetrySeconds")
    if not isinstance(deliveries, int) or not isinstance(budget, int):
        return [f"cannot compute the outage budget: maxDeliveryCount {deliveries!r}, budget {budget!r}"]
    survivable = (deliveries - 1) * budget
    if survivable < OUTAGE_SAFETY * SURVIVABLE_OUTAGE_S:
        return [
            f"store outage budget: (maxDeliveryCount {deliveries} - 1) x ordersStoreRetrySeconds {budget} s"
            f" = {survivable} s is less than {OUTAGE_SAFETY} x {SURVIVABLE_OUTAGE_S} s: a long outage"
            " would dead-letter messages"
        ]
    return []


def role_assignments(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: body(res)
        for name, res in resources_of_type(parsed, "Microsoft.Authorization/roleAssignments").items()
    }


def role_guid(assignment: dict[str, Any]) -> str | None:
    rd = (assignment.get("properties") or {}).get("roleDefinitionId")
    if isinstance(rd, dict):
        fn = rd.get("function", {})
        if fn.get("type") == "subscription_resource_id":
            params = fn.get("parameters", {})
            if params.get("resource_type") == "Microsoft.Authorization/roleDefinitions":
                name = params.get("resource_name_1")
                return str(name) if name else None
    return None


def check_role_assignment(name: str, assignment: dict[str, Any]) -> list[str]:
    """Every assignment: explicit scope, deterministic guid() name, built-in role by GUID, principalType."""
    problems: list[str] = []
    if "scope" not in assignment or not assignment["scope"]:
        problems.append(f"{name}: role assignment without scope:")
    name_expr = assignment.get("name")
    if not (isinstance(name_expr, dict) and name_expr.get("function", {}).get("type") == "guid"):
        problems.append(f"{name}: name must be a deterministic guid(...)")
    else:
        args = list(name_expr["function"].get("parameters", {}).values())
        guid_of_role = role_guid(assignment)
        if guid_of_role and guid_of_role not in json.dumps(args):
            problems.append(f"{name}: guid() name should include the role id so roles never collide")
    guid_of_role = role_guid(assignment)
    if guid_of_role not in ROLE_IDS:
        problems.append(
            f"{name}: roleDefinitionId must be a known built-in role GUID via subscriptionResourceId()"
        )
    if not (assignment.get("properties") or {}).get("principalType"):
        problems.append(f"{name}: principalType missing (needed for fresh identities / replication delay)")
    return problems


def check_all_role_assignments(files: dict[str, dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for fname, parsed in files.items():
        for name, ra in role_assignments(parsed).items():
            problems += [f"{fname}: {p}" for p in check_role_assignment(name, ra)]
    return problems


def roles_granted(parsed: dict[str, Any]) -> dict[str, str]:
    """{resource symbol: role name} for a module."""
    return {name: ROLE_IDS.get(role_guid(ra) or "", "?") for name, ra in role_assignments(parsed).items()}


def check_keyless_text(root: Path = INFRA) -> list[str]:
    problems: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        text = path.read_text(errors="replace").lower()
        for bad in FORBIDDEN_TEXT:
            if bad in text:
                problems.append(f"{path.relative_to(root)} contains {bad!r}")
    return problems


def check_alerts(parsed: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    metric = props(parsed, "Microsoft.Insights/metricAlerts")
    criteria = (metric.get("criteria") or {}).get("allOf") or [{}]
    c = criteria[0]
    expect(problems, "metric", c.get("metricName"), "DeadletteredMessages")
    expect(problems, "metric operator", c.get("operator"), "GreaterThan")
    expect(problems, "metric threshold", c.get("threshold"), 0)
    dims = c.get("dimensions") or [{}]
    expect(problems, "metric dimension", dims[0].get("name"), "EntityName")
    expect(problems, "metric dimension values", dims[0].get("values"), ["ordersQueueName"])

    rules = {
        str(body(r).get("properties", {}).get("criteria", {}).get("allOf", [{}])[0].get("query")): body(r)
        for r in resources_of_type(parsed, "Microsoft.Insights/scheduledQueryRules").values()
    }
    if set(rules) != {"quarantineQuery", "stuckQuery"}:
        problems.append(f"expected the quarantine and stuck-order log alerts, found queries {sorted(rules)}")
    query = parsed.get("variables", {}).get("quarantineQuery", {}).get("value")
    for token in ("traces", "customDimensions", "outcome", '"quarantined"', "reason"):
        if token not in str(query):
            problems.append(f"quarantine query lacks {token!r}")
    stuck = (rules.get("stuckQuery") or {}).get("properties") or {}
    criterion = (stuck.get("criteria") or {}).get("allOf", [{}])[0]
    expect(problems, "stuck measure", criterion.get("metricMeasureColumn"), "stuck_orders")
    expect(problems, "stuck operator", criterion.get("operator"), "GreaterThan")
    expect(problems, "stuck threshold", criterion.get("threshold"), 0)
    if iso_duration(str(stuck.get("overrideQueryTimeRange", "PT0M"))) < timedelta(days=1):
        problems.append("the stuck query must look back at least a day (overrideQueryTimeRange)")
    if "stuckAfterMinutes" not in parsed.get("parameters", {}):
        problems.append("stuckAfterMinutes parameter missing")
    if not props(parsed, "Microsoft.Insights/actionGroups"):
        problems.append("action group missing")
    if "alertEmail" not in parsed.get("parameters", {}):
        problems.append("optional alertEmail parameter missing")
    return problems
