"""One function at a time, by name, in Azure's worker library (azure-functions-runtime): an
InvocationRequest per call with the trigger input the local host's payload code builds, without
receivers or listeners. The function tests and bench/bench_worker_path use it instead of calling the
Python functions themselves, so what the worker would refuse or convert differently fails them too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.host import payload
from devstack.host.invocation import new_trace_parent
from devstack.host.rpc import protos
from devstack.host.worker import LanguageWorker

REPO_ROOT = Path(__file__).resolve().parents[2]  # the repository's function_app.py


def received_message(
    body: bytes,
    *,
    message_id: str,
    session_id: str | None,
    sequence_number: int,
    prior_attempts: int = 0,
    correlation_id: str | None = None,
    enqueued_time_utc: datetime | None = None,
    application_properties: dict[bytes, Any] | None = None,
) -> Any:
    """A received message with the attributes of azure-servicebus's ServiceBusReceivedMessage that the
    host's payload code reads (payload.servicebus_binding_data), for driving a function without a broker.
    `prior_attempts` is the AMQP header's delivery count (the .NET DeliveryCount minus 1)."""
    from types import SimpleNamespace
    from uuid import uuid4

    return SimpleNamespace(
        body=body,
        message_id=message_id,
        session_id=session_id,
        content_type="application/json",
        correlation_id=correlation_id,
        reply_to=None,
        reply_to_session_id=None,
        to=None,
        subject=None,
        partition_key=None,
        delivery_count=prior_attempts,
        sequence_number=sequence_number,
        enqueued_time_utc=enqueued_time_utc or datetime.now(UTC),
        expires_at_utc=None,
        lock_token=uuid4(),
        dead_letter_source=None,
        application_properties={b"source": b"test"}
        if application_properties is None
        else application_properties,
    )


class WorkerFailure(Exception):
    """The worker answered Failure: its RpcException (`Type: message`)."""

    def __init__(self, exception: Any) -> None:
        super().__init__(exception.message)
        self.type_name = str(exception.message).split(":", 1)[0]
        self.stack_trace = str(exception.stack_trace)


class FunctionsWorker:
    def __init__(self, worker: LanguageWorker) -> None:
        self.worker = worker
        self.invocations = 0

    def invoke(self, name: str, trigger: payload.TriggerInput) -> Any:
        """One InvocationRequest; the return value (TypedData) or None; WorkerFailure when it failed."""
        fn = self.worker.functions[name]
        binding = next(b for b in map(_json, fn.raw_bindings) if str(b["type"]).endswith("Trigger"))
        self.invocations += 1
        response = self.worker.invoke(
            protos.InvocationRequest(
                invocation_id=f"test-{self.invocations}",
                function_id=fn.function_id,
                input_data=[protos.ParameterBinding(name=binding["name"], data=trigger.data)],
                trigger_metadata=trigger.metadata,
                trace_context=protos.RpcTraceContext(trace_parent=new_trace_parent()),
                retry_context=protos.RetryContext(),
            )
        ).result(timeout=120)
        if response.result.status != protos.StatusResult.Success:
            raise WorkerFailure(response.result.exception)
        return response.return_value if response.HasField("return_value") else None

    def binding(self, name: str) -> dict[str, Any]:
        fn = self.worker.functions[name]
        return next(b for b in map(_json, fn.raw_bindings) if str(b["type"]).endswith("Trigger"))

    def servicebus(self, received: Any, name: str = "process_order_step") -> Any:
        data_type = str(self.binding(name).get("dataType") or "").lower()
        return self.invoke(name, payload.servicebus_invocation(received, data_type))

    def servicebus_batch(self, received: list[Any], name: str = "process_order_step") -> Any:
        data_type = str(self.binding(name).get("dataType") or "").lower()
        return self.invoke(name, payload.servicebus_batch_invocation(received, data_type))

    def http(self, name: str, url: str, route_params: dict[str, str]) -> payload.HttpReply:
        returned = self.invoke(name, payload.http_request("GET", url, {}, {}, route_params, b""))
        return payload.http_reply(returned)

    def timer(self, name: str, schedule: str, last: datetime | None, next_: datetime | None) -> Any:
        return self.invoke(name, payload.timer_request(schedule, last, next_, past_due=False))


def _json(text: str) -> dict[str, Any]:
    import json

    return dict(json.loads(text))


@contextmanager
def functions_worker(app_dir: Path = REPO_ROOT) -> Iterator[FunctionsWorker]:
    """A worker that loaded app_dir's function_app.py with the current environment's settings."""
    worker = LanguageWorker(app_dir)
    worker.start()
    try:
        yield FunctionsWorker(worker)
    finally:
        worker.stop()
