"""A corpus of hostile message bodies and the outcome the contract gives each (docs/contract.md).

Shared by the processor's unit tests and the end-to-end test over the emulator and the local host, so
both check the same bodies. Each body is built for one session (customer) and one order id, so a valid
message queued behind it in the same session can show that the session was not blocked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.support.builders import DEFAULT_DATA

DEEP = 10_000


@dataclass(frozen=True, slots=True)
class Hostile:
    name: str
    body: bytes
    outcome: str  # "applied" or "quarantined"
    reason: str | None = None  # the quarantine reason


def valid_doc(customer: str, order: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "order-step/v1",
        "customer_id": customer,
        "order_id": order,
        "sequence": 1,
        "step": "order.placed",
        "occurred_at": "2026-11-01T10:00:00Z",
        "data": DEFAULT_DATA["order.placed"],
    }
    doc.update(overrides)
    return doc


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


def _splice(doc: dict[str, Any], key: str, raw: str) -> bytes:
    """A valid body with `key`'s value replaced by raw JSON text (for what json.dumps will not write)."""
    marker = "__SPLICE__"
    return json.dumps({**doc, key: marker}).replace(f'"{marker}"', raw).encode()


def _with_price(doc: dict[str, Any], raw: str) -> bytes:
    text = json.dumps(doc)
    return text.replace('"unit_price": "10.25"', f'"unit_price": {raw}').encode()


def corpus(customer: str, order: str) -> list[Hostile]:
    """Hostile bodies for session `customer`; the valid-looking ones use `order`, sequence 1."""
    doc = valid_doc(customer, order)
    valid = _json(doc)
    q = "quarantined"
    return [
        Hostile("deep-arrays", b"[" * DEEP + b"]" * DEEP, q, "malformed-json"),
        Hostile("deep-objects-unclosed", b'{"a":' * 20_000, q, "malformed-json"),
        Hostile("deep-objects-closed", b'{"a":' * DEEP + b"1" + b"}" * DEEP, q, "malformed-json"),
        Hostile("int-6000-digits", b"9" * 6000, q, "malformed-json"),
        Hostile("int-6000-digits-as-sequence", _splice(doc, "sequence", "9" * 6000), q, "malformed-json"),
        Hostile("huge-int-in-data", _splice(doc, "data", '{"x": ' + "1" * 4000 + "}"), q, "malformed-json"),
        Hostile(
            "deep-data-900",
            _json(valid_doc(customer, order, data={"deep": _nested(900)})),
            q,
            "malformed-json",
        ),
        Hostile("nan", b"NaN", q, "malformed-json"),
        Hostile("infinity-price", _with_price(doc, "Infinity"), q, "malformed-json"),
        Hostile("nan-price", _with_price(doc, "NaN"), q, "malformed-json"),
        Hostile("1e400-price", _with_price(doc, "1e400"), q, "schema-violation"),
        Hostile("1e400-sequence", _splice(doc, "sequence", "1e400"), q, "schema-violation"),
        Hostile("price-too-precise", _with_price(doc, "0.0000001"), q, "schema-violation"),
        Hostile("lone-surrogate-escape", _splice(doc, "order_id", '"\\ud800"'), q, "malformed-json"),
        Hostile(
            "lone-surrogate-in-data",
            _splice(
                doc,
                "data",
                json.dumps({**DEFAULT_DATA["order.placed"], "note": "__S__"}).replace(
                    '"__S__"', '"a\\udc00b"'
                ),
            ),
            q,
            "malformed-json",
        ),
        Hostile(
            "lone-surrogate-raw-bytes",
            valid.replace(b'"EUR"', b'"EUR", "n": "\xed\xa0\x80"'),
            q,
            "malformed-json",
        ),
        Hostile("empty", b"", q, "malformed-json"),
        Hostile("whitespace", b" \r\n\t ", q, "malformed-json"),
        Hostile("null", b"null", q, "schema-violation"),
        Hostile("json-list", b"[1, 2, 3]", q, "schema-violation"),
        Hostile("json-string", b'"order.placed"', q, "schema-violation"),
        Hostile("utf16-valid-body", json.dumps(doc).encode("utf-16"), q, "malformed-json"),
        Hostile("utf16le-no-bom", json.dumps(doc).encode("utf-16-le"), q, "malformed-json"),
        Hostile("utf32-valid-body", json.dumps(doc).encode("utf-32"), q, "malformed-json"),
        Hostile("latin1", valid.replace(b'"EUR"', b'"EUR", "n": "caf\xe9"'), q, "malformed-json"),
        Hostile(
            "duplicate-keys",
            valid.replace(b'"sequence": 1', b'"sequence": 1, "sequence": 2'),
            q,
            "malformed-json",
        ),
        Hostile(
            "broker-keys-top-level",
            _json({**doc, "SessionId": "x", "MessageId": "x", "DeliveryCount": "x"}),
            q,
            "schema-violation",
        ),
        Hostile("session-mismatch", _json(valid_doc(customer + "-other", order)), q, "session-mismatch"),
        # a string scan that restarted at every quote would take quadratic time on this one
        Hostile(
            "unterminated-escaped-quotes", b'{"a": "' + b'\\"' * 100_000 + b"[" * 40, q, "malformed-json"
        ),
        Hostile("not-json", b"\x00\x01\x02garbage\xff", q, "malformed-json"),
        Hostile("too-large", b'{"pad": "' + b"x" * (300 * 1024) + b'"}', q, "malformed-json"),
        # allowed by the contract: a UTF-8 byte order mark, and broker-like names as extra step data
        Hostile("utf8-bom-valid-body", b"\xef\xbb\xbf" + valid, "applied"),
        Hostile(
            "broker-keys-in-data",
            _json(
                valid_doc(
                    customer,
                    order,
                    data={
                        **DEFAULT_DATA["order.placed"],
                        "SessionId": "x",
                        "MessageId": "x",
                        "DeliveryCount": "x",
                    },
                )
            ),
            "applied",
        ),
    ]
