"""What a function receives for a host payload, computed by Azure's worker library itself: the
TriggerInput (TypedData + trigger metadata) the local host builds, through azure-functions-runtime's
`from_incoming_proto` (the call its invocation handler makes per input). Unit tests use it to check the
binding data without starting a worker; the end-to-end tests run the whole InvocationRequest."""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Any

import azure.functions as func
from azure_functions_runtime.bindings import meta

from devstack.host import payload
from devstack.host.rpc import protos

meta.load_binding_registry()


def decode(binding: str, trigger: payload.TriggerInput, pytype: Any) -> Any:
    return meta.from_incoming_proto(
        binding,
        protos.ParameterBinding(name="arg", data=trigger.data),
        pytype=pytype,
        trigger_metadata=trigger.metadata,
        function_name="test",
    )


def servicebus_message(received: Any, data_type: str | None) -> func.ServiceBusMessage:
    return decode(
        "serviceBusTrigger", payload.servicebus_invocation(received, data_type), func.ServiceBusMessage
    )


def servicebus_messages(received: list[Any], data_type: str | None) -> list[func.ServiceBusMessage]:
    return decode(
        "serviceBusTrigger",
        payload.servicebus_batch_invocation(received, data_type),
        typing.List[func.ServiceBusMessage],  # noqa: UP006  (what the worker accepts)
    )


def http_request(*args: Any, **kwargs: Any) -> func.HttpRequest:
    return decode("httpTrigger", payload.http_request(*args, **kwargs), func.HttpRequest)


def timer_request(schedule: str, last: datetime | None, next_: datetime | None, *, past_due: bool) -> Any:
    return decode(
        "timerTrigger", payload.timer_request(schedule, last, next_, past_due=past_due), func.TimerRequest
    )
