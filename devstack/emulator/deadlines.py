"""Connection time limits: the protocol header and the open frame must arrive in time, and an open
connection must not go quiet for longer than the idle time-out the emulator advertises.

AMQP 1.0 2.4.5 (idle time-out of a connection): each peer advertises in open the longest gap it accepts
between incoming frames; "If the threshold is exceeded, then a peer SHOULD try to gracefully close the
connection using a close frame with an error explaining why", and a peer with nothing to send keeps its
partner's timer happy with empty frames.

What Service Bus does, and so the defaults here:
* It advertises `idle-time-out` 120000 ms in its open (a QpidJMS frame trace against a Service Bus
  namespace: https://gist.github.com/stliu/8e31f0b3a82e20f391312a622083d9d5, `RECV: Open{...
  idleTimeOut=120000}`).
* Its AMQP stack, Microsoft.Azure.Amqp (Azure/azure-amqp src/AmqpConnection.cs, HeartBeat), closes the
  connection once nothing has been received for longer than its own advertised value, with
  `amqp:connection:forced` and "The connection was inactive for more than the allowed {ms} milliseconds
  and is closed by container '{container-id}'." (the Service Bus AMQP troubleshooting guide quotes this
  message, for the 5-minute no-link case). It sends empty frames at 7/8 of the peer's value; the
  emulator sends them at half, which the spec's advice (advertise half your real threshold) makes safe
  for every peer.
* A connection that has no link for 5 minutes is closed too, `amqp:connection:forced` from container
  'LinkTracker' ("The connection was inactive for more than the allowed 300000 milliseconds and is
  closed by container 'LinkTracker'", quoted in Microsoft's "Troubleshoot AMQP errors in Azure Service
  Bus": "when all links in the connection have been closed because there was no activity (idle) and a
  new link hasn't been created in 5 minutes"), even if it keeps sending empty frames.
* The header and open deadlines have no published Service Bus value; 10 s each is generous for any client
  and still ends connections that never speak (a port scanner, a wrong protocol, a stalled peer).

All of it is configurable (EmulatorServer(deadlines=Deadlines(...))) so tests can use short values.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Deadlines:
    """Time limits for one connection (seconds, except the idle time-out, which AMQP puts in ms)."""

    header_s: float = 10.0
    """From accept until a protocol header has arrived (0: no limit)."""
    open_s: float = 10.0
    """From the first protocol header until the open frame, SASL included (0: no limit)."""
    idle_timeout_ms: int = 120_000
    """Advertised in our open and enforced (0: neither)."""
    no_link_s: float = 300.0
    """An open connection without any link for this long is closed, as Service Bus does (0: never)."""
    close_linger_s: float = 5.0
    """After our error close: how long to keep reading (and discarding) for the peer's close (2.4.3)."""


class Watched(Protocol):
    """What the watchdog needs from a connection."""

    def deadline_expired(self, stage: str, limit_s: float) -> None: ...

    def send_empty_frame(self) -> None: ...


class Watchdog:
    """One timer per connection, re-armed only when it fires (no work per frame beyond a timestamp)."""

    def __init__(self, conn: Watched, deadlines: Deadlines, loop: asyncio.AbstractEventLoop) -> None:
        """Start in the header stage: the peer must send a protocol header within header_s."""
        self.conn = conn
        self.deadlines = deadlines
        self.loop = loop
        self.stage = "header"
        now = time.monotonic()
        self.last_received = now
        self.last_sent = now
        self.peer_idle_s = 0.0
        self.linkless_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._arm(deadlines.header_s or None)

    @property
    def idle_s(self) -> float:
        """Our idle time-out in seconds (0: none)."""
        return self.deadlines.idle_timeout_ms / 1000.0

    def header_received(self) -> None:
        """The first protocol header arrived: now the open frame has open_s to follow."""
        if self.stage == "header":
            self.stage = "open"
            self._arm(self.deadlines.open_s or None)

    def opened(self, peer_idle_ms: int) -> None:
        """The peer's open arrived: enforce our idle time-out and keep the peer's satisfied."""
        self.stage = "opened"
        self.peer_idle_s = peer_idle_ms / 1000.0
        self.last_received = self.linkless_since = time.monotonic()
        self._arm_idle(self.last_received)

    def set_linked(self, linked: bool) -> None:
        """Whether the connection has any link now (checked after each batch of incoming frames)."""
        if linked:
            self.linkless_since = None
        elif self.linkless_since is None:
            self.linkless_since = now = time.monotonic()
            if self.stage == "opened":
                self._arm_idle(now)

    def closing(self) -> None:
        """Our close is written: give the peer close_linger_s to answer before the socket goes."""
        self.stage = "closing"
        self._arm(self.deadlines.close_linger_s or None)

    def stop(self) -> None:
        """The connection is gone."""
        self.stage = "stopped"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, delay: float | None) -> None:
        """Fire after `delay` seconds (at once if it is already due); None: no timer."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None if delay is None else self.loop.call_later(max(delay, 0.0), self._fire)

    def _arm_idle(self, now: float) -> None:
        """Wake at the earlier of: our idle deadline, the moment the peer is owed an empty frame."""
        wakes = []
        if self.idle_s:
            wakes.append(self.last_received + self.idle_s)
        if self.peer_idle_s:
            wakes.append(self.last_sent + self.peer_idle_s / 2)
        if self.deadlines.no_link_s and self.linkless_since is not None:
            wakes.append(self.linkless_since + self.deadlines.no_link_s)
        if not wakes:
            self._arm(None)
            return
        # a few ms late so the comparison below sees the deadline as passed
        self._arm(min(wakes) - now + 0.005)

    def _fire(self) -> None:
        self._timer = None
        stage = self.stage
        if stage in ("header", "open", "closing"):
            limit = {
                "header": self.deadlines.header_s,
                "open": self.deadlines.open_s,
                "closing": self.deadlines.close_linger_s,
            }[stage]
            self.stage = "expired"
            self.conn.deadline_expired(stage, limit)
            return
        if stage != "opened":
            return
        now = time.monotonic()
        if self.idle_s and now - self.last_received > self.idle_s:
            self.stage = "expired"
            self.conn.deadline_expired("idle", self.idle_s)
            return
        no_link_s = self.deadlines.no_link_s
        if no_link_s and self.linkless_since is not None and now - self.linkless_since > no_link_s:
            self.stage = "expired"
            self.conn.deadline_expired("link", no_link_s)
            return
        if self.peer_idle_s and now - self.last_sent >= self.peer_idle_s / 2:
            self.conn.send_empty_frame()
            self.last_sent = now
        self._arm_idle(now)
