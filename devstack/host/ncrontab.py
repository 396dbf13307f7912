"""NCRONTAB schedules as the Functions timer trigger reads them: six fields,
`{second} {minute} {hour} {day} {month} {day-of-week}` (a five-field expression is taken as
minute-first with second 0). Each field: `*`, a number, a list `a,b`, a range `a-b`, a step
`*/n` or `a-b/n`; months and weekdays also by three-letter name; weekday 0 or 7 is Sunday.
As in cron, when both day and day-of-week are restricted a time matches if either does.

Times are UTC (the Functions default when WEBSITE_TIME_ZONE is not set)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """Not a valid NCRONTAB expression; the message names the field."""


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise CronError(
                f"{expression!r}: NCRONTAB needs 6 fields (second minute hour day month day-of-week)"
            )
        sets = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[5])
        return cls(
            expression=expression,
            seconds=sets[0],
            minutes=sets[1],
            hours=sets[2],
            days=sets[3],
            months=sets[4],
            weekdays=weekdays,
            days_restricted=parts[3] not in ("*", "?"),
            weekdays_restricted=parts[5] not in ("*", "?"),
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def matches(self, t: datetime) -> bool:
        return (
            t.second in self.seconds
            and t.minute in self.minutes
            and t.hour in self.hours
            and t.month in self.months
            and self._day_matches(t)
        )

    def next_after(self, after: datetime) -> datetime:
        """The first matching time strictly after `after` (whole seconds, same tzinfo; naive = UTC)."""
        tz = after.tzinfo or UTC
        t = after.astimezone(tz).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
                continue
            if not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if t.minute not in self.minutes:
                t = (t + timedelta(minutes=1)).replace(second=0)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise CronError(f"{self.expression!r} never fires (no match within five years)")

    def occurrences(self, after: datetime, count: int) -> list[datetime]:
        out: list[datetime] = []
        t = after
        for _ in range(count):
            t = self.next_after(t)
            out.append(t)
        return out


def _value(token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    key = token.lower()
    if key in names:
        return names[key]
    if not token.isdigit():
        raise CronError(f"{name} field: {token!r} is not a number")
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{name} field: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{name} field: empty list item in {text!r}")
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, (6 if name == "day-of-week" else high)
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if start > end:
                raise CronError(f"{name} field: range {base!r} runs backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)
