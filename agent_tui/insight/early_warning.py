"""Early warning: more inbound messages on a channel than the same hour of past weeks brings.

Counts are kept per (channel, hour start). For the last complete hour, and for the hour under way
once a quarter of it has passed, the expected count is the mean of the same hour of the week in
the past weeks (scaled to the part of the hour that has passed). An alert needs all three: at least
`min_count` messages, `threshold` times the expected count, and a p-value below `alpha`, so a quiet
channel does not alarm on two messages and a busy one not on noise. The p-value is the exact test
for two Poisson rates (the hour's share of hour + history is binomial under "nothing changed"),
which also allows for the noise in a history of only a few weeks; `alpha` is small because the
check runs every hour on every channel.
A channel with less than `min_weeks` of history stays quiet: there is nothing to compare with.

The "channel" is any label: counting negative messages under "negative" warns of a wave of
complaints the same way.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

HOUR = timedelta(hours=1)
WEEK = timedelta(weeks=1)
DEFAULT_THRESHOLD = 3.0
MIN_PARTIAL = 0.25          # judge the hour under way only after this share of it
EXPECTED_FLOOR = 0.5        # an hour that was always empty still "usually" sees a little

HourKey = tuple[str, datetime]


@dataclass(frozen=True, slots=True)
class Alert:
    channel: str
    hour_start: datetime     # UTC
    observed: int
    expected: float          # for the part of the hour observed
    p_value: float
    message: str             # "whatsapp: 23 messages in the last hour, usually 4"

    def as_json(self) -> dict[str, object]:
        return {"channel": self.channel, "hour_start": self.hour_start.isoformat(),
                "observed": self.observed, "expected": round(self.expected, 2),
                "p_value": self.p_value, "message": self.message}


def hour_start(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hourly_counts(events: Iterable[tuple[str, datetime]]) -> Counter[HourKey]:
    """Count (channel, time) events per channel and UTC hour: the input `detect` wants."""
    return Counter((channel, hour_start(when)) for channel, when in events)


def detect(counts: Mapping[HourKey, int], now: datetime, threshold: float = DEFAULT_THRESHOLD,
           *, weeks: int = 4, min_weeks: int = 2, min_count: int = 5,
           alpha: float = 1e-4) -> list[Alert]:
    """Alerts for channels whose inbound rate now is far above the same hour in past weeks."""
    by_hour: Counter[HourKey] = Counter()
    first_seen: dict[str, datetime] = {}
    for (channel, start), count in counts.items():
        start = hour_start(start)
        by_hour[channel, start] += count
        if channel not in first_seen or start < first_seen[channel]:
            first_seen[channel] = start
    current = hour_start(now)
    elapsed = (now.astimezone(UTC) - current) / HOUR
    windows = [(current - HOUR, 1.0)]
    if elapsed >= MIN_PARTIAL:
        windows.append((current, elapsed))
    alerts = []
    for channel in sorted(first_seen):
        found: list[Alert] = []
        for start, share in windows:
            history = [by_hour[channel, start - k * WEEK] for k in range(1, weeks + 1)
                       if start - k * WEEK >= first_seen[channel]]
            if len(history) < min_weeks:
                continue
            usual = max(sum(history) / len(history), EXPECTED_FLOOR)
            expected = usual * share
            observed = by_hour[channel, start]
            if observed < min_count or observed < threshold * expected:
                continue
            p_value = binomial_tail(observed, observed + sum(history),
                                    share / (share + len(history)))
            if p_value < alpha:
                found.append(Alert(channel, start, observed, expected, p_value,
                                   _message(channel, observed, usual, share)))
        if found:
            alerts.append(min(found, key=lambda a: a.p_value))
    return alerts


def binomial_tail(successes: int, trials: int, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), summed in log space."""
    if successes <= 0:
        return 1.0
    if successes > trials or probability <= 0.0:
        return 0.0
    if probability >= 1.0:
        return 1.0
    log_p, log_q = math.log(probability), math.log1p(-probability)
    log_n = math.lgamma(trials + 1)
    total = sum(math.exp(log_n - math.lgamma(i + 1) - math.lgamma(trials - i + 1)
                         + i * log_p + (trials - i) * log_q)
                for i in range(successes, trials + 1))
    return min(total, 1.0)


def _message(channel: str, observed: int, usual: float, share: float) -> str:
    plural = "message" if observed == 1 else "messages"
    if share >= 1.0:
        return f"{channel}: {observed} {plural} in the last hour, usually {usual:.0f}"
    minutes = round(share * 60)
    return (f"{channel}: {observed} {plural} in the last {minutes} minutes, "
            f"usually {usual * share:.0f} by now ({usual:.0f} an hour)")


def alerts_from_store(store: Any, now: datetime, threshold: float = DEFAULT_THRESHOLD,
                      weeks: int = 4) -> list[Alert]:
    """`detect` over the store's inbound messages of the last `weeks` weeks."""
    counts = store.inbound_hour_counts(now - (weeks + 1) * WEEK)
    return detect(counts, now, threshold, weeks=weeks)
