"""When a schedule's runs come due: intervals, cron expressions, one time.

A `Rule` answers two questions in epoch seconds: when is the first run at or
after a moment, and when is the run after a given one.  Cron expressions are
evaluated by croniter (imported when the first cron rule is made, so that
``import nbfrost`` stays cheap); nbfrost does not parse cron itself, beyond
putting the rule into words for the badge and the dashboard (`describe_cron`).

Every parser here raises ``ValueError`` with a message that says what to
write instead; nothing here has state beyond the rule's own fields.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

__all__ = ["Rule", "IntervalRule", "CronRule", "OnceRule", "parse_interval",
           "parse_time", "describe_interval", "describe_cron", "zone"]

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h|d)?\s*$")
_INTERVAL_HELP = ("a number of seconds (30), a timedelta, or a string such as "
                  "'30s', '5m', '1h' or '1d'")
#: Most due times of a cron rule counted one by one when runs were missed;
#: past it the rest are counted as one more and the rule jumps to now.
CRON_COUNT_LIMIT = 10_000


def parse_interval(value: Any) -> float:
    """Seconds from a number, a `timedelta` or a string like ``"5m"``.

    Raises:
        TypeError: not a number, timedelta or str.
        ValueError: not a positive, finite interval.
    """
    if isinstance(value, bool):
        raise TypeError(f"interval must be {_INTERVAL_HELP}, got {value!r}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _INTERVAL.match(value)
        if match is None:
            raise ValueError(f"cannot read the interval {value!r}; write {_INTERVAL_HELP}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise TypeError(f"interval must be {_INTERVAL_HELP}, got {type(value).__name__} {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"the interval must be more than 0 seconds, got {value!r}; write "
                         f"{_INTERVAL_HELP}")
    return seconds


def parse_time(value: Any, what: str) -> float:
    """Epoch seconds from a `datetime` (naive ones are local time), an ISO
    8601 string, or a number of epoch seconds."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a datetime, got {value!r}")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what}: cannot read {value!r} as a date and time; write an "
                             "ISO 8601 string such as '2026-12-24T18:30' or pass a datetime") from None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    raise TypeError(f"{what} must be a datetime (or epoch seconds), got {type(value).__name__} {value!r}")


def zone(tz: Any) -> tzinfo | None:
    """A `zoneinfo.ZoneInfo` from a name, a tzinfo as is, or None (local time)."""
    if tz is None or isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be a time zone name such as 'Europe/Berlin', a tzinfo or None, "
                        f"got {type(tz).__name__} {tz!r}")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}; pass an IANA name such as 'Europe/Berlin' "
                         "or 'UTC' (install the tzdata package if the system has none)") from None


def _plural(n: float, unit: str) -> str:
    text = f"{n:g}"
    return f"{text} {unit}"


def describe_interval(seconds: float) -> str:
    """``every 5 min``, ``every 30 s``, ``every 1 h 30 min``, ``every 2 days``."""
    if seconds % 86400 == 0:
        days = seconds / 86400
        return "every day" if days == 1 else f"every {days:g} days"
    if seconds >= 3600 and seconds % 60 == 0:
        hours, rest = divmod(seconds, 3600)
        text = f"every {hours:g} h"
        return text + (f" {rest / 60:g} min" if rest else "")
    if seconds >= 60 and seconds % 60 == 0:
        return f"every {seconds / 60:g} min"
    return f"every {_plural(seconds, 's')}"


class Rule(ABC):
    """When runs come due.  Times are epoch seconds."""

    __slots__ = ()

    @abstractmethod
    def first(self, now: float, start: float | None) -> float | None:
        """The first due time at or after *start* (default: as the rule says from *now*)."""

    @abstractmethod
    def after(self, due: float) -> float | None:
        """The due time after *due*, or None when there is none."""

    def through(self, due: float, now: float) -> tuple[int, float | None]:
        """How many due times from *due* (included) up to *now*, and the first after *now*."""
        count, nxt = 1, self.after(due)
        while nxt is not None and nxt <= now:
            count += 1
            if count >= CRON_COUNT_LIMIT:
                # Long asleep: stop counting one by one, start again from now.
                nxt = self.after(now)
                break
            nxt = self.after(nxt)
        return count, nxt

    @abstractmethod
    def describe(self) -> str:
        """The rule in words, for the badge and the dashboard."""

    @property
    @abstractmethod
    def expression(self) -> str:
        """The rule as the user wrote it (normalised)."""


