"""The Service Bus management API's wire format: Atom entries and feeds around DataContract XML.

Element names, namespaces and order follow what azure-servicebus's administration client parses and
sends (azure/servicebus/management/_generated/models/_models.py: QueueDescription, TopicDescription,
SubscriptionDescription, RuleDescription, MessageCountDetails, NamespaceProperties; rule key/values in
management/_utils.py, `KeyValueOfstringanyType` with an `xsi:type="d6p1:<type>"` Value). Responses are
built and requests parsed with xml.etree.ElementTree; unknown request elements are ignored, as the
service's DataContract serializer does.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ATOM = "http://www.w3.org/2005/Atom"
SB = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
SB_COUNTS = "http://schemas.microsoft.com/netservices/2011/06/servicebus"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
# TimeSpan.MaxValue, which the service reports for "never" (AutoDeleteOnIdle, an unlimited TTL)
TIMESPAN_MAX = "P10675199DT2H48M5.4775807S"
TIMESPAN_MAX_S = 10675199 * 86400 + 2 * 3600 + 48 * 60 + 5.4775807


class AtomError(ValueError):
    """A request body that is not a usable description (HTTP 400)."""


def iso_duration(seconds: float) -> str:
    """Seconds as an xs:duration the way .NET writes a TimeSpan (PT1M, P14D, PT0.3S)."""
    if seconds >= TIMESPAN_MAX_S or math.isinf(seconds):
        return TIMESPAN_MAX
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{int(days)}D" if days else "")
    clock = (f"{int(hours)}H" if hours else "") + (f"{int(minutes)}M" if minutes else "")
    if secs:
        clock += f"{secs:.7f}".rstrip("0").rstrip(".") + "S"
    if clock:
        out += "T" + clock
    return out if out != "P" else "PT0S"


def parse_iso_duration(text: str) -> float:
    """xs:duration (PnDTnHnMnS, as the SDK sends it) to seconds."""
    from .config import ConfigError, parse_duration

    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise AtomError(str(exc)) from exc


def iso_time(when: datetime) -> str:
    """An xs:dateTime in UTC with a Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sub(parent: ET.Element, name: str, text: Any = None, ns: str = SB) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        el.text = str(text).lower() if isinstance(text, bool) else str(text)
    return el


def _opt(parent: ET.Element, name: str, value: Any) -> None:
    """An optional element: left out when there is no value (the SDK then reads None)."""
    if value is not None:
        _sub(parent, name, value)


