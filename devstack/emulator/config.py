"""Entity configuration in the official Service Bus emulator's Config.json format."""

from __future__ import annotations

import json
import re
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
class EmulatorConfig:
    """Everything the emulator reads from Config.json."""

    namespace: str
    queues: tuple[QueueConfig, ...]


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
    queues: list[QueueConfig] = []
    seen: set[str] = set()
    for q in ns.get("Queues", []) or []:
        if not isinstance(q, dict) or not isinstance(q.get("Name"), str) or not q["Name"]:
            raise ConfigError("each queue needs a non-empty Name")
        key = q["Name"].lower()
        if key in seen:
            raise ConfigError(f"duplicate queue {q['Name']!r}")
        seen.add(key)
        queues.append(QueueConfig(q["Name"], parse_queue_properties(q.get("Properties", {}) or {})))
    if ns.get("Topics"):
        raise ConfigError("topics are not supported by this emulator (queues only)")
    return EmulatorConfig(namespace=str(ns.get("Name", "sbemulatorns")), queues=tuple(queues))


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


def make_config(queues: dict[str, QueueProperties], namespace: str = "sbemulatorns") -> dict[str, Any]:
    """Build an official-format config document (used by tests and tooling)."""
    return {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": namespace,
                    "Queues": [{"Name": n, "Properties": p.to_config()} for n, p in queues.items()],
                    "Topics": [],
                }
            ],
            "Logging": {"Type": "File"},
        }
    }