class IntervalRule(Rule):
    """Every *seconds*: the first run at *start*, or one interval from now."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def first(self, now: float, start: float | None) -> float:
        return now + self.seconds if start is None else start

    def after(self, due: float) -> float:
        return due + self.seconds

    def through(self, due: float, now: float) -> tuple[int, float]:
        if now < due:
            return 1, due + self.seconds
        count = int((now - due) // self.seconds) + 1
        return count, due + count * self.seconds

    def describe(self) -> str:
        return describe_interval(self.seconds)

    @property
    def expression(self) -> str:
        return f"every {self.seconds:g} s"


class OnceRule(Rule):
    """Once, at *when*."""

    __slots__ = ("when",)

    def __init__(self, when: float) -> None:
        self.when = when

    def first(self, now: float, start: float | None) -> float:
        return self.when

    def after(self, due: float) -> None:
        return None

    def describe(self) -> str:
        return "once at " + datetime.fromtimestamp(self.when).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def expression(self) -> str:
        return "at " + datetime.fromtimestamp(self.when, timezone.utc).isoformat()


_CRON_HELP = ("write 5 fields 'minute hour day-of-month month day-of-week' (e.g. '0 * * * *' "
              "for every hour, '*/5 * * * *' for every 5 minutes), or 6 with seconds first "
              "('*/10 * * * * *' for every 10 seconds)")


class CronRule(Rule):
    """A cron expression evaluated by croniter, in time zone *tz*.

    5 fields (minute hour day month weekday), or 6 with seconds first.  In
    *tz* (a ``zoneinfo`` zone) the expression reads wall-clock time, and a
    daylight-saving change is handled as croniter does: a wall time that
    does not exist that day (02:30 when clocks go from 02:00 to 03:00)
    runs at the end of the gap (03:00); a wall time that happens twice
    (02:30 when clocks go back) runs both times; ``0 * * * *`` runs every
    real hour across both changes.  With ``tz=None`` the process's local
    time is used.
    """

    __slots__ = ("text", "tz", "_seconds_first")

    def __init__(self, text: str, tz: tzinfo | None = None) -> None:
        if not isinstance(text, str):
            raise TypeError(f"a cron expression must be a str, got {type(text).__name__} {text!r}")
        from croniter import croniter

        normal = " ".join(text.split())
        fields = normal.split(" ") if normal else []
        if len(fields) not in (5, 6):
            raise ValueError(f"{text!r} has {len(fields)} fields, not a cron expression; {_CRON_HELP}")
        self.text = normal
        self.tz = tz
        self._seconds_first = len(fields) == 6
        try:
            croniter(normal, datetime.now(timezone.utc), second_at_beginning=self._seconds_first)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{text!r} is not a valid cron expression ({exc}); {_CRON_HELP}") from None

    def _moment(self, t: float) -> datetime:
        if self.tz is None:
            return datetime.fromtimestamp(t)  # naive local time, as cron reads it
        return datetime.fromtimestamp(t, self.tz)

    def after(self, due: float) -> float:
        from croniter import croniter

        it = croniter(self.text, self._moment(due), second_at_beginning=self._seconds_first)
        # A datetime, not get_next(float): croniter reads a naive (local)
        # time as UTC when it makes a timestamp; .timestamp() reads it as local.
        return float(it.get_next(datetime).timestamp())

    def first(self, now: float, start: float | None) -> float:
        if start is None or start <= now:
            return self.after(now)  # the first match after now
        return self.after(start - 1e-6)  # the first match at or after start

    def describe(self) -> str:
        words = describe_cron(self.text)
        if self.tz is not None:
            words += f" ({self.tz})"
        return words

    @property
    def expression(self) -> str:
        return self.text + (f" ({self.tz})" if self.tz is not None else "")


_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_NAMED_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_NUMBER = re.compile(r"^\d+$")
_STEP = re.compile(r"^\*/(\d+)$")


def _day(token: str) -> str | None:
    token = token.lower()
    if token in _NAMED_DAYS:
        return _DAYS[_NAMED_DAYS[token]]
    if _NUMBER.match(token) and int(token) <= 7:
        return _DAYS[int(token)]
    return None


def _weekdays(field: str) -> str | None:
    if "-" in field and "," not in field:
        lo, _, hi = field.partition("-")
        a, b = _day(lo), _day(hi)
        return None if a is None or b is None else f"{a} to {b}"
    names = [_day(t) for t in field.split(",")]
    if any(n is None for n in names):
        return None
    return ", ".join(n for n in names if n is not None)


def _describe_minutes(minute: str) -> str | None:
    """A minute field of a rule that fires every hour, in words; else None."""
    if minute == "*":
        return "every minute"
    step = _STEP.match(minute)
    if step:
        return f"every {step.group(1)} min"
    if _NUMBER.match(minute):
        return f"at minute {int(minute)} of every hour"
    return None


def describe_cron(text: str) -> str:
    """A cron expression in words for its common shapes, else ``cron '<text>'``.

    ``* * * * *`` every minute; ``*/5 * * * *`` every 5 min; ``0 * * * *``
    at minute 0 of every hour; ``30 9 * * *`` every day at 09:30;
    ``0 9 * * 1-5`` Monday to Friday at 09:00; ``0 0 1 * *`` on day 1 of
    every month at 00:00; 6 fields (seconds first) likewise, or every N s.
    """
    fields = text.split()
    fallback = f"cron '{text}'"
    if len(fields) == 6:
        sec, rest = fields[0], fields[1:]
        step = _STEP.match(sec)
        if all(f == "*" for f in rest) and (sec == "*" or step):
            return "every second" if sec == "*" else f"every {step.group(1)} s"  # type: ignore[union-attr]
        if sec != "0":
            return fallback
        fields = rest
    if len(fields) != 5:
        return fallback
    minute, hour, dom, month, dow = fields
    if month != "*":
        return fallback
    if hour == "*" and dom == "*" and dow == "*":
        return _describe_minutes(minute) or fallback
    if not _NUMBER.match(minute):
        return fallback
    step = _STEP.match(hour)
    if step and dom == "*" and dow == "*":
        return f"at minute {int(minute)} of every {step.group(1)} hours"
    if not _NUMBER.match(hour):
        return fallback
    clock = f"{int(hour):02d}:{int(minute):02d}"
    if dom == "*" and dow == "*":
        return f"every day at {clock}"
    if dom == "*":
        days = _weekdays(dow)
        return fallback if days is None else f"{days} at {clock}"
    if dow == "*" and _NUMBER.match(dom):
        return f"on day {int(dom)} of every month at {clock}"
    return fallback
