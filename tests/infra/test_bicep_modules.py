"""Offline checks of infra/ Bicep: security properties, agreement with host.json and the app settings."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra import bicep_rules as rules

Parsed = dict[str, dict[str, Any]]


def test_every_bicep_file_parses(bicep: Parsed) -> None:
    expected = {
        "main.bicep",
        "identity.bicep",
        "monitoring.bicep",
        "servicebus.bicep",
        "storage.bicep",
        "functionapp.bicep",
        "rbac-app.bicep",
        "rbac-deployer.bicep",
        "alerts.bicep",
    }
    assert expected <= set(bicep)


def test_servicebus_sessions_local_auth_and_host_json_agreement(
    bicep: Parsed, host_json: dict[str, Any], local_settings: dict[str, str]
) -> None:
    assert rules.check_servicebus(bicep["servicebus.bicep"], host_json, local_settings) == []


def test_storage_is_entra_only(bicep: Parsed, local_settings: dict[str, str]) -> None:
    assert rules.check_storage(bicep["storage.bicep"], local_settings) == []


def test_application_insights_entra_only(bicep: Parsed) -> None:
    assert rules.check_monitoring(bicep["monitoring.bicep"]) == []


def test_function_app_flex_consumption_python311_identity_settings(
    bicep: Parsed, local_settings: dict[str, str]
) -> None:
    assert rules.check_functionapp(bicep["functionapp.bicep"], local_settings) == []


def test_store_retry_budget_is_well_under_function_timeout_and_lock_renewal(
    bicep: Parsed, host_json: dict[str, Any]
) -> None:
    assert rules.check_store_retry_budget(bicep["functionapp.bicep"], host_json) == []


def test_a_thirty_minute_store_outage_fits_the_delivery_budget_twice(bicep: Parsed) -> None:
    assert rules.check_outage_budget(bicep["servicebus.bicep"], bicep["functionapp.bicep"]) == []
    assert rules.check_outage_budget(bicep["servicebus.bicep"], bicep["main.bicep"]) == []


def test_store_retry_setting_agrees_everywhere(bicep: Parsed, local_settings: dict[str, str]) -> None:
    """local.settings.json.example, the app's default, main.bicep, its azd parameter and the module."""
    from shared.settings import DEFAULT_STORE_RETRY_SECONDS, MAX_STORE_RETRY_SECONDS

    local = float(local_settings["ORDERS_STORE_RETRY_SECONDS"])
    assert local == DEFAULT_STORE_RETRY_SECONDS
    main = bicep["main.bicep"]
    assert rules.param_default(main, "ordersStoreRetrySeconds") == local
    for parsed in (main, bicep["functionapp.bicep"]):
        assert rules.param_default(parsed, "ordersStoreRetrySeconds") == local
        assert rules.param_decorator(parsed, "ordersStoreRetrySeconds", "min_value") == 0
        assert (
            rules.param_decorator(parsed, "ordersStoreRetrySeconds", "max_value") == MAX_STORE_RETRY_SECONDS
        )
    params = rules.body(main["modules"]["functionApp"])["params"]
    assert params["ordersStoreRetrySeconds"] == "ordersStoreRetrySeconds"
    data = json.loads((rules.INFRA / "main.parameters.json").read_text())["parameters"]
    assert data["ordersStoreRetrySeconds"]["value"] == "${ORDERS_STORE_RETRY_SECONDS=420}"


def test_alerts_dead_letters_and_quarantines(bicep: Parsed) -> None:
    assert rules.check_alerts(bicep["alerts.bicep"]) == []


def test_no_keys_or_connection_string_functions_anywhere_in_infra() -> None:
    assert rules.check_keyless_text() == []


def test_every_role_assignment_has_scope_guid_name_and_builtin_role(bicep: Parsed) -> None:
    assert rules.check_all_role_assignments(bicep) == []
    total = sum(len(rules.role_assignments(p)) for p in bicep.values())
    assert total >= 7


def test_app_identity_gets_exactly_the_least_privilege_roles(bicep: Parsed) -> None:
    granted = rules.roles_granted(bicep["rbac-app.bicep"])
    assert sorted(granted.values()) == sorted(
        [
            "Azure Service Bus Data Receiver",
            "Azure Service Bus Data Owner",  # conditional, queue-scoped: target-based scaling
            "Storage Blob Data Owner",
            "Storage Table Data Contributor",
            "Monitoring Metrics Publisher",
        ]
    )
    ras = rules.role_assignments(bicep["rbac-app.bicep"])
    # Service Bus roles are scoped to the queue, never to the namespace.
    assert ras["appServiceBusReceiver"]["scope"] == "ordersQueue"
    assert ras["appServiceBusScale"]["scope"] == "ordersQueue"
    assert "condition" in bicep["rbac-app.bicep"]["resources"]["appServiceBusScale"]["config"]
    assert rules.param_default(bicep["rbac-app.bicep"], "grantServiceBusScaleRights") is True
    assert ras["appMetricsPublisher"]["scope"] == "applicationInsights"
    for ra in ras.values():
        assert ra["properties"]["principalType"] == "ServicePrincipal"


