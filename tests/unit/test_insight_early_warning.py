"""Early warning: quiet on an ordinary week, an alert on a synthetic spike."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent_tui.insight.early_warning import (
    HourKey,
    binomial_tail,
    detect,
    hourly_counts,
)

START = datetime(2026, 2, 2, tzinfo=UTC)      # a Monday
HOUR = timedelta(hours=1)


def poisson(rng: random.Random, rate: float) -> int:
    # Knuth's method: fine for the small rates of a shop's inbox.
    limit, k, product = pow(2.718281828459045, -rate), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def usual_rate(channel: str, when: datetime) -> float:
    """A shop's week: busy in the day, quiet at night, quieter at the weekend."""
    daytime = 8 <= when.hour < 20
    weekend = when.weekday() >= 5
    base = {"whatsapp": 4.0, "email": 6.0, "sms": 0.5}[channel]
    return base * (1.0 if daytime else 0.1) * (0.5 if weekend else 1.0)


def ordinary_weeks(weeks: int, seed: int = 7) -> Counter[HourKey]:
    rng = random.Random(seed)
    counts: Counter[HourKey] = Counter()
    for h in range(weeks * 7 * 24):
        when = START + h * HOUR
        for channel in ("whatsapp", "email", "sms"):
            counts[channel, when] = poisson(rng, usual_rate(channel, when))
    return counts


def test_quiet_through_an_ordinary_week() -> None:
    counts = ordinary_weeks(6)
    last_week = START + 5 * 7 * 24 * HOUR
    fired = [alert for h in range(1, 7 * 24 + 1)
             for alert in detect(counts, last_week + h * HOUR)]
    assert fired == []


def test_fires_on_a_spike_with_a_clear_message() -> None:
    counts = ordinary_weeks(5)
    spike_hour = START + 4 * 7 * 24 * HOUR + timedelta(days=2, hours=10)   # Wednesday 10:00
    for k in range(1, 5):                     # same hour of past weeks: 4, 5, 3, 4
        counts["whatsapp", spike_hour - k * timedelta(weeks=1)] = [4, 5, 3, 4][k - 1]
    counts["whatsapp", spike_hour] = 23
    alerts = detect(counts, spike_hour + HOUR + timedelta(minutes=5))
    assert [a.channel for a in alerts] == ["whatsapp"]
    alert = alerts[0]
    assert alert.message == "whatsapp: 23 messages in the last hour, usually 4"
    assert (alert.observed, alert.hour_start) == (23, spike_hour)
    assert alert.p_value < 1e-5


def test_fires_early_on_the_hour_under_way() -> None:
    counts = ordinary_weeks(5)
    hour = START + 4 * 7 * 24 * HOUR + timedelta(days=1, hours=14)
    for k in range(1, 5):
        counts["email", hour - k * timedelta(weeks=1)] = 6
    counts["email", hour] = 20
    alerts = detect(counts, hour + timedelta(minutes=30))
    assert len(alerts) == 1
    assert alerts[0].message == ("email: 20 messages in the last 30 minutes, usually 3 by now "
                                 "(6 an hour)")


def test_threshold_and_minimum_count_hold_it_back() -> None:
    hour = START + timedelta(weeks=4)
    counts: Counter[HourKey] = Counter({("sms", hour - k * timedelta(weeks=1)): 0
                                        for k in range(1, 5)})
    counts["sms", hour] = 3                  # far above "usually 0", but only three messages
    assert detect(counts, hour + HOUR) == []
    counts["sms", hour] = 6
    assert len(detect(counts, hour + HOUR)) == 1
    assert detect(counts, hour + HOUR, threshold=20) == []


def test_no_history_no_alert() -> None:
    hour = START + timedelta(days=3)
    counts: Counter[HourKey] = Counter({("telegram", hour): 50})
    assert detect(counts, hour + HOUR) == []


def test_hourly_counts_bucket_by_utc_hour() -> None:
    berlin_winter = timezone(timedelta(hours=1))
    events = [("sms", datetime(2026, 3, 4, 10, 5, tzinfo=UTC)),
              ("sms", datetime(2026, 3, 4, 10, 59, tzinfo=UTC)),
              ("sms", datetime(2026, 3, 4, 12, 1, tzinfo=berlin_winter))]
    assert hourly_counts(events) == {("sms", datetime(2026, 3, 4, 10, tzinfo=UTC)): 2,
                                     ("sms", datetime(2026, 3, 4, 11, tzinfo=UTC)): 1}


def test_binomial_tail() -> None:
    assert binomial_tail(0, 10, 0.5) == 1.0
    assert binomial_tail(1, 2, 0.5) == pytest.approx(0.75)
    assert binomial_tail(6, 6, 0.2) == pytest.approx(0.2 ** 6)
    assert binomial_tail(7, 6, 0.2) == 0.0
    assert binomial_tail(2000, 4000, 0.2) < 1e-100
