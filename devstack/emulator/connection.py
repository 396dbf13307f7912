"""One AMQP 1.0 connection: SASL, open/begin/attach, transfers, flow and dispositions.

Implemented as an asyncio.Protocol (callback based, no per-frame coroutine) because the emulator's
throughput is dominated by per-frame overhead. Outgoing frames are buffered and written once per
batch of input, after the store has committed (so a send is durable before it is acknowledged).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from . import frames
from .broker import (
    INTERNAL_ERROR,
    NOT_ALLOWED,
    TIMEOUT,
    BrokerError,
    Queue,
    Session,
)
from .codec import Array, DecodeError, Described, Long, Symbol, UByte, UInt, ULong, UShort
from .deadlines import Deadlines, Watchdog
from .frames import field
from .inbound import (
    CONNECTION_FORCED,
    FRAMING_ERROR,
    ILLEGAL_STATE,
    ProtocolError,
    check_performative,
    read_frame_header,
)
from .limits import MESSAGE_SIZE_EXCEEDED, RESOURCE_LIMIT_EXCEEDED
from .message import Message, MessageError, parse_message, split_batch
from .outcomes import dead_letter_fields, property_changes

if TYPE_CHECKING:
    from .broker import Broker
    from .limits import Limits

log = logging.getLogger("devstack.emulator")

SESSION_FILTER = "com.microsoft:session-filter"
LOCKED_UNTIL_UTC = "com.microsoft:locked-until-utc"
LINK_TIMEOUT = "com.microsoft:timeout"
DATETIMEOFFSET_EPOCH = 621355968000000000
CHANNEL_MAX = 8191
MAX_MESSAGE = 100 * 1024 * 1024
WINDOW = 2**31 - 1
SENDER_CREDIT = 2000
DEFAULT_SESSION_WAIT_S = 60.0


def ticks_from_ms(ms: int) -> int:
    """.NET DateTime ticks, the unit of com.microsoft:locked-until-utc."""
    return ms * 10000 + DATETIMEOFFSET_EPOCH


def entity_from_address(address: Any) -> str:
    """'amqps://host:port/q/$management' -> 'q/$management'; plain names pass through."""
    a = str(address or "")
    if "://" in a:
        a = a.split("://", 1)[1]
        a = a.split("/", 1)[1] if "/" in a else ""
    return a.strip("/")


class AmqpSession:
    """An AMQP session (channel pair) and its links."""

    def __init__(self, conn: Connection, channel: int, remote_channel: int, next_incoming_id: int) -> None:
        """Session bookkeeping: transfer ids and unsettled outgoing deliveries."""
        self.conn = conn
        self.channel = channel
        self.remote_channel = remote_channel
        self.next_incoming_id = next_incoming_id
        self.next_outgoing_id = 0
        self.next_delivery_id = 0
        self.links_in: dict[int, Link] = {}  # by remote handle
        self.links_out: dict[int, Link] = {}  # by local handle
        self.unsettled: dict[int, tuple[OutgoingLink, uuid.UUID]] = {}
        self._handles = 0

    def new_handle(self) -> int:
        """Allocate a local link handle."""
        h = self._handles
        self._handles += 1
        return h

    def send_flow(self, link: Link | None = None, *, drain: bool | None = None) -> None:
        """Session (and optionally link) flow state."""
        fields: list[Any] = [
            UInt(self.next_incoming_id),
            UInt(WINDOW),
            UInt(self.next_outgoing_id),
            UInt(WINDOW),
        ]
        if link is not None:
            fields += [UInt(link.handle), UInt(link.delivery_count), UInt(max(link.credit, 0)), None, drain]
        self.conn.send(self.channel, frames.FLOW, fields)


class Link:
    """Common link state."""

    def __init__(self, session: AmqpSession, name: str, remote_handle: int, attach: list[Any]) -> None:
        """Capture what the peer asked for."""
        self.session = session
        self.conn = session.conn
        self.name = name
        self.remote_handle = remote_handle
        self.handle = session.new_handle()
        self.attach_fields = attach
        self.delivery_count = 0
        self.credit = 0
        self.closed = False
        self.max_message_size = MAX_MESSAGE  # an entity's sender link gets its tier's size (limits.py)

    def reply_attach(
        self, *, role: bool, source: Any, target: Any, properties: dict[Any, Any] | None = None
    ) -> None:
        """Answer the peer's attach."""
        a = self.attach_fields
        self.conn.send(
            self.session.channel,
            frames.ATTACH,
            [
                self.name,
                UInt(self.handle),
                role,
                field(a, 3),
                field(a, 4),
                source,
                target,
                None,
                None,
                UInt(0) if role == frames.ROLE_SENDER else None,
                ULong(self.max_message_size),
                None,
                None,
                properties,
            ],
        )

    def detach(self, error: Described | None = None) -> None:
        """Close the link from our side."""
        if self.closed:
            return
        self.closed = True
        self.conn.send(self.session.channel, frames.DETACH, [UInt(self.handle), True, error])
        self.on_closed()

    def on_closed(self) -> None:
        """Subclass hook: release broker resources."""


