"""Shared helpers for the emulator conformance suite."""

from __future__ import annotations

import time
from collections.abc import Callable

from azure.servicebus import ServiceBusClient


def client(conn_str: str) -> ServiceBusClient:
    """A client with fast retries so failing paths don't stall the suite."""
    return ServiceBusClient.from_connection_string(conn_str, retry_total=1, retry_backoff_factor=0.1)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll until predicate() is true (pytest-timeout friendly, no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
