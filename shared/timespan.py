""".NET TimeSpan strings as host.json writes them: "[-][d.]hh:mm:ss[.fffffff]" -> seconds (the app validates
host.json with it at start, shared/host_json.py; the local host reads host.json with it too)."""

from __future__ import annotations

import re

_TIMESPAN = re.compile(
    r"^(?P<sign>-)?(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})(?::(?P<seconds>\d{1,2})"
    r"(?:\.(?P<fraction>\d{1,7}))?)?$"
)


class TimeSpanError(ValueError):
    """Not a .NET TimeSpan string."""


def parse_timespan(text: str) -> float:
    """Seconds in a TimeSpan such as "00:00:05", "00:05:00", "00:00:00.80", "1.02:03:04".

    Also accepts a bare number of days ("1"), as TimeSpan.Parse does. Hours must be < 24,
    minutes and seconds < 60 (TimeSpan.Parse rejects larger values in the hh:mm:ss form)."""
    if not isinstance(text, str):
        raise TimeSpanError(f"TimeSpan must be a string like '00:00:05', not {text!r}")
    raw = text.strip()
    if raw.isdigit():
        return int(raw) * 86400.0
    m = _TIMESPAN.match(raw)
    if not m:
        raise TimeSpanError(f"{text!r} is not a TimeSpan like '00:00:05' or '1.00:00:00'")
    hours, minutes = int(m["hours"]), int(m["minutes"])
    seconds = int(m["seconds"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise TimeSpanError(f"{text!r}: hours must be < 24, minutes and seconds < 60")
    total = int(m["days"] or 0) * 86400 + hours * 3600 + minutes * 60 + seconds
    fraction = float("0." + m["fraction"]) if m["fraction"] else 0.0
    value = total + fraction
    return -value if m["sign"] else value
