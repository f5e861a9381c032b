"""Business hours such as "Mon-Fri 09:00-18:00, Sat 10:00-14:00" in a time zone.

Used by `run --once` (after-hours notices) and by service-level targets (waiting time counts only
while the shop is open).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent_tui.config import AutomationConfig
from agent_tui.errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(
    r"^\s*(?P<d1>[a-z]{3})(?:\s*-\s*(?P<d2>[a-z]{3}))?\s+"
    r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Span:
    days: frozenset[int]        # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class BusinessHours:
    spans: tuple[Span, ...]
    zone: tzinfo
    holidays: frozenset[date] = frozenset()     # closed all day (local dates)

    @classmethod
    def from_config(cls, automation: AutomationConfig) -> BusinessHours | None:
        """The `[automation]` hours, or None when none are configured (always open)."""
        if not automation.business_hours:
            return None
        return cls.parse(automation.business_hours, automation.timezone, automation.holidays)

    @classmethod
    def parse(cls, text: str, timezone: str | None = None,
              holidays: Iterable[date] = ()) -> BusinessHours:
        """Parse the config value; a bad one raises ConfigError naming the key."""
        spans = []
        for part in text.split(","):
            m = _SPAN.match(part.lower())
            if not m:
                raise ConfigError(f"cannot read {part.strip()!r}: expected e.g. "
                                  "'Mon-Fri 09:00-18:00, Sat 10:00-14:00'",
                                  key="automation.business_hours")
            d1, d2 = m["d1"], m["d2"] or m["d1"]
            if d1 not in DAYS or d2 not in DAYS:
                raise ConfigError(f"unknown day in {part.strip()!r} (use Mon..Sun)",
                                  key="automation.business_hours")
            i, j = DAYS.index(d1), DAYS.index(d2)
            days = frozenset(range(i, j + 1)) if i <= j else frozenset([*range(i, 7),
                                                                        *range(0, j + 1)])
            try:
                start = time(int(m["h1"]), int(m["m1"]))
                end = time(int(m["h2"]), int(m["m2"])) if m["h2"] != "24" else time.max
            except ValueError as exc:
                raise ConfigError(f"bad time in {part.strip()!r}: {exc}",
                                  key="automation.business_hours") from None
            if end <= start:
                raise ConfigError(f"{part.strip()!r} ends before it starts",
                                  key="automation.business_hours")
            spans.append(Span(days, start, end))
        try:
            zone: tzinfo = ZoneInfo(timezone) if timezone else _local_zone()
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {timezone!r}",
                              key="automation.timezone") from None
        return cls(tuple(spans), zone, frozenset(holidays))

    def is_open(self, when: datetime) -> bool:
        local = when.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        t = local.time()
        return any(local.weekday() in s.days and s.start <= t < s.end for s in self.spans)

    def open_seconds_between(self, start: datetime, end: datetime) -> float:
        """Seconds of opening time between two instants (for waiting time against an SLA)."""
        if end <= start:
            return 0.0
        total = 0.0
        day = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        while day <= last:
            for span in () if day in self.holidays else self.spans:
                if day.weekday() not in span.days:
                    continue
                opens = datetime.combine(day, span.start, self.zone)
                closes = datetime.combine(day, span.end, self.zone)
                lo, hi = max(opens, start), min(closes, end)
                if hi > lo:
                    # In UTC: between two times of one zone Python subtracts wall clocks, which
                    # is an hour off across a DST change.
                    total += (hi.astimezone(UTC) - lo.astimezone(UTC)).total_seconds()
            day += timedelta(days=1)
        return total


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone
