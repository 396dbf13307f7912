"""Raw AMQP 1.0 conformance checks with Apache Qpid Proton (no Service Bus SDK), run in the side venv.

Started by tests/emulator/test_conformance_proton.py with the side venv's interpreter
(tests/fixtures/python_amqp_clients.py). Proton is a general-purpose AMQP 1.0 stack: it reads the
emulator's frames by the spec alone, so what it sees (settle modes, outcomes, credit, multi-frame
transfers, the Service Bus session filter, message annotations) is what any AMQP client would see.

Usage: python -m tests.emulator.side_clients.proton_conformance CONFIG.json | --list
CONFIG: {"url": "amqp://127.0.0.1:<port>", "checks": [{"id", "queue"}]}.
Prints one JSON line per check: {"id", "ok", "error", "ms"}, after a {"client": ...} line.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from proton import Condition, Delivery, Link, Message, symbol, timestamp
from proton.reactor import AtLeastOnce, AtMostOnce, Filter
from proton.utils import BlockingConnection, BlockingReceiver

SESSION_FILTER = symbol("com.microsoft:session-filter")
TIMEOUT_S = 10.0
Check = Callable[[str, str], None]
CHECKS: dict[str, Check] = {}


def check(check_id: str) -> Callable[[Check], Check]:
    """Register a check."""

    def register(fn: Check) -> Check:
        CHECKS[check_id] = fn
        return fn

    return register


@contextmanager
def connect(url: str, **kw: Any) -> Iterator[BlockingConnection]:
    """A blocking Proton connection (SASL ANONYMOUS), closed on exit."""
    conn = BlockingConnection(url, timeout=TIMEOUT_S, allowed_mechs="ANONYMOUS", **kw)
    try:
        yield conn
    finally:
        conn.close()


def link_name() -> str:
    """A fresh link name: Proton's default (container id + address) repeats for a second link to one
    address, and link names must be unique per direction on a connection (2.6.1)."""
    return f"proton-{uuid.uuid4().hex[:12]}"


def send(conn: BlockingConnection, address: str, *messages: Message) -> None:
    """Send unsettled and require each to be accepted."""
    sender = conn.create_sender(address, options=AtLeastOnce(), name=link_name())
    for m in messages:
        d = sender.send(m)
        assert d.remote_state == Delivery.ACCEPTED, d.remote_state
    sender.close()


def receive_one(r: BlockingReceiver, timeout: float = TIMEOUT_S) -> tuple[Message, Delivery]:
    """The next message and its (unsettled) delivery."""
    m = r.receive(timeout=timeout)
    return m, r.fetcher.unsettled[-1]


def nothing_arrives(conn: BlockingConnection, r: BlockingReceiver, wait_s: float = 1.5) -> bool:
    """True when no message arrives on r within wait_s (with credit outstanding)."""
    if not r.link.credit:
        r.link.flow(1)
    try:
        conn.wait(lambda: r.fetcher.has_message > 0, timeout=wait_s)
    except Exception:  # proton.Timeout
        return True
    return False


def data_dict(data: Any) -> dict[Any, Any]:
    """A terminus' filter (a proton Data holding a map) as a dict."""
    data.rewind()
    if not data.next():
        return {}
    value = data.get_object()
    assert isinstance(value, dict), value
    return value


# ---------------------------------------------------------------------------------------------- checks
@check("settle-modes")
def settle_modes(url: str, q: str) -> None:
    """The attach reply carries the settle modes asked for (ubyte, 2.8.2/2.8.3); pre-settled sends work."""
    with connect(url) as conn:
        presettled = conn.create_sender(q, options=AtMostOnce(), name=link_name())
        assert presettled.link.remote_snd_settle_mode == Link.SND_SETTLED, (
            presettled.link.remote_snd_settle_mode
        )
        presettled.send(Message(body="presettled"))
        unsettled = conn.create_sender(q, options=AtLeastOnce(), name=link_name())
        assert unsettled.link.remote_snd_settle_mode == Link.SND_UNSETTLED
        assert unsettled.link.remote_rcv_settle_mode == Link.RCV_FIRST
        d = unsettled.send(Message(body="unsettled"))
        assert d.remote_state == Delivery.ACCEPTED and d.settled  # settled = settled by the peer
        r = conn.create_receiver(q, credit=10, options=AtLeastOnce(), name=link_name())
        assert r.link.remote_snd_settle_mode == Link.SND_UNSETTLED
        bodies = []
        for _ in range(2):
            m, d = receive_one(r)
            assert not d.settled, "a peek-lock delivery arrives unsettled"
            bodies.append(m.body)
            r.accept()
        assert bodies == ["presettled", "unsettled"]


