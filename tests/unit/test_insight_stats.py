"""Stats figures on a small fixed store, seeded through the store's own ingest API."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.config import SlaConfig, parse_config
from agent_tui.errors import StoreError, UsageError
from agent_tui.insight.commands import cmd_stats, parse_since
from agent_tui.insight.stats import compute_stats
from agent_tui.model import Channel, ConversationStatus, Direction, InboundMessage
from agent_tui.store import Store

SLA = SlaConfig(email=240, sms=60, whatsapp=15, telegram=15)
SHOP = "shop"


class Seed:
    """A day of traffic: times are hours after midnight (UTC) two days before the real now,
    because the store stamps closing with the real clock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.now = datetime.now(UTC)
        self.day = (self.now - timedelta(days=2)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
        self.count = 0

    def at(self, hours: float) -> datetime:
        return self.day + timedelta(hours=hours)

    def inbound(self, channel: Channel, sender: str, hours: float) -> int:
        self.count += 1
        message = InboundMessage(channel=channel, provider_id=f"in-{self.count}",
                                 direction=Direction.INBOUND, sender=sender, sender_name="",
                                 recipients=[SHOP], sent_at=self.at(hours), subject="Frage",
                                 text="Hallo", thread_key=sender)
        result = self.store.ingest(SHOP, [message], cursor_key="test", cursor={"n": self.count})
        return self.store.get_message(result.new_message_ids[0]).conversation_id

    def reply(self, conversation_id: int, channel: Channel, to: str, hours: float,
              **payload: object) -> None:
        self.count += 1
        outbox_id = self.store.outbox_enqueue(conversation_id, SHOP,
                                              {"channel": str(channel), "to": to, "text": "ok",
                                               **payload}, idempotency_key=f"k{self.count}")
        message = InboundMessage(channel=channel, provider_id=f"out-{self.count}",
                                 direction=Direction.OUTBOUND, sender=SHOP, sender_name="",
                                 recipients=[to], sent_at=self.at(hours), subject="",
                                 text="ok", thread_key=to, extra={"outbox_id": outbox_id})
        self.store.record_outbound(SHOP, message, conversation_id=conversation_id)


@pytest.fixture
def seeded(any_store: Store) -> Seed:
    """The same day on each backend: stats read SQLite and PostgreSQL alike."""
    store = any_store
    seed = Seed(store)
    mail = seed.inbound(Channel.EMAIL, "anna@example.org", 10)
    seed.reply(mail, Channel.EMAIL, "anna@example.org", 11, entry_id="order-status")
    store.set_status(mail, ConversationStatus.CLOSED)
    chat = seed.inbound(Channel.WHATSAPP, "+4915100000001", 10)
    seed.inbound(Channel.WHATSAPP, "+4915100000001", 10 + 5 / 60)
    seed.reply(chat, Channel.WHATSAPP, "+4915100000001", 10.5, automatic=True, entry_id="x")
    seed.inbound(Channel.SMS, "+4915100000002", 12)          # never answered
    other = seed.inbound(Channel.WHATSAPP, "+4915100000003", 9)
    seed.reply(other, Channel.WHATSAPP, "+4915100000003", 9 + 10 / 60, suggestions_shown=True)
    seed.inbound(Channel.WHATSAPP, "+4915100000003", 9 + 20 / 60)
    seed.reply(other, Channel.WHATSAPP, "+4915100000003", 9 + 25 / 60, entry_id="hours",
               suggestion_edited=True)
    seed.inbound(Channel.EMAIL, "old@example.org", -24)      # before the period
    return seed


def test_figures_on_a_fixed_store(seeded: Seed) -> None:
    stats = compute_stats(seeded.store, seeded.day, seeded.now, SLA)
    day = seeded.day.date()
    assert stats.volume == {"email": {day: 1}, "whatsapp": {day: 4}, "sms": {day: 1}}
    first = stats.first_response
    assert (first["email"].count, first["email"].median_seconds) == (1, 3600)
    assert (first["whatsapp"].count, first["whatsapp"].median_seconds) == (2, 1200)
    assert "sms" not in first                                  # no reply yet
    assert (first["all"].median_seconds, first["all"].p90_seconds) == (1800, 3600)
    assert {k: (v.waits, v.breaches) for k, v in stats.sla.items()} == {
        "email": (1, 0), "whatsapp": (3, 1), "sms": (1, 1), "all": (5, 2)}
    assert (stats.replies, stats.automatic_replies, stats.automatic_share) == (4, 1, 0.25)
    use = stats.suggestions
    assert (use.taken_unchanged, use.edited, use.ignored, use.written) == (1, 1, 1, 0)
    resolution = stats.resolution["email"]
    assert resolution.count == 1 and stats.resolution["all"].count == 1
    expected = (datetime.now(UTC) - seeded.at(10)).total_seconds()
    assert resolution.median_seconds == pytest.approx(expected, abs=120)


def test_business_hours_decide_breaches(seeded: Seed) -> None:
    # Open only 00:00-00:01 every day: no wait has used up any target.
    hours = BusinessHours.parse("Mon-Sun 00:00-00:01", "UTC")
    stats = compute_stats(seeded.store, seeded.day, seeded.now, SLA, hours)
    assert stats.sla["all"].breaches == 0


def test_cmd_stats_json_and_chart(seeded: Seed, tmp_path: Path) -> None:
    config_path = tmp_path / "agent-tui.toml"
    where = getattr(seeded.store, "url", None) or seeded.store.path
    config = parse_config(f'[store]\npath = "{where}"\n', config_path)
    out = io.StringIO()
    since = seeded.day.isoformat()
    assert cmd_stats(config, since, True, out, now=seeded.now) == 0
    data = json.loads(out.getvalue())
    assert data["format"] == 1
    assert data["volume"]["whatsapp"] == {seeded.day.date().isoformat(): 4}
    assert data["sla"]["all"] == {"waits": 5, "breaches": 2}
    assert data["automatic_share"] == 0.25
    text = io.StringIO()
    assert cmd_stats(config, since, False, text, now=seeded.now) == 0
    chart = text.getvalue()
    bar = next(line for line in chart.splitlines() if line.rstrip().endswith(" 6")).split()[2]
    assert bar == "e" * 7 + "s" * 7 + "w" * 27       # 1, 1 and 4 of 6 on a 40-wide scale
    assert "2 of 5 (40%)" in chart
    assert "1 taken unchanged, 1 edited, 1 ignored" in chart
    week = io.StringIO()
    assert cmd_stats(config, "7d", True, week, now=seeded.now) == 0
    assert json.loads(week.getvalue())["sla"]["all"] == {"waits": 6, "breaches": 3}  # + the old


def test_parse_since() -> None:
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("2026-03-01", now) == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="--since"):
        parse_since("last month", now)


def test_missing_store_is_one_line_error(tmp_path: Path) -> None:
    config = parse_config('[store]\npath = "none.db"\n', tmp_path / "agent-tui.toml")
    with pytest.raises(StoreError, match=r"none\.db: no store yet"):
        cmd_stats(config, "30d", True, io.StringIO())
    assert not (tmp_path / "none.db").exists()
