"""Loaded (via PYTHONPATH) into every azure-servicebus sample process run by test_sdk_samples.py.

The samples build `ServiceBusClient(FULLY_QUALIFIED_NAMESPACE, credential)` with an Entra ID or SAS
credential; the emulator speaks plain AMQP and is reached through a connection string
(`UseDevelopmentEmulator=true`). So a client built by the constructor, rather than by
`from_connection_string` (which always passes `use_tls`), is pointed at SERVICEBUS_CONNECTION_STR:
the emulator's host:port, its key name/key as an AzureNamedKeyCredential, and no TLS. Nothing else in
the SDK is changed.

An administration client (ServiceBusAdministrationClient, sync and aio) built from a namespace + Entra
ID credential is pointed the same way at SERVICEBUS_ADMIN_ENDPOINT (the emulator's management port) with
the connection string's key; every administration client gets `connection_verify=SERVICEBUS_ADMIN_CA`,
the emulator's CA certificate, as a user would pass it (docs/emulator.md). TLS is not turned off.

SB_SAMPLE_SLEEP_SCALE (e.g. 0.1) shortens the samples' long "application work" sleeps (10 s and more)
so auto_lock_renew fits in CI; the test gives those samples' entities a lock shorter than the
shortened sleep, so lock renewal is still what keeps the locks alive.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


def _redirect(cls: Any) -> None:
    original = cls.__init__
    conn = os.environ["SERVICEBUS_CONNECTION_STR"]
    parts = dict(p.split("=", 1) for p in conn.strip(";").split(";") if "=" in p)
    endpoint = parts["Endpoint"].split("://", 1)[-1].strip("/")

    def __init__(self: Any, fully_qualified_namespace: str, credential: Any, **kwargs: Any) -> None:
        if "use_tls" not in kwargs:
            from azure.core.credentials import AzureNamedKeyCredential

            fully_qualified_namespace = endpoint
            credential = AzureNamedKeyCredential(parts["SharedAccessKeyName"], parts["SharedAccessKey"])
            kwargs["use_tls"] = False
        original(self, fully_qualified_namespace, credential, **kwargs)

    cls.__init__ = __init__


def _redirect_admin(cls: Any, key_credential: Any) -> None:
    original = cls.__init__
    conn = os.environ["SERVICEBUS_CONNECTION_STR"]
    parts = dict(p.split("=", 1) for p in conn.strip(";").split(";") if "=" in p)

    def __init__(self: Any, fully_qualified_namespace: str, credential: Any, **kwargs: Any) -> None:
        if (
            not isinstance(credential, key_credential)
            and type(credential).__name__ != "ServiceBusSASTokenCredential"
        ):
            fully_qualified_namespace = os.environ["SERVICEBUS_ADMIN_ENDPOINT"]
            credential = key_credential(parts["SharedAccessKeyName"], parts["SharedAccessKey"])
        kwargs.setdefault("connection_verify", os.environ["SERVICEBUS_ADMIN_CA"])
        original(self, fully_qualified_namespace, credential, **kwargs)

    cls.__init__ = __init__


def _scale_sleeps(scale: float) -> None:
    sync_sleep, async_sleep = time.sleep, asyncio.sleep

    def sleep(seconds: float) -> None:
        sync_sleep(seconds * scale if seconds >= 10 else seconds)

    async def asleep(seconds: float, result: Any = None) -> Any:
        return await async_sleep(seconds * scale if seconds >= 10 else seconds, result)

    time.sleep = sleep  # type: ignore[assignment]
    asyncio.sleep = asleep  # type: ignore[assignment]


if os.environ.get("SERVICEBUS_CONNECTION_STR"):
    from azure.servicebus import ServiceBusClient
    from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient

    _redirect(ServiceBusClient)
    _redirect(AsyncServiceBusClient)
    if os.environ.get("SERVICEBUS_ADMIN_ENDPOINT"):
        from azure.servicebus._base_handler import ServiceBusSharedKeyCredential
        from azure.servicebus.aio._base_handler_async import (
            ServiceBusSharedKeyCredential as AsyncServiceBusSharedKeyCredential,
        )
        from azure.servicebus.aio.management import ServiceBusAdministrationClient as AsyncAdmin
        from azure.servicebus.management import ServiceBusAdministrationClient

        _redirect_admin(ServiceBusAdministrationClient, ServiceBusSharedKeyCredential)
        _redirect_admin(AsyncAdmin, AsyncServiceBusSharedKeyCredential)
    if os.environ.get("SB_SAMPLE_SLEEP_SCALE"):
        _scale_sleeps(float(os.environ["SB_SAMPLE_SLEEP_SCALE"]))