@check("outcome-accepted")
def outcome_accepted(url: str, q: str) -> None:
    """accepted completes: the message is gone."""
    with connect(url) as conn:
        send(conn, q, Message(body="a"))
        r = conn.create_receiver(q, credit=1, name=link_name())
        m, _ = receive_one(r)
        assert m.body == "a"
        r.accept()
        assert nothing_arrives(conn, r)


@check("outcome-released")
def outcome_released(url: str, q: str) -> None:
    """released unlocks without counting a delivery attempt."""
    with connect(url) as conn:
        send(conn, q, Message(body="r"))
        r = conn.create_receiver(q, credit=1, name=link_name())
        m, _ = receive_one(r)
        assert m.delivery_count == 0
        r.release(delivered=False)
        m, _ = receive_one(r)
        assert (m.body, m.delivery_count) == ("r", 0)
        r.accept()


@check("outcome-modified")
def outcome_modified(url: str, q: str) -> None:
    """modified (delivery-failed) abandons: back with the count incremented; undeliverable-here defers."""
    with connect(url) as conn:
        send(conn, q, Message(body="m"))
        r = conn.create_receiver(q, credit=1, name=link_name())
        m, d = receive_one(r)
        assert (m.body, m.delivery_count) == ("m", 0)
        r.fetcher.unsettled.remove(d)
        d.local.failed = True
        d.update(Delivery.MODIFIED)
        d.settle()
        m, _ = receive_one(r)
        assert (m.body, m.delivery_count) == ("m", 1)
        r.accept()
        send(conn, q, Message(body="deferred"))
        m, d = receive_one(r)
        assert m.body == "deferred"
        r.fetcher.unsettled.remove(d)
        d.local.failed = True
        d.local.undeliverable = True
        d.update(Delivery.MODIFIED)
        d.settle()
        assert nothing_arrives(conn, r), "a message modified with undeliverable-here must not come back"


@check("outcome-rejected")
def outcome_rejected(url: str, q: str) -> None:
    """rejected dead-letters; the error's condition and description become the reason and description."""
    with connect(url) as conn:
        send(conn, q, Message(body="bad"))
        r = conn.create_receiver(q, credit=1, name=link_name())
        _, d = receive_one(r)
        r.fetcher.unsettled.remove(d)
        d.local.condition = Condition("app:bad-total", "total < 0")
        d.update(Delivery.REJECTED)
        d.settle()
        assert nothing_arrives(conn, r)
        dlq = conn.create_receiver(f"{q}/$DeadLetterQueue", credit=1, name=link_name())
        m, _ = receive_one(dlq)
        assert m.body == "bad"
        props = m.properties or {}
        assert props.get("DeadLetterReason") == "app:bad-total", props
        assert props.get("DeadLetterErrorDescription") == "total < 0", props
        dlq.accept()


@check("credit-and-drain")
def credit_and_drain(url: str, q: str) -> None:
    """No credit, no deliveries; drain delivers what there is, then uses up the rest of the credit."""
    with connect(url) as conn:
        send(conn, q, Message(body="1"), Message(body="2"))
        r = conn.create_receiver(q, credit=0, name=link_name())
        time.sleep(0.5)
        assert r.fetcher.has_message == 0, "a delivery arrived without credit"
        r.link.drain(5)
        conn.wait(lambda: r.fetcher.has_message == 2 and r.link.credit == 0, timeout=TIMEOUT_S)
        assert not r.link.draining()
        r.link.flow(1)  # credit again, nothing left to deliver
        time.sleep(0.5)
        assert r.fetcher.has_message == 2
        for body in ("1", "2"):
            m, _ = receive_one(r)
            assert m.body == body
            r.accept()


