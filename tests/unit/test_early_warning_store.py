"""The early warning on a real store: quiet on a normal week, fires on a spike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent_tui.insight.early_warning import alerts_from_store
from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import StoreBackend

NOW = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)


def sms(n: int, at: datetime) -> InboundMessage:
    return InboundMessage(channel=Channel.SMS, provider_id=f"SM{n}", direction=Direction.INBOUND,
                          sender=f"+4917000{n:05d}", sender_name="", recipients=[], sent_at=at,
                          subject="", text="Hallo")


def test_spike_in_the_last_hour_is_reported(any_store: StoreBackend) -> None:
    store = any_store                            # SQLite, then PostgreSQL (tests/conftest.py)
    messages, n = [], 0
    for week in range(1, 5):                     # the usual: 2 messages in this hour each week
        for minute in (5, 40):
            n += 1
            messages.append(sms(n, NOW - timedelta(weeks=week, minutes=60 - minute)))
    store.ingest("sms", messages, cursor_key="m", cursor=None)
    assert alerts_from_store(store, NOW) == []
    spike = []
    for minute in range(0, 60, 3):              # 20 in the last full hour
        n += 1
        spike.append(sms(n, NOW.replace(minute=0) - timedelta(minutes=60 - minute)))
    store.ingest("sms", spike, cursor_key="m", cursor=None)
    [alert] = alerts_from_store(store, NOW)
    assert alert.channel == "sms" and alert.observed == 20
    assert "sms: 20 messages" in alert.message
