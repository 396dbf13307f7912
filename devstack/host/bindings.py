"""How the local host reads a function's trigger binding: which queue, topic, schedule or route it
listens on, with `%SETTING%` references and the Service Bus connection resolved from the app settings.

The Functions host does this when it indexes the app (the Service Bus extension's
ServiceBusTriggerAttribute: queueName or topicName + subscriptionName, Connection, IsSessionsEnabled;
TimerTrigger: schedule, runOnStartup; HttpTrigger: route, methods, authLevel). devstack/host/runtime.py
then runs one listener per binding.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from devstack.host.config import (
    HostConfigError,
    ServiceBusConnection,
    resolve_servicebus_connection,
    resolve_setting_references,
)
from devstack.host.discovery import FunctionSpec
from devstack.host.ncrontab import CronError, CronSchedule

log = logging.getLogger("devstack.host")


@dataclass(frozen=True)
class Listener:
    """One trigger the host listens for, its settings resolved."""

    spec: FunctionSpec
    kind: str  # "servicebus" | "timer"
    entity: str = ""  # queue name, or topic/subscription
    topic: str | None = None
    subscription: str | None = None
    sessions: bool = False
    batch: bool = False  # cardinality many: a list of messages per invocation
    connection: ServiceBusConnection | None = None
    schedule: CronSchedule | None = None
    run_on_startup: bool = False
    route: str = ""  # http: the route template, e.g. "customers/{customer_id}/orders"
    methods: tuple[str, ...] = ()  # http: allowed methods (empty: all)
    auth_level: str = ""


def with_overrides(spec: FunctionSpec, overrides: Mapping[str, Mapping[str, Any]]) -> FunctionSpec:
    """overrides[function] patches the indexed trigger binding (None removes a key): tests use it to run
    the shipped app with another trigger dataType."""
    patch = overrides.get(spec.name)
    if not patch:
        return spec
    trigger = {k: v for k, v in {**spec.trigger, **patch}.items() if v is not None}
    bindings = tuple(trigger if b.get("name") == spec.trigger_arg else b for b in spec.bindings)
    return replace(spec, trigger=trigger, bindings=bindings)


def listener_for(spec: FunctionSpec, values: Mapping[str, str]) -> Listener | None:
    """The listener for `spec`'s trigger, with %SETTING% references and the connection resolved from
    `values` (app settings); None for a trigger type the local host does not run (logged)."""
    t = spec.trigger
    if spec.trigger_type == "serviceBusTrigger":
        batch = str(t.get("cardinality", "one")).lower() == "many"
        what = f"function {spec.name}"
        conn = resolve_servicebus_connection(str(t.get("connection") or ""), values)
        if t.get("queueName"):
            queue = resolve_setting_references(str(t["queueName"]), values, what=what)
            return Listener(
                spec,
                "servicebus",
                entity=queue,
                sessions=bool(t.get("isSessionsEnabled")),
                batch=batch,
                connection=conn,
            )
        topic = resolve_setting_references(str(t.get("topicName") or ""), values, what=what)
        sub = resolve_setting_references(str(t.get("subscriptionName") or ""), values, what=what)
        if not topic or not sub:
            raise HostConfigError(
                f"{spec.name}: serviceBusTrigger needs queueName or topicName+subscriptionName"
            )
        return Listener(
            spec,
            "servicebus",
            entity=f"{topic}/subscriptions/{sub}",
            topic=topic,
            subscription=sub,
            sessions=bool(t.get("isSessionsEnabled")),
            batch=batch,
            connection=conn,
        )
    if spec.trigger_type == "timerTrigger":
        schedule_text = resolve_setting_references(
            str(t.get("schedule") or ""), values, what=f"function {spec.name}"
        )
        try:
            schedule = CronSchedule.parse(schedule_text)
        except CronError as exc:
            raise HostConfigError(f"{spec.name}: schedule {exc}") from None
        return Listener(spec, "timer", schedule=schedule, run_on_startup=bool(t.get("runOnStartup")))
    if spec.trigger_type == "httpTrigger":
        methods = tuple(str(m).upper() for m in (t.get("methods") or ()))
        return Listener(
            spec,
            "http",
            route=str(t.get("route") or spec.name).strip("/"),
            methods=methods,
            auth_level=str(t.get("authLevel") or "FUNCTION").upper(),
        )
    log.warning(
        "trigger type not supported by the local host",
        extra={"function": spec.name, "trigger_type": spec.trigger_type},
    )
    return None
