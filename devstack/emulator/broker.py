"""Queue semantics: ordering, locks, sessions, dead-lettering, scheduling, TTL and duplicate detection.

Everything here runs on the server's single event-loop thread, so there is no locking. Hot paths
use heaps and dicts (lazy deletion) rather than scans, so per-message cost stays O(log n).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .codec import Symbol, encode_bytes
from .config import QueueProperties
from .message import X_DEADLETTER_SOURCE, Message, State

log = logging.getLogger("devstack.emulator")

DLQ_SUFFIX = "/$deadletterqueue"

# error conditions (as the service sends them)
NOT_FOUND = "amqp:not-found"
NOT_ALLOWED = "amqp:not-allowed"
INVALID_FIELD = "amqp:invalid-field"
MESSAGE_LOCK_LOST = "com.microsoft:message-lock-lost"
SESSION_LOCK_LOST = "com.microsoft:session-lock-lost"
SESSION_CANNOT_BE_LOCKED = "com.microsoft:session-cannot-be-locked"
MESSAGE_NOT_FOUND = "com.microsoft:message-not-found"
TIMEOUT = "com.microsoft:timeout"
ARGUMENT_ERROR = "com.microsoft:argument-error"
INTERNAL_ERROR = "amqp:internal-error"

TTL_EXPIRED_REASON = "TTLExpiredException"
TTL_EXPIRED_DESCRIPTION = "The message expired and was dead lettered."
MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"

# get-message-sessions: a last-updated-time at or past .NET's DateTime.MaxValue (as the SDKs encode it)
# asks for the default listing (sessions with active messages or state) instead of "state updated after".
MAX_DATETIME_MS = 253402300800000


def now_ms() -> int:
    """Wall-clock milliseconds; annotations carry absolute UTC times, so wall clock it is."""
    return int(time.time() * 1000)


class BrokerError(Exception):
    """An operation failed with a Service Bus error condition (mapped to SDK exceptions)."""

    def __init__(self, condition: str, description: str, status: int = 400) -> None:
        """Keep the AMQP condition and an HTTP-like status for management responses."""
        super().__init__(description)
        self.condition = condition
        self.description = description
        self.status = status


class Consumer(Protocol):
    """What the broker needs from a receiving link."""

    credit: int
    receive_and_delete: bool
    name: str
    closed: bool  # detached (by either side): must not be handed a session

    def deliver(self, message: Message, lock_token: uuid.UUID | None, locked_until_ms: int | None) -> None:
        """Send the message to the client (consumes one credit)."""

    def session_lost(self) -> None:
        """The session lock held by this consumer expired."""


class Store(Protocol):
    """Persistence hooks; the default store does nothing."""

    def save(self, entity: str, message: Message) -> None:
        """Insert or update a message."""

    def delete(self, entity: str, seq: int) -> None:
        """Remove a message."""

    def save_session_state(self, entity: str, session_id: str, state: bytes | None) -> None:
        """Persist session state."""

    def save_message_id(self, entity: str, message_id: str, expires_ms: int) -> None:
        """Remember a message id in the duplicate-detection history until `expires_ms`."""

    def commit(self) -> None:
        """Make everything saved so far durable."""


class NullStore:
    """In-memory only."""

    def save(self, entity: str, message: Message) -> None:
        """No-op."""

    def delete(self, entity: str, seq: int) -> None:
        """No-op."""

    def save_session_state(self, entity: str, session_id: str, state: bytes | None) -> None:
        """No-op."""

    def save_message_id(self, entity: str, message_id: str, expires_ms: int) -> None:
        """No-op."""

    def commit(self) -> None:
        """No-op."""


@dataclass(eq=False)
class Session:
    """A message session inside a sessionful queue."""

    id: str
    available: list[int] = field(default_factory=list)  # heap of sequence numbers
    state: bytes | None = None
    owner: Consumer | None = None
    locked_until_ms: int = 0
    locked_tokens: set[uuid.UUID] = field(default_factory=set)
    releasing: bool = False  # release_session is returning its messages: no handover, no drop yet
    state_updated_ms: int = 0  # last set-session-state (what get-message-sessions' last-updated-time filters)


@dataclass
class _Waiter:
    consumer: Consumer
    # called with the session already locked to `consumer`; returns False when the link can no longer
    # take it (detached meanwhile), and the session then goes to the next waiter
    callback: Callable[[Session], bool]
    done: bool = False


class MessageTable(dict[int, Message]):
    """A queue's messages by sequence number, keeping the total of their sizes (the entity size that
    MaxSizeInMegabytes bounds) without a scan per send."""

    def __init__(self) -> None:
        """Empty."""
        super().__init__()
        self.bytes = 0

    def __setitem__(self, seq: int, m: Message) -> None:
        """Insert or replace."""
        old = self.get(seq)
        self.bytes += m.size - (old.size if old is not None else 0)
        super().__setitem__(seq, m)

    def __delitem__(self, seq: int) -> None:
        """Remove."""
        self.bytes -= self[seq].size
        super().__delitem__(seq)

    def pop(self, seq: int, default: Any = None) -> Any:
        """Remove if present."""
        m = super().pop(seq, None)
        if m is None:
            return default
        self.bytes -= m.size
        return m


class Queue:
    """A queue (or its dead-letter sub-queue); topics.Subscription and topics.Topic build on it."""

    kind = "queue"  # "topic": send only; "subscription": receive only (see topics.py)

    def __init__(self, broker: Broker, name: str, props: QueueProperties, *, is_dlq: bool = False) -> None:
        """Create empty state; the DLQ of a queue is itself a (session-less) Queue."""
        self.broker = broker
        self.name = name
        self.props = props
        self.is_dlq = is_dlq
        self.requires_session = props.requires_session and not is_dlq
        self.messages = MessageTable()
        self.available: list[int] = []
        self.sessions: dict[str, Session] = {}
        self.ready_sessions: dict[str, None] = {}
        self.waiters: deque[_Waiter] = deque()
        self.consumers: list[Consumer] = []
        self._rr = 0
        self.locks: dict[uuid.UUID, Message] = {}
        self._lock_heap: list[tuple[int, int, uuid.UUID]] = []
        self._sched_heap: list[tuple[int, int]] = []
        self._expiry_heap: list[tuple[int, int]] = []
        self._session_lock_heap: list[tuple[int, int, str]] = []
        self._dedupe: dict[Any, int] = {}
        self._dedupe_order: deque[tuple[int, Any]] = deque()
        self._tie = itertools.count()
        self.dlq: Queue | None = None
        if not is_dlq:
            self.dlq = Queue(broker, name + DLQ_SUFFIX, props, is_dlq=True)

    # ------------------------------------------------------------------ helpers
    @property
    def store(self) -> Store:
        """The broker's persistence store."""
        return self.broker.store

    @property
    def lock_ms(self) -> int:
        """Lock duration in milliseconds."""
        return int(self.props.lock_duration * 1000)

    def _session(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = Session(sid)
        return s

    def _maybe_drop_session(self, s: Session) -> None:
        # deferred/scheduled messages recreate their session when they become relevant again
        if (
            s.owner is None
            and not s.releasing
            and not s.available
            and s.state is None
            and not s.locked_tokens
        ):
            self.sessions.pop(s.id, None)
            self.ready_sessions.pop(s.id, None)

    # ------------------------------------------------------------------ enqueue
    def is_duplicate(self, m: Message, now: int) -> bool:
        """Duplicate detection: True (drop it, still 'accepted') for a MessageId seen in the window."""
        if self.props.requires_duplicate_detection and not self.is_dlq and m.message_id is not None:
            self._prune_dedupe(now)
            key = m.message_id
            if key in self._dedupe:
                return True
            self._dedupe[key] = now
            self._dedupe_order.append((now, key))
            self.store.save_message_id(self.name, key, now + int(self.props.duplicate_window * 1000))
        return False

    def restore_message_id(self, message_id: str, expires_ms: int) -> None:
        """A persisted duplicate-detection entry (oldest first): Service Bus keeps the history across
        restarts, so a resend after one is still dropped within the window."""
        seen = expires_ms - int(self.props.duplicate_window * 1000)
        self._dedupe[message_id] = seen
        self._dedupe_order.append((seen, message_id))

    def enqueue(
        self, m: Message, now: int | None = None, *, keep_seq: bool = False, seq: int | None = None
    ) -> bool:
        """Accept a sent message. Returns False when dropped as a duplicate (still 'accepted').

        `seq` is a sequence number already assigned by a topic (its subscriptions' copies share it).
        """
        now = now or now_ms()
        if self.props.forward_to and not self.is_dlq:
            target = self.broker.queues.get(self.props.forward_to.lower())
            if target is not None and target is not self:
                return target.enqueue(m, now)
        if self.requires_session and not m.session_id:
            raise BrokerError(
                INVALID_FIELD,
                "The SessionId was not set on a message, and it cannot be sent to the entity. "
                "Entities that have session support enabled can only receive messages that have the "
                "SessionId set to a valid value.",
            )
        # After the checks: a refused send never entered the queue, so its id is not remembered (a
        # corrected resend under the same id must not be dropped).
        if self.is_duplicate(m, now):
            return False
        if not keep_seq:
            m.seq = seq if seq is not None else self.broker.next_seq()
            m.enqueued_ms = now
            ttl_ms = int(self.props.default_ttl * 1000)
            if m.ttl_ms:
                ttl_ms = min(ttl_ms, m.ttl_ms)
            m.expires_ms = None if self.is_dlq else now + ttl_ms
        self.messages[m.seq] = m
        if m.scheduled_ms is not None and m.scheduled_ms > now and not keep_seq:
            m.state = State.SCHEDULED
        self.store.save(self.name, m)
        self._index(m)
        return True

    def _index(self, m: Message) -> None:
        """Put a stored message into the structure matching its state."""
        if m.expires_ms is not None:
            heapq.heappush(self._expiry_heap, (m.expires_ms, m.seq))
        if m.state == State.SCHEDULED:
            heapq.heappush(self._sched_heap, (m.scheduled_ms or 0, m.seq))
        elif m.state == State.ACTIVE:
            self._make_available(m)

    def restore(self, m: Message) -> None:
        """Load a message from persistence (locks are not persisted)."""
        self.messages[m.seq] = m
        if m.session_id and self.requires_session:
            self._session(m.session_id)
        self._index(m)

    def _prune_dedupe(self, now: int) -> None:
        horizon = now - int(self.props.duplicate_window * 1000)
        q = self._dedupe_order
        while q and q[0][0] < horizon:
            t, key = q.popleft()
            if self._dedupe.get(key) == t:
                del self._dedupe[key]

    def _make_available(self, m: Message) -> None:
        if self.requires_session and m.session_id is not None:
            s = self._session(m.session_id)
            heapq.heappush(s.available, m.seq)
            if s.releasing:
                return  # release_session hands the session on once all its messages are back
            if s.owner is None:
                if not self._hand_to_waiter(s):
                    self.ready_sessions[s.id] = None
            else:
                self.pump_session(s)
        else:
            heapq.heappush(self.available, m.seq)
            self.pump()

    # ------------------------------------------------------------------ delivery
    def _next_from(self, heap: list[int], now: int) -> Message | None:
        while heap:
            seq = heap[0]
            m = self.messages.get(seq)
            if m is None or m.state != State.ACTIVE or m.locked:
                heapq.heappop(heap)
                continue
            if m.expires_ms is not None and m.expires_ms <= now:
                heapq.heappop(heap)
                self._expire(m, now)
                continue
            heapq.heappop(heap)
            return m
        return None

    def _deliver(self, consumer: Consumer, m: Message, now: int, session: Session | None) -> None:
        if consumer.receive_and_delete:
            del self.messages[m.seq]
            self.store.delete(self.name, m.seq)
            consumer.deliver(m, None, None)
            return
        token = self._lock(m, consumer, now, session)
        consumer.deliver(m, token, m.locked_until_ms)

    def _lock(self, m: Message, owner: Any, now: int, session: Session | None) -> uuid.UUID:
        """Peek-lock m for owner: until the session's lock expires, or for the entity's lock duration."""
        token = uuid.uuid4()
        m.lock_token = token
        m.lock_owner = owner
        if session is not None:
            m.locked_until_ms = session.locked_until_ms
            session.locked_tokens.add(token)
        else:
            m.locked_until_ms = now + self.lock_ms
            heapq.heappush(self._lock_heap, (m.locked_until_ms, next(self._tie), token))
        self.locks[token] = m
        return token

    def pump(self) -> None:
        """Hand available messages to non-session consumers with credit, round-robin."""
        if not self.consumers or not self.available:
            return
        now = now_ms()
        n = len(self.consumers)
        idle = 0
        while self.available and idle < n:
            self._rr %= n
            c = self.consumers[self._rr]
            self._rr += 1
            if c.credit <= 0:
                idle += 1
                continue
            m = self._next_from(self.available, now)
            if m is None:
                return
            idle = 0
            self._deliver(c, m, now, None)
            n = len(self.consumers)
            if n == 0:
                return

    def pump_session(self, s: Session) -> None:
        """Deliver a locked session's messages to its owner, in sequence order."""
        c = s.owner
        if c is None:
            return
        now = now_ms()
        while c.credit > 0 and s.available and s.owner is c:
            m = self._next_from(s.available, now)
            if m is None:
                break
            self._deliver(c, m, now, s)

    def add_consumer(self, c: Consumer) -> None:
        """Register a non-session receiving link."""
        self.consumers.append(c)
        self.pump()

    def remove_consumer(self, c: Consumer) -> None:
        """A link went away. Its message locks stay until they expire, as on the service."""
        if c in self.consumers:
            self.consumers.remove(c)
        for w in self.waiters:
            if w.consumer is c:
                w.done = True
        for s in list(self.sessions.values()):
            if s.owner is c:
                self.release_session(s, lost=False)

    def credit_changed(self, c: Consumer, session_id: str | None) -> None:
        """The consumer issued more credit."""
        if session_id is not None:
            s = self.sessions.get(session_id)
            if s is not None and s.owner is c:
                self.pump_session(s)
        else:
            self.pump()

    # ------------------------------------------------------------------ sessions
    def acquire_session(self, c: Consumer, session_id: str | None) -> Session | None:
        """Lock a named session, or the next available one (None if none is available now)."""
        now = now_ms()
        if session_id is not None:
            s = self._session(session_id)
            if s.owner is not None and s.locked_until_ms > now:
                raise BrokerError(
                    SESSION_CANNOT_BE_LOCKED,
                    f"The requested session '{session_id}' cannot be accepted. It may be locked by another "
                    "receiver.",
                    410,
                )
            if s.owner is not None:
                # expired but not yet timed out: take it over without offering it to a waiter first
                self.release_session(s, lost=True, hand_over=False)
            self._lock_session(s, c, now)
            return s
        while self.ready_sessions:
            sid = next(iter(self.ready_sessions))
            del self.ready_sessions[sid]
            candidate = self.sessions.get(sid)
            if candidate is None or candidate.owner is not None:
                continue
            if self._peek_available(candidate, now):
                self._lock_session(candidate, c, now)
                return candidate
        return None

    def _peek_available(self, s: Session, now: int) -> bool:
        m = self._next_from(s.available, now)
        if m is None:
            return False
        heapq.heappush(s.available, m.seq)
        return True

    def wait_for_session(self, c: Consumer, callback: Callable[[Session], bool]) -> _Waiter:
        """Park a next-available request until a session has messages."""
        w = _Waiter(c, callback)
        self.waiters.append(w)
        return w

    def _hand_to_waiter(self, s: Session) -> bool:
        """Lock an unowned session with messages to the oldest live waiter; False if there is none."""
        while self.waiters and s.owner is None:
            w = self.waiters.popleft()
            if w.done or w.consumer.closed:
                w.done = True
                continue
            w.done = True
            self._lock_session(s, w.consumer, now_ms())
            if w.callback(s):
                return True
            if s.owner is w.consumer:  # the link went away before its attach could be answered
                s.owner = None
                s.locked_until_ms = 0
        return s.owner is not None

    def _offer(self, s: Session, now: int) -> None:
        """An unowned session: to a waiter or the ready list if it has messages, else maybe forget it."""
        if self._peek_available(s, now):
            if not self._hand_to_waiter(s):
                self.ready_sessions[s.id] = None
        else:
            self._maybe_drop_session(s)

    def _lock_session(self, s: Session, c: Consumer, now: int) -> None:
        # one holder at a time: callers only lock unowned sessions (or re-lock to the same consumer)
        assert s.owner is None or s.owner is c, f"session {s.id} is already locked by {s.owner.name}"
        s.owner = c
        s.locked_until_ms = now + self.lock_ms
        self.ready_sessions.pop(s.id, None)
        heapq.heappush(self._session_lock_heap, (s.locked_until_ms, next(self._tie), s.id))

    def renew_session_lock(self, session_id: str, link_name: str | None) -> int:
        """Extend the session lock; fails with session-lock-lost when the caller no longer holds it."""
        s = self.check_session_owner(session_id, link_name)
        s.locked_until_ms = now_ms() + self.lock_ms
        for token in s.locked_tokens:
            m = self.locks.get(token)
            if m is not None:
                m.locked_until_ms = s.locked_until_ms
        heapq.heappush(self._session_lock_heap, (s.locked_until_ms, next(self._tie), s.id))
        return s.locked_until_ms

    def check_session_owner(self, session_id: str, link_name: str | None) -> Session:
        """The session must be locked (by this link, when the request names it)."""
        s = self.sessions.get(session_id)
        if (
            s is None
            or s.owner is None
            or s.locked_until_ms <= now_ms()
            or (link_name and getattr(s.owner, "name", None) not in (None, link_name))
        ):
            raise BrokerError(
                SESSION_LOCK_LOST,
                f"The session lock has expired on the MessageSession. Accept a new MessageSession. "
                f"Session: {session_id}",
                410,
            )
        return s

    def release_session(self, s: Session, *, lost: bool, hand_over: bool = True) -> None:
        """Unlock a session (receiver closed, or its lock expired); its locked messages return.

        The session is offered to the next waiter only once every locked message is back (one
        handover, FIFO intact) and, on expiry, after the old holder has been told. With
        hand_over=False the caller locks it itself straight away.
        """
        owner = s.owner
        s.owner = None
        s.locked_until_ms = 0
        now = now_ms()
        s.releasing = True
        try:
            for token in list(s.locked_tokens):
                m = self.locks.get(token)
                if m is not None:
                    self._unlock(m, now, failed=True)
            s.locked_tokens.clear()
        finally:
            s.releasing = False
        if lost and owner is not None:
            owner.session_lost()
        if s.owner is not None or self.sessions.get(s.id) is not s:
            return
        if hand_over:
            self._offer(s, now)

    def get_session_state(self, session_id: str, link_name: str | None) -> bytes | None:
        """Session state (the caller must hold the session)."""
        return self.check_session_owner(session_id, link_name).state

    def set_session_state(self, session_id: str, state: bytes | None, link_name: str | None) -> None:
        """Replace session state (the caller must hold the session)."""
        s = self.check_session_owner(session_id, link_name)
        s.state = bytes(state) if state is not None else None
        s.state_updated_ms = now_ms()
        self.store.save_session_state(self.name, session_id, s.state)

    def list_sessions(self, skip: int, top: int, updated_after_ms: int | None) -> list[str]:
        """One page of session ids, in a stable (sorted) order so skip/top paging terminates.

        Default listing: sessions with active (available or locked) messages or with stored state.
        With a last-updated-time: sessions whose state was set after it (as the SDKs document it).
        """
        if skip < 0 or top < 0:
            raise BrokerError(ARGUMENT_ERROR, "skip and top must not be negative.")
        if updated_after_ms is None or updated_after_ms >= MAX_DATETIME_MS:
            ids = {s.id for s in self.sessions.values() if s.state is not None}
            ids.update(
                m.session_id
                for m in self.messages.values()
                if m.session_id is not None and m.state == State.ACTIVE
            )
        else:
            ids = {s.id for s in self.sessions.values() if s.state_updated_ms > updated_after_ms}
        return sorted(ids)[skip : skip + top]

    # ------------------------------------------------------------------ settlement
    def _locked(self, token: uuid.UUID, session_id: str | None = None) -> Message:
        m = self.locks.get(token)
        if m is not None and m.session_id is not None and self.requires_session:
            s = self.sessions.get(m.session_id)
            if s is None or s.owner is None or s.locked_until_ms <= now_ms():
                raise BrokerError(
                    SESSION_LOCK_LOST,
                    "The session lock has expired on the MessageSession. Accept a new MessageSession.",
                    410,
                )
            return m
        if m is None or m.locked_until_ms <= now_ms():
            if session_id is not None and self.requires_session:
                self.check_session_owner(session_id, None)
            if m is not None:
                self._unlock(m, now_ms(), failed=True)
            raise BrokerError(
                MESSAGE_LOCK_LOST,
                "The lock supplied is invalid. Either the lock expired, or the message has already been "
                "removed from the queue.",
                410,
            )
        return m

    def _drop_lock(self, m: Message) -> None:
        token = m.lock_token
        if token is not None:
            self.locks.pop(token, None)
            if m.session_id is not None:
                s = self.sessions.get(m.session_id)
                if s is not None:
                    s.locked_tokens.discard(token)
        m.lock_token = None
        m.lock_owner = None
        m.locked_until_ms = 0

    def complete(self, token: uuid.UUID, session_id: str | None = None) -> None:
        """Remove a locked message."""
        m = self._locked(token, session_id)
        self._drop_lock(m)
        self.messages.pop(m.seq, None)
        self.store.delete(self.name, m.seq)
        if m.session_id is not None:
            s = self.sessions.get(m.session_id)
            if s is not None:
                self._maybe_drop_session(s)

    def abandon(
        self, token: uuid.UUID, session_id: str | None = None, properties: dict[str, Any] | None = None
    ) -> None:
        """Give the lock up: apply the client's property changes, count the attempt (may dead-letter on
        MaxDeliveryCount). The AMQP `modified` outcome ends up here with or without delivery-failed:
        the JS SDK's abandon sends it without, and its users rely on MaxDeliveryCount."""
        m = self._locked(token, session_id)
        if properties:
            m.set_app_properties(properties)
        self._unlock(m, now_ms(), failed=True)

    def release(self, token: uuid.UUID) -> None:
        """Unlock without counting an attempt: `released` is what the SDKs send for prefetched messages
        the application never saw (azure-servicebus's drain_and_release_messages on close, "so they are
        not left locked ... inflating delivery count"), so it must not count."""
        m = self.locks.get(token)
        if m is not None:
            self._unlock(m, now_ms(), failed=False)

    def defer(
        self, token: uuid.UUID, session_id: str | None = None, properties: dict[str, Any] | None = None
    ) -> None:
        """Set aside; only receive-by-sequence-number can fetch it again."""
        m = self._locked(token, session_id)
        if properties:
            m.set_app_properties(properties)
        self._drop_lock(m)
        m.state = State.DEFERRED
        m.delivery_count += 1
        self.store.save(self.name, m)

    def dead_letter(
        self,
        token: uuid.UUID,
        reason: str | None,
        description: str | None,
        session_id: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Move a locked message to the dead-letter sub-queue (with the client's property changes)."""
        m = self._locked(token, session_id)
        if properties:
            m.set_app_properties(properties)
        self._drop_lock(m)
        self._to_dlq(m, reason, description)

    def renew_lock(self, token: uuid.UUID) -> int:
        """Extend a message lock."""
        m = self._locked(token)
        m.locked_until_ms = now_ms() + self.lock_ms
        heapq.heappush(self._lock_heap, (m.locked_until_ms, next(self._tie), token))
        return m.locked_until_ms

    def _unlock(self, m: Message, now: int, *, failed: bool) -> None:
        self._drop_lock(m)
        if failed:
            attempts = m.delivery_count + 1
            m.delivery_count = attempts
            if attempts >= self.props.max_delivery_count and not self.is_dlq:
                self._to_dlq(
                    m,
                    MAX_DELIVERY_REASON,
                    f"Message could not be consumed after {self.props.max_delivery_count} delivery attempts.",
                )
                return
        if m.state == State.DEFERRED:
            self.store.save(self.name, m)
            return
        if m.expires_ms is not None and m.expires_ms <= now:
            self._expire(m, now)
            return
        self.store.save(self.name, m)
        self._make_available(m)

    def _to_dlq(self, m: Message, reason: str | None, description: str | None) -> None:
        self.messages.pop(m.seq, None)
        self.store.delete(self.name, m.seq)
        if self.dlq is None:  # dead-lettering from a DLQ: the service keeps it there
            self.messages[m.seq] = m
            m.state = State.ACTIVE
            self.store.save(self.name, m)
            self._make_available(m)
            return
        d = m.copy_for_dead_letter()
        d.set_app_properties({"DeadLetterReason": reason, "DeadLetterErrorDescription": description})
        fwd = self.props.forward_dead_lettered_to
        target = self.broker.queues.get(fwd.lower()) if fwd else None
        if target is not None:
            d.annotations = [(k, raw) for k, raw in d.annotations if k != X_DEADLETTER_SOURCE]
            d.annotations.append(
                (X_DEADLETTER_SOURCE, encode_bytes(Symbol(X_DEADLETTER_SOURCE)) + encode_bytes(self.name))
            )
            try:
                target.enqueue(d)
                return
            except BrokerError:
                log.warning("forwarding dead-lettered message %s to %s failed", m.seq, fwd)
        self.dlq.enqueue(d, keep_seq=True)
        if m.session_id is not None:
            s = self.sessions.get(m.session_id)
            if s is not None:
                self._maybe_drop_session(s)

    def _expire(self, m: Message, now: int) -> None:
        if m.seq not in self.messages or m.locked:
            return
        if self.props.dead_letter_on_expiration and not self.is_dlq:
            self._to_dlq(m, TTL_EXPIRED_REASON, TTL_EXPIRED_DESCRIPTION)
        else:
            self.messages.pop(m.seq, None)
            self.store.delete(self.name, m.seq)

    # ------------------------------------------------------------------ management helpers
    def receive_deferred(
        self, seqs: list[int], c: Consumer | None, session_id: str | None, receive_and_delete: bool
    ) -> list[tuple[Message, uuid.UUID | None]]:
        """Fetch deferred messages by sequence number, locking them (or deleting in RECEIVE_AND_DELETE)."""
        now = now_ms()
        session = None
        if self.requires_session:
            if session_id is None:
                raise BrokerError(ARGUMENT_ERROR, "A session id is required for a sessionful entity.")
            session = self.check_session_owner(session_id, None)
        out: list[tuple[Message, uuid.UUID | None]] = []
        found: list[Message] = []
        for seq in seqs:
            m = self.messages.get(seq)
            if m is None or m.state != State.DEFERRED or m.locked or (session and m.session_id != session.id):
                raise BrokerError(
                    MESSAGE_NOT_FOUND,
                    f"Failed to retrieve the deferred message with sequence number {seq}.",
                    404,
                )
            found.append(m)
        for m in found:
            if receive_and_delete:
                del self.messages[m.seq]
                self.store.delete(self.name, m.seq)
                out.append((m, None))
                continue
            out.append((m, self._lock(m, c, now, session)))
        return out

    def peek(self, from_seq: int, count: int, session_id: str | None) -> list[Message]:
        """Browse without locking, in sequence order."""
        out: list[Message] = []
        for seq in sorted(s for s in self.messages if s >= from_seq):
            m = self.messages[seq]
            if session_id is not None and m.session_id != session_id:
                continue
            out.append(m)
            if len(out) >= count:
                break
        return out

    def schedule(self, m: Message, when_ms: int) -> int:
        """Enqueue a message for later; returns its sequence number."""
        m.scheduled_ms = when_ms
        self.enqueue(m)
        return m.seq

    def cancel_scheduled(self, seq: int) -> None:
        """Drop a scheduled message (unknown numbers are ignored, like the service)."""
        m = self.messages.get(seq)
        if m is not None and m.state == State.SCHEDULED:
            del self.messages[seq]
            self.store.delete(self.name, seq)

    # ------------------------------------------------------------------ timers
    def tick(self, now: int) -> None:
        """Expire locks, session locks and TTLs; activate due scheduled messages."""
        h = self._lock_heap
        while h and h[0][0] <= now:
            until, _, token = heapq.heappop(h)
            m = self.locks.get(token)
            if m is not None and m.locked_until_ms == until:
                self._unlock(m, now, failed=True)
        sh = self._session_lock_heap
        while sh and sh[0][0] <= now:
            until, _, sid = heapq.heappop(sh)
            s = self.sessions.get(sid)
            if s is not None and s.owner is not None and s.locked_until_ms == until:
                self.release_session(s, lost=True)
        sc = self._sched_heap
        while sc and sc[0][0] <= now:
            _, seq = heapq.heappop(sc)
            m = self.messages.get(seq)
            if m is not None and m.state == State.SCHEDULED:
                m.state = State.ACTIVE
                self.store.save(self.name, m)
                self._make_available(m)
        eh = self._expiry_heap
        while eh and eh[0][0] <= now:
            exp, seq = heapq.heappop(eh)
            m = self.messages.get(seq)
            if m is not None and m.expires_ms == exp and not m.locked and m.state != State.SCHEDULED:
                self._expire(m, now)
        if self.dlq is not None:
            self.dlq.tick(now)

    # ------------------------------------------------------------------ inspection
    def stored_bytes(self) -> int:
        """The entity's size: its messages and its dead-letter queue's (what MaxSizeInMegabytes bounds)."""
        return self.messages.bytes + (self.dlq.messages.bytes if self.dlq is not None else 0)

    def counts(self) -> dict[str, int]:
        """Message counts by state (for tests and tooling)."""
        c = {"active": 0, "locked": 0, "deferred": 0, "scheduled": 0}
        for m in self.messages.values():
            if m.state == State.SCHEDULED:
                c["scheduled"] += 1
            elif m.state == State.DEFERRED:
                c["deferred"] += 1
            elif m.locked:
                c["locked"] += 1
            else:
                c["active"] += 1
        c["dead_lettered"] = len(self.dlq.messages) if self.dlq is not None else 0
        c["total"] = len(self.messages)
        return c

    def session_counts(self) -> dict[str, int]:
        """Messages (any state) per session id."""
        out: dict[str, int] = {}
        for m in self.messages.values():
            if m.session_id is not None:
                out[m.session_id] = out.get(m.session_id, 0) + 1
        return out


class Broker:
    """All queues of the emulated namespace."""

    def __init__(self, store: Store | None = None) -> None:
        """Empty namespace; queues are added from config or at runtime."""
        self.queues: dict[str, Queue] = {}
        self.store: Store = store or NullStore()
        self._seq = 0

    def next_seq(self) -> int:
        """Namespace-wide monotonically increasing sequence numbers (per queue is enough for SB, this is
        stricter and makes restored state simpler)."""
        self._seq += 1
        return self._seq

    def bump_seq(self, seq: int) -> None:
        """After restoring from disk, continue after the highest number seen."""
        self._seq = max(self._seq, seq)

    def add_queue(self, name: str, props: QueueProperties) -> Queue:
        """Create (or replace the properties of) a queue."""
        key = name.lower()
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = Queue(self, name, props)
        else:
            q.props = props
            q.requires_session = props.requires_session
            if q.dlq is not None:
                q.dlq.props = props
        return q

    def delete_queue(self, name: str) -> None:
        """Remove a queue and its messages (test isolation)."""
        self.queues.pop(name.lower(), None)

    def resolve(self, entity: str) -> Queue:
        """Entity path ('q', 'q/$DeadLetterQueue', 't', 't/Subscriptions/s[/$DeadLetterQueue]') to its
        Queue (a topic or subscription is one), or amqp:not-found."""
        path = entity.strip("/")
        lower = path.lower()
        is_dlq = lower.endswith(DLQ_SUFFIX)
        base = path[: -len(DLQ_SUFFIX)] if is_dlq else path
        q = self.queues.get(base.lower())
        if q is None and "/subscriptions/" in base.lower():
            cut = base.lower().rindex("/subscriptions/")
            topic = self.queues.get(base[:cut].lower())
            subs = getattr(topic, "subscriptions", None)
            if subs is not None:
                q = subs.get(base[cut + len("/subscriptions/") :].lower())
        if q is None or (is_dlq and q.dlq is None):
            raise BrokerError(
                NOT_FOUND,
                f"The messaging entity 'sb://localhost/{path}' could not be found. To know more visit "
                "https://aka.ms/sbResourceMgrExceptions.",
                404,
            )
        if is_dlq:
            assert q.dlq is not None
            return q.dlq
        return q

    def tick(self) -> None:
        """Run timers for every queue."""
        now = now_ms()
        for q in list(self.queues.values()):
            q.tick(now)
