"""Entity configuration in the official Service Bus emulator's Config.json format."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or malformed."""


def parse_duration(text: str) -> float:
    """ISO-8601 duration (the subset Service Bus uses: PnDTnHnMnS) to seconds."""
    if not isinstance(text, str):
        raise ConfigError(f"duration must be a string like 'PT1M', got {text!r}")
    m = _DURATION.match(text.strip().upper())
    if not m or text.strip().upper() in ("P", "PT"):
        raise ConfigError(f"invalid ISO-8601 duration {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]


def format_duration(seconds: float) -> str:
    """Seconds to a compact ISO-8601 duration (for docs and round-tripping configs in tests)."""
    if seconds % 86400 == 0 and seconds >= 86400:
        return f"P{int(seconds // 86400)}D"
    if seconds == int(seconds):
        return f"PT{int(seconds)}S"
    return f"PT{seconds}S"


@dataclass(frozen=True)
class QueueProperties:
    """Queue settings; defaults follow the Service Bus service defaults."""

    lock_duration: float = 60.0
    max_delivery_count: int = 10
    default_ttl: float = 14 * 86400.0
    dead_letter_on_expiration: bool = False
    requires_session: bool = False
    requires_duplicate_detection: bool = False
    duplicate_window: float = 600.0
    forward_to: str | None = None
    forward_dead_lettered_to: str | None = None
    # admin API (ATOM) properties that are not in the official Config.json
    max_size_mb: int | None = None
    max_message_size_kib: int | None = None
    user_metadata: str = ""

    def with_(self, **changes: Any) -> QueueProperties:
        """Return a copy with changes (dataclasses.replace, named for brevity in tests)."""
        return replace(self, **changes)

    def to_config(self) -> dict[str, Any]:
        """Official Config.json 'Properties' object."""
        return {
            "DeadLetteringOnMessageExpiration": self.dead_letter_on_expiration,
            "DefaultMessageTimeToLive": format_duration(self.default_ttl),
            "DuplicateDetectionHistoryTimeWindow": format_duration(self.duplicate_window),
            "ForwardDeadLetteredMessagesTo": self.forward_dead_lettered_to or "",
            "ForwardTo": self.forward_to or "",
            "LockDuration": format_duration(self.lock_duration),
            "MaxDeliveryCount": self.max_delivery_count,
            "RequiresDuplicateDetection": self.requires_duplicate_detection,
            "RequiresSession": self.requires_session,
        }


@dataclass(frozen=True)
class QueueConfig:
    """A named queue and its properties."""

    name: str
    properties: QueueProperties


@dataclass(frozen=True)
class RuleConfig:
    """A subscription rule as written in Config.json: filter type, its definition and an optional action.

    `filter` is the CorrelationFilter object or the SQL expression; `action` the SqlRuleAction expression.
    They are compiled by filters.compile_rule, which also validates them when the config is loaded.
    """

    name: str
    filter_type: str  # "Correlation" | "Sql" | "True"
    filter: Any
    action: str | None = None
    parameters: dict[str, Any] | None = None  # SqlFilter.Parameters (admin API), bound by compile_rule


@dataclass(frozen=True)
class SubscriptionConfig:
    """A subscription: queue-like properties plus its rules (none = the $Default TrueFilter)."""

    name: str
    properties: QueueProperties
    rules: tuple[RuleConfig, ...] = ()


@dataclass(frozen=True)
class TopicProperties:
    """Topic settings (the official schema's topic Properties)."""

    default_ttl: float = 14 * 86400.0
    requires_duplicate_detection: bool = False
    duplicate_window: float = 600.0
    max_size_mb: int | None = None
    max_message_size_kib: int | None = None
    user_metadata: str = ""

    def to_config(self) -> dict[str, Any]:
        """Official Config.json topic 'Properties' object."""
        return {
            "DefaultMessageTimeToLive": format_duration(self.default_ttl),
            "DuplicateDetectionHistoryTimeWindow": format_duration(self.duplicate_window),
            "RequiresDuplicateDetection": self.requires_duplicate_detection,
        }


@dataclass(frozen=True)
class TopicConfig:
    """A topic and its subscriptions."""

    name: str
    properties: TopicProperties
    subscriptions: tuple[SubscriptionConfig, ...]


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator reads from Config.json."""

    namespace: str
    queues: tuple[QueueConfig, ...]
    topics: tuple[TopicConfig, ...] = ()


def _bool(props: dict[str, Any], key: str, default: bool) -> bool:
    v = props.get(key, default)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ConfigError(f"{key} must be true or false, got {v!r}")


def parse_queue_properties(props: dict[str, Any]) -> QueueProperties:
    """Translate an official 'Properties' object into QueueProperties."""
    if not isinstance(props, dict):
        raise ConfigError("queue Properties must be an object")
    d = QueueProperties()
    mdc = props.get("MaxDeliveryCount", d.max_delivery_count)
    if not isinstance(mdc, int) or mdc < 1:
        raise ConfigError(f"MaxDeliveryCount must be a positive integer, got {mdc!r}")
    lock = parse_duration(props["LockDuration"]) if props.get("LockDuration") else d.lock_duration
    if lock <= 0:
        raise ConfigError("LockDuration must be positive")
    return QueueProperties(
        lock_duration=lock,
        max_delivery_count=mdc,
        default_ttl=(
            parse_duration(props["DefaultMessageTimeToLive"])
            if props.get("DefaultMessageTimeToLive")
            else d.default_ttl
        ),
        dead_letter_on_expiration=_bool(props, "DeadLetteringOnMessageExpiration", False),
        requires_session=_bool(props, "RequiresSession", False),
        requires_duplicate_detection=_bool(props, "RequiresDuplicateDetection", False),
        duplicate_window=(
            parse_duration(props["DuplicateDetectionHistoryTimeWindow"])
            if props.get("DuplicateDetectionHistoryTimeWindow")
            else d.duplicate_window
        ),
        forward_to=props.get("ForwardTo") or None,
        forward_dead_lettered_to=props.get("ForwardDeadLetteredMessagesTo") or None,
    )


def parse_config(data: Any) -> EmulatorConfig:
    """Validate the parsed JSON document."""
    try:
        namespaces = data["UserConfig"]["Namespaces"]
    except (KeyError, TypeError) as exc:
        raise ConfigError("config must contain UserConfig.Namespaces") from exc
    if not isinstance(namespaces, list) or not namespaces:
        raise ConfigError("UserConfig.Namespaces must be a non-empty list")
    ns = namespaces[0]
    if not isinstance(ns, dict):
        raise ConfigError("each namespace must be an object")
    seen: set[str] = set()
    queues = [
        QueueConfig(q["Name"], parse_queue_properties(q.get("Properties", {}) or {}))
        for q in _named_entities(ns.get("Queues"), "queue", "queue", seen)
    ]
    topics = [parse_topic(t) for t in _named_entities(ns.get("Topics"), "topic", "queue or topic", seen)]
    return EmulatorConfig(
        namespace=str(ns.get("Name", "sbemulatorns")), queues=tuple(queues), topics=tuple(topics)
    )


def _named_entities(
    raw: Any, kind: str, duplicate_kind: str, seen: set[str], where: str = ""
) -> Iterator[dict[str, Any]]:
    """Yield each entry of a config list, checking it is an object with a Name not in `seen` (case-blind)."""
    for entry in raw or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("Name"), str) or not entry["Name"]:
            raise ConfigError(f"{where}each {kind} needs a non-empty Name")
        key = entry["Name"].lower()
        if key in seen:
            raise ConfigError(f"{where}duplicate {duplicate_kind} {entry['Name']!r}")
        seen.add(key)
        yield entry


def parse_topic(t: dict[str, Any]) -> TopicConfig:
    """One entry of `Topics[]`: Properties, Subscriptions[] with their Properties and Rules[]."""
    name = t["Name"]
    props = t.get("Properties", {}) or {}
    if not isinstance(props, dict):
        raise ConfigError(f"topic {name!r}: Properties must be an object")
    d = TopicProperties()
    tprops = TopicProperties(
        default_ttl=(
            parse_duration(props["DefaultMessageTimeToLive"])
            if props.get("DefaultMessageTimeToLive")
            else d.default_ttl
        ),
        requires_duplicate_detection=_bool(props, "RequiresDuplicateDetection", False),
        duplicate_window=(
            parse_duration(props["DuplicateDetectionHistoryTimeWindow"])
            if props.get("DuplicateDetectionHistoryTimeWindow")
            else d.duplicate_window
        ),
    )
    subs: list[SubscriptionConfig] = []
    raw_subs = t.get("Subscriptions", []) or []
    if not isinstance(raw_subs, list):
        raise ConfigError(f"topic {name!r}: Subscriptions must be a list")
    for sub in _named_entities(raw_subs, "subscription", "subscription", set(), where=f"topic {name!r}: "):
        sp = sub.get("Properties", {}) or {}
        for unsupported in ("RequiresDuplicateDetection", "DuplicateDetectionHistoryTimeWindow"):
            if isinstance(sp, dict) and sp.get(unsupported):
                raise ConfigError(f"subscription {sub['Name']!r}: {unsupported} is a topic property")
        qp = parse_queue_properties(sp)
        # a subscription keeps a message no longer than its topic would
        qp = qp.with_(default_ttl=min(qp.default_ttl, tprops.default_ttl))
        subs.append(SubscriptionConfig(sub["Name"], qp, _parse_rules(name, sub)))
    return TopicConfig(name, tprops, tuple(subs))


def _parse_rules(topic: str, sub: dict[str, Any]) -> tuple[RuleConfig, ...]:
    from .filters import FilterError, compile_rule

    rules: list[RuleConfig] = []
    raw = sub.get("Rules", []) or []
    if not isinstance(raw, list):
        raise ConfigError(f"subscription {sub['Name']!r}: Rules must be a list")
    for r in raw:
        where = f"topic {topic!r} subscription {sub['Name']!r}"
        if not isinstance(r, dict) or not isinstance(r.get("Name"), str) or not r["Name"]:
            raise ConfigError(f"{where}: each rule needs a non-empty Name")
        props = r.get("Properties")
        if not isinstance(props, dict):
            raise ConfigError(f"{where} rule {r['Name']!r}: Properties must be an object")
        ftype = str(props.get("FilterType", ""))
        action_obj = props.get("Action") or {}
        action = action_obj.get("SqlExpression") if isinstance(action_obj, dict) else None
        if ftype.lower() == "correlation":
            rule = RuleConfig(r["Name"], "Correlation", props.get("CorrelationFilter"), action or None)
        elif ftype.lower() == "sql":
            sql = props.get("SqlFilter") or {}
            expr = sql.get("SqlExpression") if isinstance(sql, dict) else None
            rule = RuleConfig(r["Name"], "Sql", expr, action or None)
        else:
            raise ConfigError(f"{where} rule {r['Name']!r}: FilterType must be Correlation or Sql")
        try:
            compile_rule(rule)
        except FilterError as exc:
            raise ConfigError(f"{where} rule {r['Name']!r}: {exc}") from exc
        rules.append(rule)
    return tuple(rules)


def load_config(path: str | Path) -> EmulatorConfig:
    """Read and validate a Config.json file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    return parse_config(data)


def make_config(
    queues: dict[str, QueueProperties],
    namespace: str = "sbemulatorns",
    topics: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build an official-format config document (used by tests and tooling); topics go in as written."""
    return {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": namespace,
                    "Queues": [{"Name": n, "Properties": p.to_config()} for n, p in queues.items()],
                    "Topics": list(topics or []),
                }
            ],
            "Logging": {"Type": "File"},
        }
    }
