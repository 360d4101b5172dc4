"""Report windows: parse ``--since`` / ``--until`` and ``?since=&until=`` values.

Every accepted form names a stretch of time; ``since`` takes its start and
``until`` its end, so ``since=2026-11-01&until=2026-11-30`` covers the whole of
November (up to December 1, 00:00) and ``since=this-month&until=this-month``
the current month. All times are UTC; values without a zone are read as UTC.

Accepted forms:

``2026-11-01T12:00:00Z``, ``2026-11-01T12:00``, ``2026-11-01 12:00+01:00``
    an instant (ISO 8601)
``2026-11-01`` / ``2026-11`` / ``2026``
    a day / month / year
``30d``, ``12h``, ``90min``, ``2w``
    that long ago (an instant)
``now``, ``today``, ``yesterday``, ``this-week``, ``last-week``, ``this-month``,
``last-month``, ``this-year``, ``last-year``
    named periods (weeks start on Monday)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from ..errors import RequestError

#: Shown in every error about a window value.
ACCEPTED_FORMS = (
    "an ISO date or time (2026-11-01, 2026-11, 2026-11-01T12:00:00Z), a time ago (30d, 12h, 90min, 2w) "
    "or one of now, today, yesterday, this-week, last-week, this-month, last-month, this-year, last-year"
)
DEFAULT_SINCE = "30d"
DEFAULT_UNTIL = "now"
#: The longest window a by-day report may ask for (ten years of days).
MAX_DAYS = 3660

_AGO = re.compile(r"^(\d{1,6})\s*(min|m|h|d|w)$")
_AGO_UNITS = {
    "min": timedelta(minutes=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Window:
    """``[since, until)`` in aware UTC."""

    since: datetime
    until: datetime

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()

    def to_json(self) -> dict:
        return {"since": iso(self.since), "until": iso(self.until)}


def iso(t: datetime) -> str:
    """``2026-11-01T00:00:00Z`` (microseconds kept when there are any)."""
    return t.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=timezone.utc)


def _next_month(t: datetime) -> datetime:
    if t.year == 9999 and t.month == 12:
        return datetime.max.replace(tzinfo=timezone.utc)
    return _month_start(t.year + (t.month == 12), t.month % 12 + 1)


def _named(name: str, now: datetime) -> tuple[datetime, datetime] | None:
    today = _midnight(now.date())
    week = today - timedelta(days=today.weekday())
    month = _month_start(now.year, now.month)
    year = _month_start(now.year, 1)
    periods = {
        "now": (now, now),
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this-week": (week, week + timedelta(weeks=1)),
        "last-week": (week - timedelta(weeks=1), week),
        "this-month": (month, _next_month(month)),
        "last-month": (_month_start(now.year - (now.month == 1), (now.month - 2) % 12 + 1), month),
        "this-year": (year, _month_start(now.year + 1, 1)),
        "last-year": (_month_start(now.year - 1, 1), year),
    }
    return periods.get(name)


def parse_period(value: str, field: str, now: datetime) -> tuple[datetime, datetime]:
    """The stretch of time ``value`` names, as ``(start, end)`` (equal for an instant)."""
    if not isinstance(value, str) or not value.strip():
        raise RequestError(field, f"{value!r} is not a time; expected {ACCEPTED_FORMS}")
    text = value.strip()
    lowered = text.lower().replace("_", "-")
    named = _named(lowered, now)
    if named:
        return named
    m = _AGO.match(lowered)
    if m:
        try:
            t = now - int(m.group(1)) * _AGO_UNITS[m.group(2)]
        except OverflowError:
            raise RequestError(field, f"{value!r} reaches back before the year 1; ask for less") from None
        return t, t
    try:
        if _YEAR.match(text):
            start = _month_start(int(text), 1)
            return start, _next_month(start.replace(month=12))
        m = _MONTH.match(text)
        if m:
            start = _month_start(int(m.group(1)), int(m.group(2)))
            return start, _next_month(start)
        if _DAY.match(text):
            d = date.fromisoformat(text)
            return _midnight(d), _midnight(d) + timedelta(days=1)
    except (ValueError, OverflowError) as e:  # the form is right, a number is out of range
        raise RequestError(field, f"{value!r} is not a time ({e}); expected {ACCEPTED_FORMS}") from None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(field, f"{value!r} is not a time; expected {ACCEPTED_FORMS}") from None
    t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    return t, t


def parse_window(
    since: str | datetime | None = None, until: str | datetime | None = None, now: datetime | None = None
) -> Window:
    """The report window ``[since, until)``; defaults: the last 30 days up to now.

    Raises :class:`RequestError` naming ``since`` or ``until`` and the accepted forms.
    """
    now = now or datetime.now(timezone.utc)

    def point(value, field: str, default: str, end: bool) -> datetime:
        if isinstance(value, datetime):
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        start, stop = parse_period(default if value in (None, "") else value, field, now)
        return stop if end else start

    window = Window(point(since, "since", DEFAULT_SINCE, False), point(until, "until", DEFAULT_UNTIL, True))
    if window.until <= window.since:
        raise RequestError(
            "until",
            f"the window must end after it starts, but since={iso(window.since)} and "
            f"until={iso(window.until)}; move until later or since earlier",
        )
    return window


def day_number(t: datetime) -> int:
    """Days since 1970-01-01 (UTC) of the day ``t`` falls in."""
    return int(t.timestamp() // 86400)


def day_label(n: int) -> str:
    """``2026-11-01`` for a day number."""
    return (date(1970, 1, 1) + timedelta(days=int(n))).isoformat()