@check("multi-frame-transfer")
def multi_frame_transfer(url: str, q: str) -> None:
    """With a 4 KiB max-frame-size both ways, a 200 KiB message is split into frames and joined intact."""
    body = bytes(range(256)) * 800
    with connect(url, max_frame_size=4096) as conn:
        assert conn.conn.transport.remote_max_frame_size <= 4096
        send(conn, q, Message(body=body))
        r = conn.create_receiver(q, credit=1, name=link_name())
        m, _ = receive_one(r)
        assert m.body == body
        r.accept()


@check("session-filter")
def session_filter(url: str, q: str) -> None:
    """com.microsoft:session-filter: a session by id, or (null) the next available; the reply names it."""
    with connect(url) as conn:
        send(conn, q, *(Message(body=f"{sid}{i}", group_id=sid) for sid in ("A", "B") for i in range(2)))
        b = conn.create_receiver(q, credit=5, options=Filter({SESSION_FILTER: "B"}), name=link_name())
        assert data_dict(b.link.remote_source.filter).get(SESSION_FILTER) == "B"
        got = []
        for _ in range(2):
            m, _ = receive_one(b)
            got.append((m.body, m.group_id))
            b.accept()
        assert got == [("B0", "B"), ("B1", "B")]
        assert nothing_arrives(conn, b)
        nxt = conn.create_receiver(q, credit=5, options=Filter({SESSION_FILTER: None}), name=link_name())
        assert data_dict(nxt.link.remote_source.filter).get(SESSION_FILTER) == "A"
        m, _ = receive_one(nxt)
        assert (m.body, m.group_id) == ("A0", "A")
        nxt.accept()


@check("message-annotations")
def message_annotations(url: str, q: str) -> None:
    """The client's annotations and typed application properties survive; the broker adds its own."""
    from proton import int32

    sent = Message(
        body="x",
        id="mid-1",
        annotations={symbol("x-app-note"): "kept"},
        properties={"i32": int32(7), "i64": 2**40, "s": "text", "b": True},
    )
    with connect(url) as conn:
        before = int(time.time() * 1000)
        send(conn, q, sent)
        r = conn.create_receiver(q, credit=1, name=link_name())
        m, _ = receive_one(r)
        ann = m.annotations or {}
        assert ann.get(symbol("x-app-note")) == "kept", ann
        seq = ann.get(symbol("x-opt-sequence-number"))
        assert isinstance(seq, int) and seq > 0, ann
        enqueued = ann.get(symbol("x-opt-enqueued-time"))
        assert isinstance(enqueued, timestamp) and enqueued >= before - 60_000, ann
        assert isinstance(ann.get(symbol("x-opt-locked-until")), timestamp), ann
        assert m.id == "mid-1"
        props = m.properties or {}
        assert props == {"i32": 7, "i64": 2**40, "s": "text", "b": True}, props
        assert isinstance(props["i32"], int32), type(props["i32"])
        r.accept()


# ---------------------------------------------------------------------------------------------- runner
def main(argv: list[str]) -> int:
    """Run the checks named in the config file; exit 0 when the run itself worked."""
    if argv and argv[0] == "--list":
        print(json.dumps(sorted(CHECKS)))
        return 0
    config = json.loads(Path(argv[0]).read_text())
    print(json.dumps({"client": "python-qpid-proton", "version": version("python-qpid-proton")}), flush=True)
    for item in config["checks"]:
        started = time.monotonic()
        try:
            CHECKS[item["id"]](config["url"], item["queue"])
            ok, error = True, None
        except BaseException as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2500:]}"
        ms = round((time.monotonic() - started) * 1000)
        print(json.dumps({"id": item["id"], "ok": ok, "error": error, "ms": ms}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
