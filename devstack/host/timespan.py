""".NET TimeSpan strings as host.json writes them: the app's own parser (shared/timespan.py), which also
validates host.json at start, so the local host and the app read every value the same way."""

from shared.timespan import TimeSpanError, parse_timespan

__all__ = ["TimeSpanError", "parse_timespan"]
