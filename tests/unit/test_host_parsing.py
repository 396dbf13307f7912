"""Local host: .NET TimeSpan, NCRONTAB, host.json options, connections and binding discovery."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.host.config import (
    HostConfigError,
    ServiceBusOptions,
    resolve_servicebus_connection,
    resolve_setting_references,
)
from devstack.host.ncrontab import CronError, CronSchedule
from devstack.host.timespan import TimeSpanError, parse_timespan

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:05", 5),
        ("00:05:00", 300),
        ("00:00:00.80", 0.8),
        ("01:02:03", 3723),
        ("1.00:00:00", 86400),
        ("2", 172800),
        ("-00:00:01", -1),
        ("00:01", 60),
    ],
)
def test_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5s", "00:60:00", "24:00:00", "1:2:3:4", "abc"])
def test_timespan_rejects(text: str) -> None:
    with pytest.raises(TimeSpanError):
        parse_timespan(text)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_ncrontab_daily_purge_schedule() -> None:
    s = CronSchedule.parse("0 30 2 * * *")
    assert s.next_after(t("2025-01-01T00:00:00")) == t("2025-01-01T02:30:00")
    assert s.next_after(t("2025-01-01T02:30:00")) == t("2025-01-02T02:30:00")


def test_ncrontab_steps_lists_ranges_and_names() -> None:
    every5 = CronSchedule.parse("*/5 * * * * *")
    assert every5.occurrences(t("2025-01-01T00:00:03"), 3) == [
        t("2025-01-01T00:00:05"),
        t("2025-01-01T00:00:10"),
        t("2025-01-01T00:00:15"),
    ]
    weekdays = CronSchedule.parse("0 0 9-17/4 * * mon-fri")
    # 2025-01-03 is a Friday: 09, 13, 17, then Monday 09
    assert weekdays.occurrences(t("2025-01-03T08:00:00"), 4) == [
        t("2025-01-03T09:00:00"),
        t("2025-01-03T13:00:00"),
        t("2025-01-03T17:00:00"),
        t("2025-01-06T09:00:00"),
    ]
    listed = CronSchedule.parse("0 0,15,45 * 1 jan,7 *")
    assert listed.next_after(t("2025-01-01T00:16:00")) == t("2025-01-01T00:45:00")
    assert listed.next_after(t("2025-01-01T23:50:00")) == t("2025-07-01T00:00:00")
    assert CronSchedule.parse("0 0 0 * * 7").next_after(t("2025-01-01T00:00:00")) == t("2025-01-05T00:00:00")


def test_ncrontab_five_fields_mean_second_zero() -> None:
    assert CronSchedule.parse("*/10 * * * *").next_after(t("2025-01-01T00:00:30")) == t("2025-01-01T00:10:00")


def test_ncrontab_day_or_weekday() -> None:
    # both restricted: either matches (cron semantics): the 13th or any Friday
    s = CronSchedule.parse("0 0 0 13 * fri")
    assert s.next_after(t("2025-01-01T00:00:00")) == t("2025-01-03T00:00:00")


@pytest.mark.parametrize(
    "text", ["* * * * *  * *", "60 * * * * *", "* * * 0 * *", "*/0 * * * * *", "a * * * * *"]
)
def test_ncrontab_rejects(text: str) -> None:
    with pytest.raises(CronError):
        CronSchedule.parse(text)


def test_host_json_service_bus_options_from_the_repo() -> None:
    import json

    options = ServiceBusOptions.from_host_json(json.loads((REPO_ROOT / "host.json").read_text()))
    assert options.max_concurrent_sessions == 16
    assert options.session_idle_timeout == 5
    assert options.max_auto_lock_renewal_duration == 600
    assert options.auto_complete_messages is True
    assert options.prefetch_count == 0
    assert options.max_message_batch_size == 32
    assert options.retry.delay == pytest.approx(0.8)
    assert options.retry.max_retries == 3
    assert options.ignored == ()


def test_host_json_bad_values() -> None:
    with pytest.raises(HostConfigError, match="sessionIdleTimeout"):
        ServiceBusOptions.from_host_json({"extensions": {"serviceBus": {"sessionIdleTimeout": "5s"}}})
    with pytest.raises(HostConfigError, match="maxConcurrentSessions"):
        ServiceBusOptions.from_host_json({"extensions": {"serviceBus": {"maxConcurrentSessions": 0}}})


def test_setting_references() -> None:
    assert resolve_setting_references("%Q%", {"Q": "orders"}, what="f") == "orders"
    with pytest.raises(HostConfigError, match="%Q%"):
        resolve_setting_references("%Q%", {}, what="f")


def test_connections_the_functions_way() -> None:
    emu = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;"
    conn = resolve_servicebus_connection("ServiceBusConnection", {"ServiceBusConnection": emu})
    assert conn.connection_string == emu and conn.uses_development_emulator
    assert "SharedAccessKey=" not in conn.describe()
    prefixed = resolve_servicebus_connection("Sb", {"AzureWebJobsSb": emu})
    assert prefixed.connection_string == emu
    identity = resolve_servicebus_connection(
        "ServiceBusConnection",
        {
            "ServiceBusConnection__fullyQualifiedNamespace": "sb://ns.servicebus.windows.net/",
            "ServiceBusConnection__credential": "managedidentity",
            "ServiceBusConnection__clientId": "abc",
        },
    )
    assert identity.fully_qualified_namespace == "ns.servicebus.windows.net"
    assert identity.credential_kind == "managedidentity" and identity.client_id == "abc"
    with pytest.raises(HostConfigError, match="ServiceBusConnection__fullyQualifiedNamespace"):
        resolve_servicebus_connection("ServiceBusConnection", {})


def test_specs_come_from_the_worker_metadata() -> None:
    """The host reads each function from the worker's FunctionMetadataResponse (raw bindings)."""
    from devstack.host.discovery import DiscoveryError, spec_from_worker
    from devstack.host.worker import LoadedFunction

    trigger = (
        '{"direction": "IN", "dataType": "BINARY", "type": "serviceBusTrigger", "name": "msg", '
        '"connection": "ServiceBusConnection", "queueName": "%ORDERS_QUEUE_NAME%", "isSessionsEnabled": true}'
    )
    sb = spec_from_worker(LoadedFunction("id-1", "process_order_step", "/app", (trigger,)))
    assert (sb.function_id, sb.trigger_type, sb.trigger_arg) == ("id-1", "serviceBusTrigger", "msg")
    assert sb.trigger["queueName"] == "%ORDERS_QUEUE_NAME%" and sb.trigger["isSessionsEnabled"] is True
    http = ('{"type": "httpTrigger", "name": "req"}', '{"type": "http", "name": "$return"}')
    assert spec_from_worker(LoadedFunction("id-2", "h", "/app", http)).trigger_type == "httpTrigger"
    with pytest.raises(DiscoveryError):
        spec_from_worker(LoadedFunction("id-3", "none", "/app", ('{"type": "http", "name": "$return"}',)))