class IncomingLink(Link):
    """Client sender -> us. Target is an entity, $cbs or a $management node."""

    def __init__(self, session: AmqpSession, name: str, remote_handle: int, attach: list[Any]) -> None:
        """Track partial (multi-frame) deliveries."""
        super().__init__(session, name, remote_handle, attach)
        self.address = entity_from_address(_addr(field(attach, 6)))
        self.queue: Queue | None = None
        self.partial = bytearray()
        self.partial_id: int | None = None
        self.partial_settled = False
        self.partial_format = 0


class OutgoingLink(Link):
    """Us -> client receiver: a queue consumer, or the response side of $cbs/$management."""

    def __init__(self, session: AmqpSession, name: str, remote_handle: int, attach: list[Any]) -> None:
        """Consumer state used by the broker (credit, settle mode, session)."""
        super().__init__(session, name, remote_handle, attach)
        source = field(attach, 5)
        self.source_fields: list[Any] = list(source.value) if isinstance(source, Described) else []
        self.address = entity_from_address(field(self.source_fields, 0))
        self.receive_and_delete = field(attach, 3) == 1
        self.queue: Queue | None = None
        self.session_id: str | None = None
        self.bsession: Session | None = None
        self.is_consumer = False
        self.waiter: Any = None
        self.timer: asyncio.TimerHandle | None = None

    # broker.Consumer protocol
    def deliver(self, message: Message, lock_token: uuid.UUID | None, locked_until_ms: int | None) -> None:
        """Send one message as a transfer (split to the peer's max frame size)."""
        self.credit -= 1
        self.delivery_count += 1
        payload = message.encode(lock_token=lock_token, locked_until_ms=locked_until_ms)
        token = lock_token or uuid.uuid4()
        s = self.session
        delivery_id = s.next_delivery_id
        s.next_delivery_id += 1
        settled = lock_token is None
        if not settled:
            s.unsettled[delivery_id] = (self, token)
        self.conn.send_transfer(s, self.handle, delivery_id, token.bytes_le, settled, payload)

    def session_lost(self) -> None:
        """The session lock expired: detach like the service does."""
        self.detach(
            frames.amqp_error(
                "com.microsoft:session-lock-lost",
                "The session lock has expired on the MessageSession. Accept a new MessageSession.",
            )
        )

    def on_closed(self) -> None:
        """Release the session and drop our unsettled deliveries."""
        if self.timer is not None:
            self.timer.cancel()
        if self.waiter is not None:
            self.waiter.done = True
        if self.queue is not None and self.is_consumer:
            self.queue.remove_consumer(self)
        for did in [d for d, (lk, _) in self.session.unsettled.items() if lk is self]:
            del self.session.unsettled[did]


def _addr(terminus: Any) -> Any:
    if isinstance(terminus, Described) and isinstance(terminus.value, list):
        return field(terminus.value, 0)
    return None


class RequestHandler(Protocol):
    """The $management node (management.py) as a connection hands it requests."""

    def handle_request(
        self, conn: Connection, s: AmqpSession, link: IncomingLink, payload: bytes
    ) -> None: ...


class ConnectionOwner(Protocol):
    """What a connection uses of the server that accepted it (server.ServerCore). A protocol, so this
    module does not import server.py, which imports it."""

    connections: set[Connection]
    dirty: set[Connection]
    deadlines: Deadlines

    @property
    def broker(self) -> Broker: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def management(self) -> RequestHandler: ...

    def flush(self) -> None: ...

    def note_durable_write(self) -> None: ...


