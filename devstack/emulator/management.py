"""$cbs and $management request/response handling.

The SDK drives lock renewal, session state, peek, scheduling and deferred receive through these
request/response links; operation names and body keys mirror the service's AMQP management API.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import frames, wire
from .broker import ARGUMENT_ERROR, NOT_FOUND, Broker, BrokerError, Queue
from .codec import Array, Described, Int, Long, Symbol, Timestamp, decode, encode
from .message import MessageError, parse_message
from .outcomes import property_changes

if TYPE_CHECKING:
    from .connection import AmqpSession, Connection, IncomingLink

log = logging.getLogger("devstack.emulator")

OP_PREFIX = "com.microsoft:"


class Request:
    """A decoded management request."""

    def __init__(self, payload: bytes) -> None:
        """Decode the sections we need (properties, application properties, amqp-value body)."""
        self.message_id: Any = None
        self.reply_to: Any = None
        self.app: dict[Any, Any] = {}
        self.body: Any = None
        pos = 0
        while pos < len(payload):
            start = pos
            section, pos = decode(payload, pos)
            if not isinstance(section, Described):
                break
            code = section.descriptor
            if code == frames.PROPERTIES:
                # kept with its own AMQP type: the reply's correlation-id must be the same value and type
                mid = wire.described_list_field(payload, start, 0)
                self.message_id = None if mid is None else wire.message_id(mid)
                self.reply_to = frames.field(section.value, 4)
            elif code == frames.APPLICATION_PROPERTIES and isinstance(section.value, dict):
                self.app = section.value
            elif code == frames.AMQP_VALUE:
                self.body = section.value

    @property
    def operation(self) -> str:
        """The 'operation' application property."""
        return str(self.app.get("operation", ""))


def build_response(
    correlation_id: Any,
    status: int,
    description: str,
    body: Any,
    *,
    cbs: bool = False,
    condition: str | None = None,
) -> bytes:
    """Encode a response message; properties, application properties and body typed by wire.py's schema.

    Like Service Bus, the reply's correlation-id is the request's message-id with its AMQP type
    (uamqp's management client reads it as a ulong, the .NET and Python SDKs send a string or uuid).
    """
    out = bytearray()
    encode(wire.composite(frames.PROPERTIES, [uuid.uuid4(), None, None, None, None, correlation_id]), out)
    if cbs:
        app: dict[Any, Any] = {"status-code": Int(status), "status-description": description}
    else:
        app = {"statusCode": Int(status), "statusDescription": description}
        if condition:
            app["errorCondition"] = Symbol(condition)
    encode(Described(frames.APPLICATION_PROPERTIES, wire.reply_properties(app)), out)
    encode(Described(frames.AMQP_VALUE, None if body is None else wire.reply_body(body)), out)
    return bytes(out)


class Management:
    """Dispatches requests arriving on $cbs and <entity>/$management links."""

    def __init__(self, broker: Broker) -> None:
        """Build the operation table."""
        self.broker = broker
        self.ops: dict[str, Callable[[Queue, Request, dict[Any, Any]], tuple[int, Any]]] = {
            "renew-lock": self._renew_lock,
            "renew-session-lock": self._renew_session_lock,
            "get-session-state": self._get_session_state,
            "set-session-state": self._set_session_state,
            "peek-message": self._peek,
            "receive-by-sequence-number": self._receive_by_seq,
            "update-disposition": self._update_disposition,
            "schedule-message": self._schedule,
            "cancel-scheduled-message": self._cancel_scheduled,
            "get-message-sessions": self._get_message_sessions,
        }

    def handle_request(self, conn: Connection, s: AmqpSession, link: IncomingLink, payload: bytes) -> None:
        """Process one request and send the response on the matching receive link."""
        try:
            req = Request(payload)
        except Exception as exc:  # malformed request: nothing to correlate a reply with
            log.warning("undecodable management request: %s", exc)
            return
        node = link.address
        reply_link = conn.find_reply_link(s, node, req.reply_to)
        if reply_link is None:
            log.warning("management request on %s without a response link", node)
            return
        if node == "$cbs":
            resp = build_response(req.message_id, 202, "Accepted", None, cbs=True)
            conn.send_response(reply_link, resp)
            return
        entity = node[: -len("/$management")] if node.lower().endswith("/$management") else ""
        op = req.operation
        name = op[len(OP_PREFIX) :] if op.startswith(OP_PREFIX) else op
        body = req.body if isinstance(req.body, dict) else {}
        try:
            q = self.broker.resolve(entity)
            fn = self.ops.get(name)
            if fn is None:
                raise BrokerError("amqp:not-implemented", f"Operation {op!r} is not supported.", 501)
            status, result = fn(q, req, body)
            resp = build_response(req.message_id, status, "OK" if status == 200 else "No Content", result)
        except BrokerError as e:
            resp = build_response(req.message_id, e.status, e.description, None, condition=e.condition)
        except (MessageError, KeyError, TypeError, ValueError) as e:
            log.info("bad management request %s %r: %s", op, body, e)
            resp = build_response(req.message_id, 400, f"Bad request: {e}", None, condition=ARGUMENT_ERROR)
        conn.send_response(reply_link, resp)

    # ------------------------------------------------------------------ operations
    @staticmethod
    def _link_name(req: Request) -> str | None:
        v = req.app.get("associated-link-name")
        return str(v) if v else None

    @staticmethod
    def _tokens(body: dict[Any, Any]) -> list[uuid.UUID]:
        tokens = body.get("lock-tokens") or []
        out = []
        for t in tokens:
            if isinstance(t, uuid.UUID):
                out.append(t)
            elif isinstance(t, (bytes, bytearray)) and len(t) == 16:
                out.append(uuid.UUID(bytes=bytes(t)))
            elif isinstance(t, (bytes, bytearray)):
                out.append(uuid.UUID(bytes(t).decode("ascii")))
            elif isinstance(t, Described):
                out.extend(Management._tokens({"lock-tokens": [t.value]}))
            else:
                out.append(uuid.UUID(str(t)))
        return out

    def _renew_lock(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        exp = [Timestamp(q.renew_lock(t)) for t in self._tokens(body)]
        return 200, {"expirations": Array(exp, Timestamp)}

    def _renew_session_lock(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        until = q.renew_session_lock(str(body["session-id"]), self._link_name(req))
        return 200, {"expiration": Timestamp(until)}

    def _get_session_state(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        state = q.get_session_state(str(body["session-id"]), self._link_name(req))
        return 200, {"session-state": state}

    def _set_session_state(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        state = body.get("session-state")
        q.set_session_state(
            str(body["session-id"]), bytes(state) if state is not None else None, self._link_name(req)
        )
        return 200, {}

    def _peek(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        start = int(body.get("from-sequence-number", 1) or 1)
        count = int(body.get("message-count", 1) or 1)
        sid = body.get("session-id")
        msgs = q.peek(start, count, str(sid) if sid is not None else None)
        if not msgs:
            return 204, {}
        return 200, {"messages": [{"message": m.encode()} for m in msgs]}

    def _receive_by_seq(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        seqs = [int(x) for x in body.get("sequence-numbers") or []]
        mode = body.get("receiver-settle-mode", 1)
        sid = body.get("session-id")
        got = q.receive_deferred(
            seqs, None, str(sid) if sid is not None else None, receive_and_delete=mode == 0
        )
        out = []
        for m, token in got:
            payload = m.encode(
                lock_token=token,
                locked_until_ms=m.locked_until_ms or None,
                token_in_delivery_annotations=True,
            )
            item: dict[str, Any] = {"message": payload}
            if token is not None:
                item["lock-token"] = token
            out.append(item)
        return 200, {"messages": out}

    def _update_disposition(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        status = str(body.get("disposition-status", ""))
        sid = body.get("session-id")
        session_id = str(sid) if sid is not None else None
        changes = property_changes(body.get("properties-to-modify"))
        for token in self._tokens(body):
            if status == "completed":
                q.complete(token, session_id)
            elif status == "abandoned":
                q.abandon(token, session_id, properties=changes)
            elif status == "defered":
                q.defer(token, session_id, properties=changes)
            elif status == "suspended":
                q.dead_letter(
                    token,
                    body.get("deadletter-reason") or None,
                    body.get("deadletter-description") or None,
                    session_id,
                    properties=changes,
                )
            else:
                raise BrokerError(ARGUMENT_ERROR, f"Unknown disposition status {status!r}.")
        return 200, {}

    def _schedule(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        if q.is_dlq:
            raise BrokerError(NOT_FOUND, "Cannot schedule messages on a dead-letter queue.", 404)
        seqs = []
        for item in body.get("messages") or []:
            m = parse_message(bytes(item["message"]))
            if m.session_id is None and item.get("session-id"):
                m.session_id = str(item["session-id"])
            when = m.scheduled_ms or 0
            seqs.append(Long(q.schedule(m, when)))
        return 200, {"sequence-numbers": Array(seqs, Long)}

    def _cancel_scheduled(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        for seq in body.get("sequence-numbers") or []:
            q.cancel_scheduled(int(seq))
        return 200, {}

    def _get_message_sessions(self, q: Queue, req: Request, body: dict[Any, Any]) -> tuple[int, Any]:
        """One page of session ids; the reply's skip is where the next page starts."""
        skip = int(body.get("skip", 0) or 0)
        top = body.get("top")
        top = int(top) if top is not None else 2**31 - 1
        updated = body.get("last-updated-time")
        updated_after = int(updated) if updated is not None else None
        ids = q.list_sessions(skip, top, updated_after)
        if not ids:
            return 204, {}
        return 200, {"sessions-ids": Array(ids, str), "skip": Int(skip + len(ids))}
