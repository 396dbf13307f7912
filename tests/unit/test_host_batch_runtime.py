"""The local host's batch receive loop (cardinality many) without a broker: one invocation per receive with
the whole list, every message completed on success and abandoned on failure, the session released after an
empty receive, and one receiver per batch function (one session at a time per host, as the extension)."""

from __future__ import annotations

import concurrent.futures
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devstack.host.bindings import Listener
from devstack.host.discovery import FunctionSpec
from devstack.host.runtime import LocalHost
from tests.unit.test_host_payload import Received


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


def _host(tmp_path: Path, fn: Any) -> tuple[LocalHost, Listener]:
    host = LocalHost(tmp_path, configure_logging=False, poll_interval=0.05)
    host.options = replace(host.options, max_message_batch_size=32)
    host._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    trigger = {"type": "serviceBusTrigger", "name": "msgs", "cardinality": "many", "dataType": "binary"}
    spec = FunctionSpec(
        name="process_order_step",
        trigger_type="serviceBusTrigger",
        trigger=trigger,
        trigger_arg="msgs",
        bindings=(trigger,),
        user_function=fn,
        takes_context=False,
        is_async=False,
        directory=".",
    )
    return host, Listener(spec, "servicebus", entity="q", sessions=True, batch=True)


def batch(prefix: str, n: int) -> list[Received]:
    return [Received(message_id=f"{prefix}:{i}", body=f"{prefix}{i}".encode()) for i in range(n)]


def test_each_receive_is_one_invocation_settled_together(tmp_path: Path) -> None:
    seen: list[list[str]] = []
    host, listener = _host(tmp_path, lambda msgs: seen.append([m.message_id for m in msgs]))
    receiver = FakeReceiver([batch("a", 3), batch("b", 2)])
    try:
        reason = host._pump(receiver, listener, 0.2, "cust-a")
    finally:
        assert host._pool is not None
        host._pool.shutdown()
    assert reason == "idle"  # released after a receive waited sessionIdleTimeout and got nothing
    assert seen == [["a:0", "a:1", "a:2"], ["b:0", "b:1"]]
    assert receiver.completed == ["a:0", "a:1", "a:2", "b:0", "b:1"] and receiver.abandoned == []
    assert set(receiver.asked) == {32}  # maxMessageBatchSize per receive
    assert host.counters.invocations == 2 and host.counters.completed == 5


def test_a_failed_invocation_abandons_the_whole_batch(tmp_path: Path) -> None:
    def fails(msgs: Any) -> None:
        raise RuntimeError("store down")

    host, listener = _host(tmp_path, fails)
    receiver = FakeReceiver([batch("a", 4)])
    try:
        host._pump(receiver, listener, 0.1, "cust-a")
    finally:
        assert host._pool is not None
        host._pool.shutdown()
    assert receiver.abandoned == ["a:0", "a:1", "a:2", "a:3"] and receiver.completed == []
    assert host.counters.abandoned == 4 and host.counters.failed == 1


@pytest.mark.parametrize("batched, expected", [(True, 1), (False, 16)])
def test_a_batch_function_gets_one_receiver(tmp_path: Path, batched: bool, expected: int) -> None:
    host, listener = _host(tmp_path, lambda msgs: None)
    host.options = replace(host.options, max_concurrent_sessions=16)
    assert host._receivers_for(replace(listener, batch=batched)) == expected