def to_xml(el: ET.Element) -> bytes:
    """Serialize with an XML declaration (utf-8)."""
    return ET.tostring(el, encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------------- entries and feeds
def entry(base_url: str, title: str, content: ET.Element, created: datetime, updated: datetime) -> ET.Element:
    """An Atom entry wrapping one description, as GET/PUT answer."""
    e = ET.Element(f"{{{ATOM}}}entry")
    e.set("{http://www.w3.org/XML/1998/namespace}base", base_url)
    _sub(e, "id", base_url, ATOM)
    _sub(e, "title", title, ATOM).set("type", "text")
    _sub(e, "published", iso_time(created), ATOM)
    _sub(e, "updated", iso_time(updated), ATOM)
    author = _sub(e, "author", None, ATOM)
    _sub(author, "name", "sbemulatorns", ATOM)
    link = _sub(e, "link", None, ATOM)
    link.set("rel", "self")
    link.set("href", base_url)
    c = _sub(e, "content", None, ATOM)
    c.set("type", "application/xml")
    c.append(content)
    return e


def feed(self_url: str, title: str, entries: list[ET.Element], next_url: str | None) -> ET.Element:
    """An Atom feed (list operations); a second link (rel=next) tells the SDK to fetch another page."""
    f = ET.Element(f"{{{ATOM}}}feed")
    _sub(f, "title", title, ATOM).set("type", "text")
    _sub(f, "id", self_url, ATOM)
    _sub(f, "updated", iso_time(datetime.now(UTC)), ATOM)
    link = _sub(f, "link", None, ATOM)
    link.set("rel", "self")
    link.set("href", self_url)
    if next_url is not None:
        nxt = _sub(f, "link", None, ATOM)
        nxt.set("rel", "next")
        nxt.set("href", next_url)
    f.extend(entries)
    return f


def error(code: int, detail: str) -> ET.Element:
    """The service's error body (`<Error><Code/><Detail/></Error>`, no namespace)."""
    e = ET.Element("Error")
    ET.SubElement(e, "Code").text = str(code)
    ET.SubElement(e, "Detail").text = detail
    return e


# ---------------------------------------------------------------------- descriptions (responses)
@dataclass
class Counts:
    """Runtime numbers of one entity (MessageCountDetails plus size and total)."""

    active: int = 0
    dead_letter: int = 0
    scheduled: int = 0
    transfer: int = 0
    transfer_dead_letter: int = 0
    size_in_bytes: int = 0

    @property
    def total(self) -> int:
        """MessageCount: every message the entity holds, sub-queues included."""
        return self.active + self.dead_letter + self.scheduled + self.transfer + self.transfer_dead_letter


@dataclass
class Meta:
    """What the service reports about an entity besides its settings: times and echoed settings the
    emulator keeps but does not act on (AutoDeleteOnIdle, EnableBatchedOperations, Status, ...)."""

    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    echo: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """For persistence."""
        return {"created": self.created.isoformat(), "updated": self.updated.isoformat(), "echo": self.echo}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Meta:
        """Inverse of to_json."""
        return Meta(
            datetime.fromisoformat(d["created"]), datetime.fromisoformat(d["updated"]), dict(d["echo"])
        )


def _counts(parent: ET.Element, c: Counts) -> None:
    el = _sub(parent, "CountDetails")
    for name, value in (
        ("ActiveMessageCount", c.active),
        ("DeadLetterMessageCount", c.dead_letter),
        ("ScheduledMessageCount", c.scheduled),
        ("TransferMessageCount", c.transfer),
        ("TransferDeadLetterMessageCount", c.transfer_dead_letter),
    ):
        _sub(el, name, value, SB_COUNTS)


def _forward_url(base: str, target: str | None) -> str | None:
    return f"{base}/{target}" if target else None


def queue_description(p: Any, c: Counts, meta: Meta, base: str, max_message_kib: int) -> ET.Element:
    """QueueDescription of a config.QueueProperties (settings, counts, times)."""
    d = ET.Element(f"{{{SB}}}QueueDescription")
    _sub(d, "LockDuration", iso_duration(p.lock_duration))
    _sub(d, "MaxSizeInMegabytes", p.max_size_mb)
    _sub(d, "RequiresDuplicateDetection", p.requires_duplicate_detection)
    _sub(d, "RequiresSession", p.requires_session)
    _sub(d, "DefaultMessageTimeToLive", iso_duration(p.default_ttl))
    _sub(d, "DeadLetteringOnMessageExpiration", p.dead_letter_on_expiration)
    _sub(d, "DuplicateDetectionHistoryTimeWindow", iso_duration(p.duplicate_window))
    _sub(d, "MaxDeliveryCount", p.max_delivery_count)
    _sub(d, "EnableBatchedOperations", meta.echo.get("EnableBatchedOperations", "true"))
    _sub(d, "SizeInBytes", c.size_in_bytes)
    _sub(d, "MessageCount", c.total)
    _sub(d, "IsAnonymousAccessible", False)
    _sub(d, "AuthorizationRules")
    _sub(d, "Status", meta.echo.get("Status", "Active"))
    _opt(d, "ForwardTo", _forward_url(base, p.forward_to))
    _sub(d, "CreatedAt", iso_time(meta.created))
    _sub(d, "UpdatedAt", iso_time(meta.updated))
    _sub(d, "AccessedAt", iso_time(meta.updated))
    _sub(d, "SupportOrdering", True)
    _counts(d, c)
    _sub(d, "AutoDeleteOnIdle", meta.echo.get("AutoDeleteOnIdle", TIMESPAN_MAX))
    _sub(d, "EnablePartitioning", meta.echo.get("EnablePartitioning", "false"))
    _sub(d, "EntityAvailabilityStatus", "Available")
    _sub(d, "EnableExpress", meta.echo.get("EnableExpress", "false"))
    _opt(d, "ForwardDeadLetteredMessagesTo", _forward_url(base, p.forward_dead_lettered_to))
    _opt(d, "UserMetadata", p.user_metadata or None)
    _sub(d, "MaxMessageSizeInKilobytes", max_message_kib)
    return d


def topic_description(
    p: Any, c: Counts, meta: Meta, subscriptions: int, filters: tuple[int, int], max_message_kib: int
) -> ET.Element:
    """TopicDescription of a config.TopicProperties; `filters` is (sql, correlation) over its rules."""
    d = ET.Element(f"{{{SB}}}TopicDescription")
    _sub(d, "DefaultMessageTimeToLive", iso_duration(p.default_ttl))
    _sub(d, "MaxSizeInMegabytes", p.max_size_mb)
    _sub(d, "RequiresDuplicateDetection", p.requires_duplicate_detection)
    _sub(d, "DuplicateDetectionHistoryTimeWindow", iso_duration(p.duplicate_window))
    _sub(d, "EnableBatchedOperations", meta.echo.get("EnableBatchedOperations", "true"))
    _sub(d, "SizeInBytes", c.size_in_bytes)
    _sub(d, "FilteringMessagesBeforePublishing", False)
    _sub(d, "IsAnonymousAccessible", False)
    _sub(d, "AuthorizationRules")
    _sub(d, "Status", meta.echo.get("Status", "Active"))
    _sub(d, "CreatedAt", iso_time(meta.created))
    _sub(d, "UpdatedAt", iso_time(meta.updated))
    _sub(d, "AccessedAt", iso_time(meta.updated))
    _sub(d, "SupportOrdering", True)
    _counts(d, c)
    _sub(d, "SubscriptionCount", subscriptions)
    _sub(d, "SqlFilterCount", filters[0])
    _sub(d, "CorrelationFilterCount", filters[1])
    _sub(d, "AutoDeleteOnIdle", meta.echo.get("AutoDeleteOnIdle", TIMESPAN_MAX))
    _sub(d, "EnablePartitioning", meta.echo.get("EnablePartitioning", "false"))
    _sub(d, "EntityAvailabilityStatus", "Available")
    _sub(d, "EnableSubscriptionPartitioning", False)
    _sub(d, "EnableExpress", meta.echo.get("EnableExpress", "false"))
    _opt(d, "UserMetadata", p.user_metadata or None)
    _sub(d, "MaxMessageSizeInKilobytes", max_message_kib)
    return d


def subscription_description(p: Any, c: Counts, meta: Meta, base: str) -> ET.Element:
    """SubscriptionDescription of a subscription's config.QueueProperties."""
    d = ET.Element(f"{{{SB}}}SubscriptionDescription")
    _sub(d, "LockDuration", iso_duration(p.lock_duration))
    _sub(d, "RequiresSession", p.requires_session)
    _sub(d, "DefaultMessageTimeToLive", iso_duration(p.default_ttl))
    _sub(d, "DeadLetteringOnMessageExpiration", p.dead_letter_on_expiration)
    _sub(d, "DeadLetteringOnFilterEvaluationExceptions", True)
    _sub(d, "MessageCount", c.total)
    _sub(d, "MaxDeliveryCount", p.max_delivery_count)
    _sub(d, "EnableBatchedOperations", meta.echo.get("EnableBatchedOperations", "true"))
    _sub(d, "Status", meta.echo.get("Status", "Active"))
    _opt(d, "ForwardTo", _forward_url(base, p.forward_to))
    _sub(d, "CreatedAt", iso_time(meta.created))
    _sub(d, "UpdatedAt", iso_time(meta.updated))
    _sub(d, "AccessedAt", iso_time(meta.updated))
    _counts(d, c)
    _opt(d, "UserMetadata", p.user_metadata or None)
    _opt(d, "ForwardDeadLetteredMessagesTo", _forward_url(base, p.forward_dead_lettered_to))
    _sub(d, "AutoDeleteOnIdle", meta.echo.get("AutoDeleteOnIdle", TIMESPAN_MAX))
    _sub(d, "EntityAvailabilityStatus", "Available")
    return d


_CORRELATION_FIELDS = (
    ("CorrelationId", "CorrelationId"),
    ("MessageId", "MessageId"),
    ("To", "To"),
    ("ReplyTo", "ReplyTo"),
    ("Label", "Label"),
    ("SessionId", "SessionId"),
    ("ReplyToSessionId", "ReplyToSessionId"),
    ("ContentType", "ContentType"),
)


def _xsi_type(el: ET.Element, name: str) -> None:
    el.set(f"{{{XSI}}}type", name)


def _value_type(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "boolean", str(value).lower()
    if isinstance(value, int):
        return ("int" if -(2**31) <= value < 2**31 else "long"), str(value)
    if isinstance(value, float):
        return "double", repr(value)
    return "string", str(value)


def _key_values(parent: ET.Element, values: dict[str, Any] | None) -> None:
    for key, value in (values or {}).items():
        kv = _sub(parent, "KeyValueOfstringanyType")
        _sub(kv, "Key", key)
        vtype, text = _value_type(value)
        v = _sub(kv, "Value", text)
        v.set("xmlns:d6p1", XSD)  # a prefix declaration the SDK reads back through the type string
        _xsi_type(v, f"d6p1:{vtype}")


def _read_key_values(parent: ET.Element | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in parent if parent is not None else ():
        parts = {c.tag.rsplit("}", 1)[-1]: c for c in kv}
        if "Key" in parts and "Value" in parts:
            out[parts["Key"].text or ""] = _typed_value(parts["Value"])
    return out


def rule_description(rule: Any, created: datetime) -> ET.Element:
    """RuleDescription of a config.RuleConfig (Correlation, Sql or True filter; optional SQL action)."""
    d = ET.Element(f"{{{SB}}}RuleDescription")
    f = _sub(d, "Filter")
    if rule.filter_type == "Correlation":
        _xsi_type(f, "CorrelationFilter")
        spec = rule.filter or {}
        for xml_name, key in _CORRELATION_FIELDS:
            if spec.get(key) is not None:
                _sub(f, xml_name, spec[key])
        _key_values(_sub(f, "Properties"), spec.get("Properties"))
    else:
        is_true = rule.filter_type == "True"
        expression = "1=1" if is_true else str(rule.filter)
        _xsi_type(f, "TrueFilter" if is_true else ("FalseFilter" if expression == "1=0" else "SqlFilter"))
        _sub(f, "SqlExpression", expression)
        _sub(f, "CompatibilityLevel", 20)
        if getattr(rule, "parameters", None):
            _key_values(_sub(f, "Parameters"), rule.parameters)
    a = _sub(d, "Action")
    if rule.action:
        _xsi_type(a, "SqlRuleAction")
        _sub(a, "SqlExpression", rule.action)
        _sub(a, "CompatibilityLevel", 20)
    else:
        _xsi_type(a, "EmptyRuleAction")
    _sub(d, "CreatedAt", iso_time(created))
    _sub(d, "Name", rule.name)
    return d


def namespace_info(name: str, sku: str, created: datetime) -> ET.Element:
    """NamespaceInfo for GET /$namespaceinfo."""
    d = ET.Element(f"{{{SB}}}NamespaceInfo")
    _sub(d, "CreatedTime", iso_time(created))
    _sub(d, "MessagingSKU", sku)
    _opt(d, "MessagingUnits", 1 if sku == "Premium" else None)
    _sub(d, "ModifiedTime", iso_time(created))
    _sub(d, "Name", name)
    _sub(d, "NamespaceType", "Messaging")
    return d


# ---------------------------------------------------------------------- requests
def _content(body: bytes) -> ET.Element:
    """The description element inside a PUT's Atom entry (the first child of <content>)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise AtomError(f"the request body is not XML: {exc}") from exc
    content = root.find(f"{{{ATOM}}}content")
    if content is None or not len(content):
        raise AtomError("the request body is not an Atom entry with a description in its content")
    return content[0]


def description_kind(body: bytes) -> str:
    """Which description a PUT carries: QueueDescription, TopicDescription, ..."""
    return _content(body).tag.rsplit("}", 1)[-1]


def description(body: bytes, kind: str) -> dict[str, ET.Element]:
    """The child elements (by local name) of the <kind> description inside a PUT's Atom entry."""
    el = _content(body)
    if el.tag.rsplit("}", 1)[-1] != kind:
        raise AtomError(f"expected a {kind}, got {el.tag.rsplit('}', 1)[-1]}")
    return {child.tag.rsplit("}", 1)[-1]: child for child in el}


def text(fields: dict[str, ET.Element], name: str) -> str | None:
    """A child's text (None when absent, or present with xsi:nil / no text)."""
    el = fields.get(name)
    if el is None or el.get(f"{{{XSI}}}nil") == "true":
        return None
    return (el.text or "").strip() or None


def flag(fields: dict[str, ET.Element], name: str) -> bool | None:
    """An xs:boolean child."""
    v = text(fields, name)
    if v is None:
        return None
    if v.lower() not in ("true", "false"):
        raise AtomError(f"{name} must be true or false, got {v!r}")
    return v.lower() == "true"


def number(fields: dict[str, ET.Element], name: str) -> int | None:
    """An xs:int child."""
    v = text(fields, name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise AtomError(f"{name} must be an integer, got {v!r}") from None


def duration(fields: dict[str, ET.Element], name: str) -> float | None:
    """An xs:duration child, in seconds."""
    v = text(fields, name)
    return None if v is None else parse_iso_duration(v)


def _typed_value(el: ET.Element) -> Any:
    vtype = (el.get(f"{{{XSI}}}type") or "string").rsplit(":", 1)[-1]
    raw = el.text or ""
    if vtype in ("int", "long"):
        return int(raw)
    if vtype == "boolean":
        return raw.lower() == "true"
    if vtype == "double":
        return float(raw)
    if vtype == "duration":
        return timedelta(seconds=parse_iso_duration(raw)).total_seconds()
    return raw


def rule(fields: dict[str, ET.Element], name: str) -> tuple[str, Any, str | None, dict[str, Any]]:
    """(filter_type, filter, action, SQL filter parameters) of a RuleDescription's Filter and Action."""
    f = fields.get("Filter")
    ftype = (f.get(f"{{{XSI}}}type") or "TrueFilter").rsplit(":", 1)[-1] if f is not None else "TrueFilter"
    children = {c.tag.rsplit("}", 1)[-1]: c for c in f} if f is not None else {}
    parameters = _read_key_values(children.get("Parameters"))
    action_el = fields.get("Action")
    action = None
    if action_el is not None and (action_el.get(f"{{{XSI}}}type") or "").endswith("SqlRuleAction"):
        achildren = {c.tag.rsplit("}", 1)[-1]: c for c in action_el}
        if (aparams := achildren.get("Parameters")) is not None and len(aparams):
            raise AtomError(f"rule {name!r}: SQL action parameters are not supported by the emulator")
        action = text(achildren, "SqlExpression")
    if ftype == "TrueFilter":
        return "True", None, action, {}
    if ftype == "FalseFilter":
        return "Sql", "1=0", action, {}
    if ftype == "SqlFilter":
        expression = text(children, "SqlExpression")
        if not expression:
            raise AtomError(f"rule {name!r}: a SqlFilter needs a SqlExpression")
        return "Sql", expression, action, parameters
    if ftype == "CorrelationFilter":
        spec: dict[str, Any] = {}
        for xml_name, key in _CORRELATION_FIELDS:
            if (v := text(children, xml_name)) is not None:
                spec[key] = v
        props = _read_key_values(children.get("Properties"))
        if props:
            spec["Properties"] = props
        if not spec:
            raise AtomError(f"rule {name!r}: a CorrelationFilter needs at least one property")
        return "Correlation", spec, action, {}
    raise AtomError(f"rule {name!r}: unknown filter type {ftype!r}")
