"""The aio SDK against the emulator, and settlement behaviour across SDK versions.

`-k compat` selects the subset that scripts/ci/emulator_compat.sh runs against azure-servicebus 7.14
(which pre-settles dispositions) as well as the main venv's 7.15 (which waits for the outcome).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient as AsyncClient
from azure.servicebus.exceptions import MessageLockLostError, SessionCannotBeLockedError

from tests.emulator._helpers import client, wait_until


def _awaits_outcome(receiver) -> bool:
    """7.15+ confirms settlements on the link; older SDKs pre-settle and cannot see a rejection."""
    return bool(getattr(receiver, "_await_settlement_outcome", False))


def test_async_session_send_receive_state_and_exclusivity(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)

    async def main() -> None:
        async with AsyncClient.from_connection_string(
            servicebus_emulator.connection_string, retry_total=1
        ) as c:
            async with c.get_queue_sender(q) as s:
                await s.send_messages([ServiceBusMessage(f"m{i}", session_id="async") for i in range(3)])
            async with c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r:
                assert r.session.session_id == "async"
                got: list[Any] = []
                while len(got) < 3:
                    batch = await r.receive_messages(max_message_count=3, max_wait_time=1)
                    assert batch
                    got += batch
                assert [str(m) for m in got] == ["m0", "m1", "m2"]
                await r.abandon_message(got[0])
                for m in got[1:]:
                    await r.complete_message(m)
                await r.session.set_state(b"async-state")
                assert await r.session.get_state() == b"async-state"
                with pytest.raises(SessionCannotBeLockedError):
                    async with c.get_queue_receiver(q, session_id="async", max_wait_time=1) as r2:
                        await r2.receive_messages(max_wait_time=1)
                [again] = await r.receive_messages(max_wait_time=2)
                assert str(again) == "m0" and again.delivery_count == 1
                await r.complete_message(again)

    asyncio.run(main())
    assert servicebus_emulator.counts(q)["total"] == 0


def test_async_dead_letter_and_dlq_receive(servicebus_emulator, fresh_queue):
    q = fresh_queue()

    async def main() -> None:
        async with AsyncClient.from_connection_string(
            servicebus_emulator.connection_string, retry_total=1
        ) as c:
            async with c.get_queue_sender(q) as s:
                await s.send_messages(ServiceBusMessage("x"))
            async with c.get_queue_receiver(q, max_wait_time=2) as r:
                [m] = await r.receive_messages(max_wait_time=2)
                await r.dead_letter_message(m, reason="r", error_description="d")
            async with c.get_queue_receiver(
                q, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=2
            ) as d:
                [dm] = await d.receive_messages(max_wait_time=2)
                assert (dm.dead_letter_reason, dm.dead_letter_error_description) == ("r", "d")
                await d.complete_message(dm)

    asyncio.run(main())
    assert servicebus_emulator.counts(q)["total"] == 0
    assert servicebus_emulator.dead_letter_count(q) == 0


def test_compat_settlements_on_the_receiver_link(servicebus_emulator, fresh_queue):
    """complete/abandon/defer/dead-letter through link dispositions work on every SDK version."""
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(
                [ServiceBusMessage(b, session_id="c") for b in ("done", "again", "defer", "dead")]
            )
        with c.get_queue_receiver(q, session_id="c", max_wait_time=1) as r:
            got: list[Any] = []
            while len(got) < 4:
                batch = r.receive_messages(max_message_count=4, max_wait_time=1)
                assert batch
                got += batch
            done, again, defer, dead = got
            r.complete_message(done)
            r.abandon_message(again)
            r.defer_message(defer)
            r.dead_letter_message(dead, reason="because")
            [redelivered] = r.receive_messages(max_wait_time=2)
            assert str(redelivered) == "again" and redelivered.delivery_count == 1
            r.complete_message(redelivered)
            [deferred] = r.receive_deferred_messages([defer.sequence_number])
            r.complete_message(deferred)
    assert wait_until(lambda: servicebus_emulator.counts(q)["total"] == 0)
    assert servicebus_emulator.dead_letter_count(q) == 1


def test_compat_completing_a_message_whose_lock_was_lost(servicebus_emulator, fresh_queue):
    """7.15 sees the service's rejection (MessageLockLostError); 7.14 pre-settles and cannot."""
    q = fresh_queue(lock_duration="PT30S")
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("x"))
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            [m] = r.receive_messages(max_wait_time=2)
            servicebus_emulator.expire_locks(q)  # server-side expiry; the client still thinks it holds it
            if _awaits_outcome(r):
                with pytest.raises(MessageLockLostError):
                    r.complete_message(m)
            else:
                r.complete_message(m)  # fire-and-forget: the service drops it silently
            # either way the message was not completed: it is redelivered
            [again] = r.receive_messages(max_wait_time=2)
            assert again.sequence_number == m.sequence_number
            assert again.delivery_count == 1
            r.complete_message(again)
    assert servicebus_emulator.counts(q)["total"] == 0
