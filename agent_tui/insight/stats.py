"""Stats from the store: volume, response and resolution times, SLA breaches, automation share.

Two reads from the store (`stats_messages`, `closed_since`, on SQLite and PostgreSQL alike), then
plain Python; the TUI runs them on its reader connection in a worker thread.

Definitions:
- volume: inbound messages per channel per day (UTC).
- a wait starts at the first inbound message after our last reply and ends at our next reply;
  the first wait of a conversation gives the first-response time. Waits that started in the
  period count; one still open counts as a breach once it is past its target.
- SLA breach: a wait longer than the channel's `[sla]` target in opening time.
- resolution: first inbound to closing, for conversations closed in the period.
- automatic: replies sent from an outbox row marked `automatic` (`run --once`).
- suggestion use, from the outbox payload of replies: `entry_id` set means a knowledge entry was
  taken; `suggestion_edited` true means it was changed before sending; `suggestions_shown` true
  without an entry means suggestions were offered and ignored.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.config import SlaConfig
from agent_tui.insight.sla import open_seconds_between, target_seconds
from agent_tui.store.base import StoreBackend

ALL = "all"


@dataclass(frozen=True, slots=True)
class Durations:
    count: int
    median_seconds: float | None
    p90_seconds: float | None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Durations:
        values = sorted(seconds)
        if not values:
            return cls(0, None, None)
        # Nearest rank: the p90 is a time some reply actually took.
        p90 = values[max(0, math.ceil(0.9 * len(values)) - 1)]
        return cls(len(values), float(statistics.median(values)), float(p90))


@dataclass(frozen=True, slots=True)
class SlaFigures:
    waits: int
    breaches: int


@dataclass(frozen=True, slots=True)
class SuggestionUse:
    taken_unchanged: int = 0
    edited: int = 0
    ignored: int = 0
    written: int = 0        # replies without a suggestion on record


@dataclass(slots=True)
class Stats:
    since: datetime
    until: datetime
    volume: dict[str, dict[date, int]] = field(default_factory=dict)   # channel -> day -> count
    first_response: dict[str, Durations] = field(default_factory=dict)  # channel or "all"
    resolution: dict[str, Durations] = field(default_factory=dict)
    sla: dict[str, SlaFigures] = field(default_factory=dict)
    replies: int = 0
    automatic_replies: int = 0
    suggestions: SuggestionUse = field(default_factory=SuggestionUse)

    @property
    def automatic_share(self) -> float | None:
        return self.automatic_replies / self.replies if self.replies else None

    def as_json(self) -> dict[str, object]:
        def durations(d: dict[str, Durations]) -> dict[str, object]:
            return {k: {"count": v.count, "median_seconds": v.median_seconds,
                        "p90_seconds": v.p90_seconds} for k, v in sorted(d.items())}
        share = self.automatic_share
        return {
            "format": 1,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "volume": {channel: {day.isoformat(): n for day, n in sorted(days.items())}
                       for channel, days in sorted(self.volume.items())},
            "first_response": durations(self.first_response),
            "resolution": durations(self.resolution),
            "sla": {k: {"waits": v.waits, "breaches": v.breaches}
                    for k, v in sorted(self.sla.items())},
            "replies": self.replies,
            "automatic_replies": self.automatic_replies,
            "automatic_share": None if share is None else round(share, 4),
            "suggestions": {"taken_unchanged": self.suggestions.taken_unchanged,
                            "edited": self.suggestions.edited,
                            "ignored": self.suggestions.ignored,
                            "written": self.suggestions.written},
        }


def compute_stats(store: StoreBackend, since: datetime, now: datetime, sla: SlaConfig,
                  hours: BusinessHours | None = None,
                  holidays: Collection[date] = ()) -> Stats:
    """The figures of one period, from any store backend (two reads, then pure Python)."""
    stats = Stats(since=since.astimezone(UTC), until=now.astimezone(UTC))
    rows = store.stats_messages(stats.since)
    closed = store.closed_since(stats.since)

    volume: dict[str, Counter[date]] = defaultdict(Counter)
    first: dict[str, list[float]] = defaultdict(list)
    waits: Counter[str] = Counter()
    breaches: Counter[str] = Counter()
    use = Counter[str]()

    def close_wait(channel: str, start: datetime, end: datetime, *, is_first: bool,
                   replied: bool) -> None:
        # A wait without a reply yet counts, and breaches, by the time waited so far.
        if start < stats.since:
            return
        waited = open_seconds_between(start, end, hours, holidays)
        waits[channel] += 1
        if waited > target_seconds(channel, sla):
            breaches[channel] += 1
        if is_first and replied:
            first[channel].append((end - start).total_seconds())

    conversation: int | None = None
    channel = ""
    waiting: datetime | None = None
    answered = False
    for row in rows:
        if row.conversation_id != conversation:
            if waiting is not None:
                close_wait(channel, waiting, stats.until, is_first=not answered, replied=False)
            conversation, waiting, answered = row.conversation_id, None, False
        channel = row.channel
        sent_at = row.sent_at
        if row.direction == "in":
            if sent_at >= stats.since:
                volume[channel][sent_at.date()] += 1
            if waiting is None:
                waiting = sent_at
            continue
        if waiting is not None:
            close_wait(channel, waiting, sent_at, is_first=not answered, replied=True)
            waiting = None
        answered = True
        if sent_at >= stats.since:
            stats.replies += 1
            stats.automatic_replies += row.automatic
            if row.automatic:
                continue
            if row.entry_id:
                use["edited" if row.edited else "taken_unchanged"] += 1
            elif row.shown:
                use["ignored"] += 1
            else:
                use["written"] += 1
    if waiting is not None:
        close_wait(channel, waiting, stats.until, is_first=not answered, replied=False)

    stats.volume = {c: dict(days) for c, days in volume.items()}
    stats.first_response = _with_total(first)
    resolution: dict[str, list[float]] = defaultdict(list)
    for done in closed:
        resolution[done.channel].append(
            max(0.0, (done.closed_at - done.first_inbound_at).total_seconds()))
    stats.resolution = _with_total(resolution)
    stats.sla = {c: SlaFigures(waits[c], breaches[c]) for c in waits}
    stats.sla[ALL] = SlaFigures(sum(waits.values()), sum(breaches.values()))
    stats.suggestions = SuggestionUse(**use)
    return stats


def _with_total(values: dict[str, list[float]]) -> dict[str, Durations]:
    result = {channel: Durations.of(v) for channel, v in values.items()}
    result[ALL] = Durations.of(x for v in values.values() for x in v)
    return result






def dumps(stats: Stats) -> str:
    return json.dumps(stats.as_json(), indent=2)


def duration(seconds: float | None) -> str:
    """Response and resolution times as people read them: 12 min, 3.5 h, 2.0 d."""
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