def test_deploying_principal_can_publish_and_read_status(bicep: Parsed) -> None:
    parsed = bicep["rbac-deployer.bicep"]
    assert sorted(rules.roles_granted(parsed).values()) == [
        "Azure Service Bus Data Sender",
        "Storage Table Data Contributor",  # conditional: grantReplay (orders quarantine replay)
        "Storage Table Data Reader",
    ]
    assert "condition" in parsed["resources"]["deployerTableContributor"]["config"]
    assert rules.param_default(parsed, "grantReplay") is False
    ras = rules.role_assignments(parsed)
    assert ras["deployerServiceBusSender"]["scope"] == "ordersQueue"
    assert rules.param_default(parsed, "principalType") == "User"
    for ra in rules.role_assignments(parsed).values():
        assert ra["properties"]["principalType"] == "principalType"
        assert ra["properties"]["principalId"] == "principalId"


def test_main_is_subscription_scoped_and_composes_modules(bicep: Parsed) -> None:
    main = bicep["main.bicep"]
    assert main["globals"]["scope"]["value"] == "subscription"
    assert list(rules.resources_of_type(main, "Microsoft.Resources/resourceGroups")) == ["rg"]
    modules = main["modules"]
    assert {
        "identity",
        "monitoring",
        "serviceBus",
        "storage",
        "appRoles",
        "deployerRoles",
        "functionApp",
        "alerts",
    } <= set(modules)
    for name, module in modules.items():
        cfg = rules.body(module)
        assert cfg.get("scope") == "rg", f"module {name} must deploy into the azd resource group"
        assert module["detail"]["path"].startswith("./modules/"), name
    assert "'azd-env-name'" in main["variables"]["tags"]["value"]
    # The deploying principal's roles are skipped when azd has no principal id.
    assert "condition" in modules["deployerRoles"]["config"]


def test_main_wires_app_settings_from_the_resources_they_describe(bicep: Parsed) -> None:
    params = rules.body(bicep["main.bicep"]["modules"]["functionApp"])["params"]

    def ref(value: Any) -> str:
        return json.dumps(value)

    assert "serviceBus" in ref(params["ordersMaxDeliveryCount"]) and "maxDeliveryCount" in ref(
        params["ordersMaxDeliveryCount"]
    )
    assert "serviceBus" in ref(params["ordersQueueName"]) and "queueName" in ref(params["ordersQueueName"])
    assert "serviceBus" in ref(params["serviceBusNamespaceFqdn"])
    assert "storage" in ref(params["ordersTableName"])
    assert params["serviceName"] == "api"
    # The app must not start before its identity holds its roles.
    assert "appRoles" in json.dumps(
        rules.body(bicep["main.bicep"]["modules"]["functionApp"]).get("dependsOn")
    )


def test_main_outputs_what_azd_and_the_tools_need(bicep: Parsed) -> None:
    outputs = set(bicep["main.bicep"]["outputs"])
    assert {
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_RESOURCE_GROUP",
        "SERVICEBUS_NAMESPACE_FQDN",
        "ORDERS_QUEUE_NAME",
        "AZURE_FUNCTION_APP_NAME",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "ORDER_STORE_TABLE_SERVICE_URI",
        "ORDERS_TABLE_NAME",
        "APPLICATIONINSIGHTS_NAME",
    } <= outputs
    # azd writes outputs to .azure/<env>/.env: nothing secret-looking may be output.
    assert not [o for o in outputs if re.search(r"KEY|SECRET|CONNECTION_STRING|PASSWORD", o)]


def test_main_parameters_use_azd_substitutions(bicep: Parsed) -> None:
    data = json.loads((rules.INFRA / "main.parameters.json").read_text())["parameters"]
    assert data["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert data["location"]["value"] == "${AZURE_LOCATION}"
    assert data["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    unknown = set(data) - set(bicep["main.bicep"]["parameters"])
    assert not unknown, f"parameters file sets parameters main.bicep does not declare: {unknown}"


def test_abbreviations_cover_every_name_prefix_used(bicep: Parsed) -> None:
    abbrs = json.loads((rules.INFRA / "abbreviations.json").read_text())
    used = set(re.findall(r"abbrs\.(\w+)", (rules.INFRA / "main.bicep").read_text()))
    assert used and used <= set(abbrs), used - set(abbrs)


def test_azure_yaml_declares_the_function_service() -> None:
    text = (rules.REPO_ROOT / "azure.yaml").read_text()
    services = text.split("services:", 1)[1]
    assert re.search(r"^  api:\s*$", services, re.M)
    for line in ("project: .", "language: python", "host: function"):
        assert re.search(rf"^\s+{re.escape(line)}\s*$", services, re.M), line


def test_duration_helpers() -> None:
    assert rules.iso_duration("PT1M").total_seconds() == 60
    assert rules.iso_duration("P14D").days == 14
    assert rules.iso_duration("PT10M").total_seconds() == 600
    assert rules.timespan("00:05:00").total_seconds() == 300
    assert rules.timespan("00:00:05").total_seconds() == 5
