"""The local host's batch receive loop (cardinality many) without a broker: one invocation per receive with
the whole list, every message completed on success and abandoned on failure, the session released after an
empty receive, and one receiver per batch function (one session at a time per host, as the extension)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devstack.host.bindings import Listener
from devstack.host.runtime import LocalHost
from tests.unit.test_host_payload import Received

SCRATCH_APP = """
import typing

import azure.functions as func

app = func.FunctionApp()
seen = []
fail = []


@app.function_name("process_order_step")
@app.service_bus_queue_trigger(
    arg_name="msgs", queue_name="q", connection="ServiceBusConnection", is_sessions_enabled=True,
    cardinality=func.Cardinality.MANY, data_type=func.DataType.BINARY,
)
def process_order_steps(msgs: typing.List[func.ServiceBusMessage]) -> None:
    if fail:
        raise RuntimeError("store down")
    seen.append([m.message_id for m in msgs])
"""


class FakeReceiver:
    """Hands out the given batches, then nothing; records settlements."""

    def __init__(self, batches: list[list[Received]]) -> None:
        self.batches = list(batches)
        self.asked: list[int] = []
        self.completed: list[str | None] = []
        self.abandoned: list[str | None] = []

    def receive_messages(self, max_message_count: int, max_wait_time: float) -> list[Received]:
        self.asked.append(max_message_count)
        return self.batches.pop(0) if self.batches else []

    def complete_message(self, message: Received) -> None:
        self.completed.append(message.message_id)

    def abandon_message(self, message: Received) -> None:
        self.abandoned.append(message.message_id)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[LocalHost]:
    """A host whose worker (azure-functions-runtime) loaded a scratch batch function."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(SCRATCH_APP)
    (app_dir / "host.json").write_text('{"version": "2.0"}')
    host = LocalHost(
        app_dir,
        settings_path=tmp_path / "none.json",
        settings_overrides={
            "ServiceBusConnection": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=x;"
            "UseDevelopmentEmulator=true"
        },
        configure_logging=False,
        poll_interval=0.05,
    )
    host.prepare()
    host.options = replace(host.options, max_message_batch_size=32)
    yield host
    host.stop()


def _listener(host: LocalHost) -> Listener:
    [listener] = [x for x in host._listeners if x.kind == "servicebus"]
    assert listener.batch and listener.sessions
    return listener


def batch(prefix: str, n: int) -> list[Received]:
    return [Received(message_id=f"{prefix}:{i}", body=f"{prefix}{i}".encode()) for i in range(n)]


def test_each_receive_is_one_invocation_settled_together(host: LocalHost) -> None:
    seen = sys.modules["function_app"].seen
    receiver = FakeReceiver([batch("a", 3), batch("b", 2)])
    reason = host._pump(receiver, _listener(host), 0.2, "cust-a")
    assert reason == "idle"  # released after a receive waited sessionIdleTimeout and got nothing
    assert seen == [["a:0", "a:1", "a:2"], ["b:0", "b:1"]]
    assert receiver.completed == ["a:0", "a:1", "a:2", "b:0", "b:1"] and receiver.abandoned == []
    assert set(receiver.asked) == {32}  # maxMessageBatchSize per receive
    assert host.counters.invocations == 2 and host.counters.completed == 5


def test_a_failed_invocation_abandons_the_whole_batch(host: LocalHost) -> None:
    sys.modules["function_app"].fail.append(True)
    receiver = FakeReceiver([batch("a", 4)])
    host._pump(receiver, _listener(host), 0.1, "cust-a")
    assert receiver.abandoned == ["a:0", "a:1", "a:2", "a:3"] and receiver.completed == []
    assert host.counters.abandoned == 4 and host.counters.failed == 1


@pytest.mark.parametrize("batched, expected", [(True, 1), (False, 16)])
def test_a_batch_function_gets_one_receiver(host: LocalHost, batched: bool, expected: int) -> None:
    listener = _listener(host)
    host.options = replace(host.options, max_concurrent_sessions=16)
    assert host._receivers_for(replace(listener, batch=batched)) == expected