class Connection(asyncio.Protocol):
    """Server side of one client connection.

    Phases: "header" (nothing yet) -> "sasl" -> "amqp-header" (SASL done, AMQP header expected) ->
    "open" (AMQP headers exchanged, the peer's open expected) -> "opened". `closed` means nothing more is
    written: after an error close the connection discards input until the peer hangs up or the linger
    deadline passes (AMQP 1.0 2.4.3, the DISCARDING state of 2.4.6).
    """

    def __init__(self, core: ConnectionOwner) -> None:
        """Start in the protocol-header phase."""
        self.core = core
        self.broker = core.broker
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.phase = "header"
        self.out: list[bytes] = []
        self.sessions: dict[int, AmqpSession] = {}  # by remote channel
        self.by_local: dict[int, AmqpSession] = {}
        self.max_frame = 512
        self.remote_idle_ms = 0
        self.container_id = "servicebus-emulator-" + uuid.uuid4().hex[:8]
        self.open_sent = False
        self.closed = False
        self.peer = ""
        self.watchdog: Watchdog | None = None

    # ------------------------------------------------------------------ asyncio hooks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport, register with the server and start the header deadline."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        self.core.connections.add(self)
        self.watchdog = Watchdog(self, self.core.deadlines, asyncio.get_running_loop())

    def connection_lost(self, exc: Exception | None) -> None:
        """Release every link's broker resources."""
        self.closed = True
        self.core.connections.discard(self)
        if self.watchdog is not None:
            self.watchdog.stop()
        self._release_sessions()

    def data_received(self, data: bytes) -> None:
        """Parse as many complete frames as the buffer holds, then commit and write once."""
        if self.closed:
            return  # DISCARDING (2.4.6): input after our close is dropped unread
        self.buf += data
        try:
            self._process()
        except ProtocolError as exc:
            log.warning("protocol error from %s: %s", self.peer, exc)
            self.close_with_error(exc.condition, exc.description)
        except DecodeError as exc:
            log.warning("undecodable frame from %s: %s", self.peer, exc)
            self.close_with_error(exc.condition, exc.description)
        except Exception:
            # a bug in a handler, not the peer's fault: log it, and still end the connection the AMQP way
            log.exception("internal error handling a frame from %s", self.peer)
            self.close_with_error("amqp:internal-error", "The emulator failed to process a frame.")
        self.core.flush()

    # ------------------------------------------------------------------ output
    def send(
        self, channel: int, performative: int, fields: list[Any], payload: bytes = b"", ftype: int = 0
    ) -> None:
        """Queue a frame for writing (flushed by the server after each batch)."""
        if self.closed:
            return
        self.out.append(frames.build_frame(channel, performative, fields, payload, ftype))
        self.core.dirty.add(self)

    def send_transfer(
        self, s: AmqpSession, handle: int, delivery_id: int, tag: bytes, settled: bool, payload: bytes
    ) -> None:
        """A delivery, split into several frames when larger than the peer allows."""
        fields: list[Any] = [UInt(handle), UInt(delivery_id), tag, UInt(0), settled, False]
        overhead = 64
        room = self.max_frame - overhead
        if len(payload) <= room:
            s.next_outgoing_id += 1
            self.send(s.channel, frames.TRANSFER, fields, payload)
            return
        pos = 0
        n = len(payload)
        first = True
        while pos < n:
            chunk = payload[pos : pos + room]
            pos += len(chunk)
            more = pos < n
            if first:
                f: list[Any] = [UInt(handle), UInt(delivery_id), tag, UInt(0), settled, more]
                first = False
            else:
                f = [UInt(handle), None, None, None, None, more]
            s.next_outgoing_id += 1
            self.send(s.channel, frames.TRANSFER, f, chunk)

    def flush(self) -> None:
        """Write everything queued."""
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
            if self.watchdog is not None:
                self.watchdog.last_sent = time.monotonic()
        self.out.clear()

    def send_empty_frame(self) -> None:
        """Keep the peer's idle timer happy (2.4.5: an empty frame, channel 0)."""
        if not self.closed and self.transport is not None:
            self.transport.write(frames.EMPTY_FRAME)

    def deadline_expired(self, stage: str, limit_s: float) -> None:
        """The watchdog's verdict: no header, no open, an idle peer, or no answer to our close."""
        if stage == "closing":
            # the peer never hung up: close (abort if our close frame is still stuck in the buffer)
            if self.transport is not None:
                if self.transport.get_write_buffer_size():
                    self.transport.abort()
                else:
                    self.transport.close()
            return
        log.info("closing connection from %s: no %s within %.3g s", self.peer, stage, limit_s)
        if stage in ("idle", "link"):
            # Service Bus's wording and condition (Microsoft.Azure.Amqp AmqpConnection.HeartBeat; the
            # no-link close comes from its 'LinkTracker')
            container = self.container_id if stage == "idle" else "LinkTracker"
            self.close_with_error(
                CONNECTION_FORCED,
                f"The connection was inactive for more than the allowed {round(limit_s * 1000)} milliseconds "
                f"and is closed by container '{container}'.",
            )
        elif stage == "open":
            self.close_with_error(
                CONNECTION_FORCED, f"No open frame was received within {limit_s:g} s of the protocol header."
            )
        else:
            self.close_with_error(CONNECTION_FORCED, f"No protocol header was received within {limit_s:g} s.")
        self.core.flush()

    def close_with_error(self, condition: str, description: str) -> None:
        """End the connection because of an error, the way AMQP 1.0 2.4.3 asks.

        Once the AMQP headers are exchanged, the peer gets our open (2.4.1: open comes before any other
        frame) if not sent yet, then a close carrying the error, which is the last thing written; the
        write side is shut and input discarded until the peer hangs up or the linger deadline passes.
        Before that (no header yet, or during SASL) there is no AMQP frame we may send: the socket is
        closed after whatever is queued (a protocol header reply).
        """
        if self.closed:
            return
        if self.phase in ("open", "opened"):
            if not self.open_sent:
                self._send_open()
            self.send(0, frames.CLOSE, [frames.amqp_error(condition, description)])
        self.flush()
        self.closed = True
        self._release_sessions()
        transport = self.transport
        if transport is None:
            return
        if self.phase in ("open", "opened") and transport.can_write_eof():
            transport.write_eof()
            if self.watchdog is not None:
                self.watchdog.closing()
        else:
            transport.close()

    def _release_sessions(self) -> None:
        """Give every link's broker resources back (consumers, session locks, unsettled deliveries)."""
        for s in list(self.sessions.values()):
            self._end_session(s)
        self.sessions.clear()
        self.by_local.clear()

    # ------------------------------------------------------------------ input
    def _process(self) -> None:
        buf = self.buf
        pos = 0
        frames_seen = 0
        try:
            while not self.closed:
                if self.phase in ("header", "amqp-header"):
                    if len(buf) - pos < 8:
                        break
                    header = bytes(buf[pos : pos + 8])
                    pos += 8
                    self._on_header(header)
                    continue
                if len(buf) - pos < 8:
                    break
                # our own limit from the first frame on: nothing larger may arrive (2.7.1 max-frame-size)
                head = read_frame_header(buf, pos, self.core.limits.max_frame_bytes)  # the tier's
                if len(buf) - pos < head.size:
                    break
                body = bytes(buf[pos + head.doff * 4 : pos + head.size])
                pos += head.size
                frames_seen += 1
                self._on_frame_bytes(head.type, head.channel, body)
        finally:
            del buf[:pos]
            if frames_seen and self.watchdog is not None:
                self.watchdog.last_received = time.monotonic()
                if self.phase == "opened":
                    self.watchdog.set_linked(any(s.links_in for s in self.sessions.values()))

    def _on_frame_bytes(self, ftype: int, channel: int, body: bytes) -> None:
        """One complete frame: check it fits the phase, decode and check the performative, dispatch."""
        sasl_phase = self.phase == "sasl"
        if (ftype == frames.FRAME_SASL) != sasl_phase:
            if sasl_phase:
                raise ProtocolError(FRAMING_ERROR, "An AMQP frame arrived during SASL negotiation.")
            raise ProtocolError(ILLEGAL_STATE, "A SASL frame arrived outside SASL negotiation.")
        if not body:
            return  # an empty frame: only keeps the idle timer happy (2.4.5)
        if channel > CHANNEL_MAX:
            raise ProtocolError(
                FRAMING_ERROR, f"Channel {channel} is outside the supported range (0-{CHANNEL_MAX})."
            )
        code, fields_, poff = frames.parse_frame_body(body)
        check_performative(ftype, code, fields_)
        if ftype == frames.FRAME_SASL:
            self._on_sasl(code, fields_)
            return
        if self.phase == "open" and code != frames.OPEN:
            raise ProtocolError(ILLEGAL_STATE, "The first frame on a connection must be open.")
        if self.phase == "opened" and code == frames.OPEN:
            raise ProtocolError(ILLEGAL_STATE, "A second open frame arrived on an open connection.")
        self._on_frame(channel, code, fields_, body, poff)

    def _on_header(self, header: bytes) -> None:
        if self.watchdog is not None:
            self.watchdog.header_received()
        if header == frames.SASL_HEADER and self.phase == "header":
            self.out.append(frames.SASL_HEADER)
            mechs = Array(
                [Symbol("MSSBCBS"), Symbol("ANONYMOUS"), Symbol("PLAIN"), Symbol("EXTERNAL")], Symbol
            )
            self.send(0, frames.SASL_MECHANISMS, [mechs], ftype=frames.FRAME_SASL)
            self.phase = "sasl"
        elif header == frames.AMQP_HEADER:
            self.out.append(frames.AMQP_HEADER)
            self.core.dirty.add(self)
            self.phase = "open"
        else:
            # AMQP 1.0 2.2: "If the requested protocol version is not supported, the server MUST send a
            # protocol header with a supported protocol version and then close the socket."
            log.info("unsupported protocol header from %s; answering with ours and closing", self.peer)
            self.out.append(frames.SASL_HEADER if self.phase == "header" else frames.AMQP_HEADER)
            self.close_with_error(FRAMING_ERROR, "unsupported protocol header")

    def _on_sasl(self, code: int, fields_: list[Any]) -> None:
        if code == frames.SASL_INIT:
            # any mechanism is accepted: the emulator does not authenticate
            self.send(0, frames.SASL_OUTCOME, [UByte(0)], ftype=frames.FRAME_SASL)
            self.phase = "amqp-header"

    def _on_frame(self, channel: int, code: int, f: list[Any], body: bytes, poff: int) -> None:
        if code == frames.TRANSFER:
            s = self.sessions.get(channel)
            if s is not None:
                self._on_transfer(s, f, body[poff:])
            return
        if code == frames.DISPOSITION:
            s = self.sessions.get(channel)
            if s is not None:
                self._on_disposition(s, f)
            return
        if code == frames.FLOW:
            s = self.sessions.get(channel)
            if s is not None:
                self._on_flow(s, f)
            return
        if code == frames.OPEN:
            self._on_open(f)
        elif code == frames.BEGIN:
            self._on_begin(channel, f)
        elif code == frames.ATTACH:
            s = self.sessions.get(channel)
            if s is not None:
                self._on_attach(s, f)
        elif code == frames.DETACH:
            s = self.sessions.get(channel)
            if s is not None:
                self._on_detach(s, f)
        elif code == frames.END:
            s = self.sessions.pop(channel, None)
            if s is not None:
                self._end_session(s)
                self.by_local.pop(s.channel, None)
                self.send(s.channel, frames.END, [])
        elif code == frames.CLOSE:
            self._release_sessions()
            self.send(0, frames.CLOSE, [])
            self.flush()
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def _on_open(self, f: list[Any]) -> None:
        max_frame = self.core.limits.max_frame_bytes
        self.max_frame = min(int(field(f, 2, 4294967295)), max_frame)
        self.remote_idle_ms = int(field(f, 4, 0) or 0)
        self.phase = "opened"
        self._send_open(field(f, 1))
        if self.watchdog is not None:
            self.watchdog.opened(self.remote_idle_ms)

    def _send_open(self, hostname: Any = None) -> None:
        idle_ms = self.core.deadlines.idle_timeout_ms
        tier_frame = self.core.limits.max_frame_bytes
        self.open_sent = True
        self.send(
            0,
            frames.OPEN,
            [
                self.container_id,
                hostname,
                # the tier's frame size (limits), and no larger than the client's own: uamqp splits transfers
                # to the peer's max-frame-size but its encoder refuses frames above its own (65536). Before
                # the peer's open (an error close), the tier's.
                UInt(max(self.max_frame, 512) if self.phase == "opened" else tier_frame),
                UShort(CHANNEL_MAX),
                UInt(idle_ms) if idle_ms else None,
            ],
        )
        if len(self.core.connections) > self.core.limits.max_connections:  # this one included
            self.close_with_error(
                RESOURCE_LIMIT_EXCEEDED,
                f"Cannot open more than {self.core.limits.max_connections} concurrent connections "
                "to the namespace (QuotaExceeded).",
            )

    def _on_begin(self, channel: int, f: list[Any]) -> None:
        if channel in self.sessions:
            raise ProtocolError(NOT_ALLOWED, f"Channel {channel} already carries a session.")
        local = 0
        while local in self.by_local:
            local += 1
        s = AmqpSession(self, local, channel, int(field(f, 1, 0)))
        self.sessions[channel] = s
        self.by_local[local] = s
        self.send(
            local,
            frames.BEGIN,
            [UShort(channel), UInt(0), UInt(WINDOW), UInt(WINDOW), UInt(2**32 - 1)],
        )

    def end_session_with_error(self, s: AmqpSession, condition: str, description: str) -> None:
        """End one session from our side with an error (the connection stays open)."""
        self.sessions.pop(s.remote_channel, None)
        self.by_local.pop(s.channel, None)
        self._end_session(s)
        self.send(s.channel, frames.END, [frames.amqp_error(condition, description)])

    def _end_session(self, s: AmqpSession) -> None:
        for link in list(s.links_in.values()):
            if not link.closed:
                link.closed = True
                link.on_closed()
        s.links_in.clear()

    # ------------------------------------------------------------------ attach/detach
    def _on_attach(self, s: AmqpSession, f: list[Any]) -> None:
        name = str(field(f, 0, ""))
        remote_handle = int(field(f, 1, 0))
        role = bool(field(f, 2, False))
        if remote_handle in s.links_in:
            # AMQP 1.0 2.8.17 session error: "An attach was received using a handle that is already in
            # use for an attached link."
            self.end_session_with_error(
                s, "amqp:session:handle-in-use", f"Handle {remote_handle} is already in use on this session."
            )
            return
        if role == frames.ROLE_RECEIVER:
            out = OutgoingLink(s, name, remote_handle, f)
            s.links_in[remote_handle] = out
            s.links_out[out.handle] = out
            self._attach_outgoing(out)
        else:
            inc = IncomingLink(s, name, remote_handle, f)
            s.links_in[remote_handle] = inc
            s.links_out[inc.handle] = inc
            self._attach_incoming(inc)

    def _reject_link(self, link: Link, role: bool, condition: str, description: str) -> None:
        # spec-style refusal: the terminus we would own is null, then a detach carries the error
        a = link.attach_fields
        if role == frames.ROLE_SENDER:
            link.reply_attach(role=role, source=None, target=field(a, 6))
        else:
            link.reply_attach(role=role, source=field(a, 5), target=None)
        link.detach(frames.amqp_error(condition, description))

    def _attach_incoming(self, link: IncomingLink) -> None:
        addr = link.address
        a = link.attach_fields
        if addr != "$cbs" and not addr.lower().endswith("$management"):
            try:
                q = self.broker.resolve(addr)
            except BrokerError as e:
                self._reject_link(link, frames.ROLE_RECEIVER, e.condition, e.description)
                return
            if q.is_dlq or q.kind == "subscription":
                what = "a dead-letter queue" if q.is_dlq else "a subscription (send to its topic)"
                self._reject_link(link, frames.ROLE_RECEIVER, NOT_ALLOWED, f"Cannot send to {what}.")
                return
            link.queue = q
            link.max_message_size = self.core.limits.message_bytes_for(q.props.max_message_size_kib)
        link.reply_attach(role=frames.ROLE_RECEIVER, source=field(a, 5), target=field(a, 6))
        link.credit = SENDER_CREDIT
        link.delivery_count = int(field(a, 9, 0))
        link.session.send_flow(link)

    def _attach_outgoing(self, link: OutgoingLink) -> None:
        addr = link.address
        a = link.attach_fields
        if addr == "$cbs" or addr.lower().endswith("$management"):
            link.reply_attach(role=frames.ROLE_SENDER, source=field(a, 5), target=field(a, 6))
            return
        try:
            q = self.broker.resolve(addr)
        except BrokerError as e:
            self._reject_link(link, frames.ROLE_SENDER, e.condition, e.description)
            return
        if q.kind == "topic":
            self._reject_link(
                link,
                frames.ROLE_SENDER,
                NOT_ALLOWED,
                "Cannot receive from a topic; receive from one of its subscriptions "
                "('<topic>/Subscriptions/<name>').",
            )
            return
        link.queue = q
        filters = field(link.source_fields, 7)
        has_filter = isinstance(filters, dict) and SESSION_FILTER in filters
        if q.requires_session and not has_filter:
            self._reject_link(
                link,
                frames.ROLE_SENDER,
                NOT_ALLOWED,
                "It is not possible for an entity that requires sessions to create a non-sessionful message "
                "receiver.",
            )
            return
        if has_filter and not q.requires_session:
            self._reject_link(
                link,
                frames.ROLE_SENDER,
                NOT_ALLOWED,
                "It is not possible for an entity that does not require sessions to create a sessionful "
                "message receiver.",
            )
            return
        if not has_filter:
            link.is_consumer = True
            link.reply_attach(role=frames.ROLE_SENDER, source=field(a, 5), target=field(a, 6))
            q.add_consumer(link)
            return
        assert isinstance(filters, dict)
        wanted = filters.get(SESSION_FILTER)
        if isinstance(wanted, Described):
            wanted = wanted.value
        sid = None if wanted is None else str(wanted)
        try:
            session = q.acquire_session(link, sid)
        except BrokerError as e:
            self._reject_link(link, frames.ROLE_SENDER, e.condition, e.description)
            return
        if session is not None:
            self._session_acquired(link, session)
            return
        props = field(a, 13, {})
        timeout_ms = props.get(LINK_TIMEOUT) if isinstance(props, dict) else None
        wait_s = (
            timeout_ms / 1000.0 if isinstance(timeout_ms, int) and timeout_ms > 0 else DEFAULT_SESSION_WAIT_S
        )

        def on_session(found: Session) -> bool:
            # the broker has locked `found` to this link; refuse it if the link (or the whole
            # connection) is already going away, so the broker passes it on instead of stranding it
            if link.timer is not None:
                link.timer.cancel()
            link.waiter = None
            if link.closed or self.closed:
                return False
            self._session_acquired(link, found)
            self.core.flush()
            return True

        def on_timeout() -> None:
            w = link.waiter
            if w is None or w.done or link.closed:
                return
            w.done = True
            link.waiter = None
            self._reject_link(
                link,
                frames.ROLE_SENDER,
                TIMEOUT,
                "The operation did not complete within the allocated time for obtaining a session.",
            )
            self.core.flush()

        link.waiter = q.wait_for_session(link, on_session)
        link.timer = asyncio.get_running_loop().call_later(wait_s, on_timeout)

    def _session_acquired(self, link: OutgoingLink, session: Session) -> None:
        q = link.queue
        assert q is not None
        link.session_id = session.id
        link.bsession = session
        link.is_consumer = True
        src = frames.pad(list(link.source_fields), 11)
        filters = dict(src[7]) if isinstance(src[7], dict) else {}
        filters[Symbol(SESSION_FILTER)] = session.id
        src[7] = filters
        link.reply_attach(
            role=frames.ROLE_SENDER,
            source=Described(frames.SOURCE, src),
            target=field(link.attach_fields, 6),
            properties={Symbol(LOCKED_UNTIL_UTC): Long(ticks_from_ms(session.locked_until_ms))},
        )
        q.pump_session(session)

    def _on_detach(self, s: AmqpSession, f: list[Any]) -> None:
        handle = int(field(f, 0, 0))
        link = s.links_in.pop(handle, None)
        if link is None:
            return
        s.links_out.pop(link.handle, None)
        if not link.closed:
            link.closed = True
            self.send(s.channel, frames.DETACH, [UInt(link.handle), True])
            link.on_closed()

    # ------------------------------------------------------------------ flow
    def _on_flow(self, s: AmqpSession, f: list[Any]) -> None:
        handle = field(f, 4)
        if handle is None:
            return
        link = s.links_in.get(int(handle))
        if not isinstance(link, OutgoingLink) or link.closed:
            return
        rcv_count = field(f, 5)
        credit = int(field(f, 6, 0))
        if rcv_count is None:
            rcv_count = 0
        link.credit = int(rcv_count) + credit - link.delivery_count
        drain = bool(field(f, 8, False))
        q = link.queue
        if q is not None and link.is_consumer:
            q.credit_changed(link, link.session_id)
        if drain and link.credit > 0:
            link.delivery_count += link.credit
            link.credit = 0
            s.send_flow(link, drain=True)
        elif bool(field(f, 9, False)):
            s.send_flow(link)

    # ------------------------------------------------------------------ transfers from clients
    def _on_transfer(self, s: AmqpSession, f: list[Any], payload: bytes) -> None:
        s.next_incoming_id += 1
        link = s.links_in.get(int(field(f, 0, 0)))
        if not isinstance(link, IncomingLink) or link.closed:
            return
        delivery_id = field(f, 1)
        if delivery_id is not None and link.partial_id is None:
            link.partial_id = int(delivery_id)
            link.partial_settled = bool(field(f, 4, False))
            link.partial_format = int(field(f, 3, 0))
        if field(f, 9, False):  # aborted
            link.partial.clear()
            link.partial_id = None
            return
        if field(f, 5, False):  # more
            link.partial += payload
            return
        if link.partial:
            link.partial += payload
            payload = bytes(link.partial)
            link.partial.clear()
        did = link.partial_id
        settled = link.partial_settled
        fmt = link.partial_format
        link.partial_id = None
        link.credit -= 1
        link.delivery_count += 1
        if link.credit < SENDER_CREDIT // 2 and not link.closed:
            link.credit = SENDER_CREDIT
            s.send_flow(link)
        if link.queue is not None:
            state = self._accept_message(link, payload, fmt)
            if not settled and did is not None:
                self.send(s.channel, frames.DISPOSITION, [frames.ROLE_RECEIVER, UInt(did), None, True, state])
            return
        # $cbs or $management request
        if not settled and did is not None:
            self.send(
                s.channel,
                frames.DISPOSITION,
                [frames.ROLE_RECEIVER, UInt(did), None, True, frames.outcome(frames.ACCEPTED)],
            )
        self.core.management.handle_request(self, s, link, payload)

    def _accept_message(self, link: IncomingLink, payload: bytes, fmt: int) -> Described:
        q = link.queue
        assert q is not None
        try:
            if len(payload) > (limit := self._transfer_limit(link, fmt)):
                raise BrokerError(
                    MESSAGE_SIZE_EXCEEDED,
                    f"The received message (size:{len(payload)} bytes) exceeds the limit ({limit} bytes) "
                    "currently allowed on the link.",
                )
            self._check_entity_size(q, len(payload))
            if fmt == frames.BATCH_MESSAGE_FORMAT:
                parts = split_batch(payload)
                if not parts:
                    raise MessageError("empty batch")
                msgs = [parse_message(p) for p in parts]
            else:
                msgs = [parse_message(payload)]
            for m in msgs:
                q.enqueue(m)
        except BrokerError as e:
            return frames.outcome(frames.REJECTED, [frames.amqp_error(e.condition, e.description)])
        except (MessageError, DecodeError) as e:
            return frames.outcome(frames.REJECTED, [frames.amqp_error("amqp:decode-error", str(e))])
        self.core.note_durable_write()
        return frames.outcome(frames.ACCEPTED)

    def _check_entity_size(self, q: Queue, incoming: int) -> None:
        """MaxSizeInMegabytes (the tier's default when unset): a full entity refuses sends with
        QuotaExceeded (amqp:resource-limit-exceeded -> the SDK's ServiceBusQuotaExceededError)."""
        limit = (q.props.max_size_mb or self.core.limits.default_entity_size_mb) * 1024 * 1024
        size = q.stored_bytes()
        if size + incoming > limit:
            raise BrokerError(
                RESOURCE_LIMIT_EXCEEDED,
                f"The maximum entity size has been reached or exceeded for {q.kind.capitalize()}: "
                f"'{q.name}'. Size of entity in bytes:{size}, Max entity size in bytes: {limit}. "
                "QuotaType: EntitySize (QuotaExceeded).",
            )

    def _transfer_limit(self, link: IncomingLink, fmt: int) -> int:
        """A single message may be as large as the link's max-message-size; a batch transfer also stays
        within the tier's batch size (Premium: 1 MiB whatever the entity's message size)."""
        if fmt == frames.BATCH_MESSAGE_FORMAT:
            return min(link.max_message_size, self.core.limits.max_batch_bytes)
        return link.max_message_size

    # ------------------------------------------------------------------ dispositions from clients
    def _on_disposition(self, s: AmqpSession, f: list[Any]) -> None:
        if not field(f, 0, False):  # role must be receiver (the client settles our deliveries)
            return
        first = int(field(f, 1, 0))
        last = int(field(f, 2, first))
        settled = bool(field(f, 3, False))
        state = field(f, 4)
        code = frames.describe_descriptor(state)
        # bounded work whatever the range says: a huge range only touches deliveries that exist
        ids: Any = range(first, last + 1)
        if last - first > 1024:
            ids = sorted(d for d in s.unsettled if first <= d <= last)
        for did in ids:
            entry = s.unsettled.pop(did, None)
            if entry is None:
                if not settled:
                    # unknown delivery: report it as a lost lock so awaiting clients fail fast
                    err = frames.amqp_error(
                        "com.microsoft:message-lock-lost", "The lock supplied is invalid or has expired."
                    )
                    self.send(
                        s.channel,
                        frames.DISPOSITION,
                        [frames.ROLE_SENDER, UInt(did), None, True, frames.outcome(frames.REJECTED, [err])],
                    )
                continue
            link, token = entry
            reply = self._settle(link, token, code, state)
            if not settled:
                self.send(s.channel, frames.DISPOSITION, [frames.ROLE_SENDER, UInt(did), None, True, reply])

    def _settle(self, link: OutgoingLink, token: uuid.UUID, code: int, state: Any) -> Described:
        q = link.queue
        if q is None:
            return frames.outcome(frames.REJECTED, [frames.amqp_error(INTERNAL_ERROR, "no queue")])
        fields_ = state.value if isinstance(state, Described) and isinstance(state.value, list) else []
        try:
            if code == frames.ACCEPTED:
                q.complete(token)
            elif code == frames.REJECTED:
                reason, description, changes = dead_letter_fields(field(fields_, 0))
                q.dead_letter(token, reason, description, properties=changes)
                return frames.outcome(frames.REJECTED)
            elif code == frames.RELEASED:
                q.release(token)
            elif code == frames.MODIFIED:
                changes = property_changes(field(fields_, 2))
                if field(fields_, 1, False):  # undeliverable-here: how the SDKs defer
                    q.defer(token, properties=changes)
                else:  # abandon, whether or not the client set delivery-failed
                    q.abandon(token, properties=changes)
            else:
                return frames.outcome(
                    frames.REJECTED, [frames.amqp_error(NOT_ALLOWED, "unsupported delivery state")]
                )
        except BrokerError as e:
            return frames.outcome(frames.REJECTED, [frames.amqp_error(e.condition, e.description)])
        if code == frames.MODIFIED:  # the outcome applied, built afresh (not the peer's decoded values)
            return frames.outcome(
                frames.MODIFIED, [bool(field(fields_, 0, False)), bool(field(fields_, 1, False))]
            )
        return frames.outcome(code)

    # ------------------------------------------------------------------ management replies
    def find_reply_link(self, s: AmqpSession, node: str, reply_to: Any) -> OutgoingLink | None:
        """The response link for a request: same node (or reply-to address) on the same session."""
        candidates = [lk for lk in s.links_in.values() if isinstance(lk, OutgoingLink) and not lk.closed]
        for lk in candidates:
            if reply_to is not None and str(_addr(field(lk.attach_fields, 6))) == str(reply_to):
                return lk
        for lk in candidates:
            if lk.address.lower() == node.lower():
                return lk
        return None

    def send_response(self, link: OutgoingLink, payload: bytes) -> None:
        """Send a management/CBS response message (pre-settled)."""
        s = link.session
        link.credit -= 1
        link.delivery_count += 1
        delivery_id = s.next_delivery_id
        s.next_delivery_id += 1
        self.send_transfer(s, link.handle, delivery_id, uuid.uuid4().bytes, True, payload)
