"""Pre-work after sync: enrichment fields, urgency raises priority, negative tone tags; one time
budget for the shop look-ups of a batch."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_tui.config import EnrichmentConfig
from agent_tui.engine.enrich import enrich_messages
from agent_tui.model import Channel, Direction, Priority
from agent_tui.store import open_store
from connectors.base import InboundMessage


def mail(pid: str, text: str) -> InboundMessage:
    return InboundMessage(channel=Channel.EMAIL, provider_id=pid, direction=Direction.INBOUND,
                          sender=f"{pid}@example.org", sender_name="", recipients=[],
                          sent_at=datetime(2026, 11, 23, 9, tzinfo=UTC), subject="Bestellung",
                          text=text)


async def test_prework_marks_urgent_angry_mail_and_finds_the_order(tmp_path: Path) -> None:
    store = open_store(tmp_path / "agent.db")
    result = store.ingest("shop", [
        mail("calm", "Wann kommt meine Bestellung 123456? Es ist nicht dringend."),
        mail("angry", "SOFORT! Bestellung 654321 ist immer noch nicht da, ich gehe zum Anwalt!!!"),
    ], cursor_key="m", cursor=None)
    await enrich_messages(store, EnrichmentConfig(), result.new_message_ids)
    by_sender = {c.contact_address: c for c in store.list_conversations()}
    calm, angry = by_sender["calm@example.org"], by_sender["angry@example.org"]
    assert calm.priority is Priority.NORMAL and "negative" not in calm.tags
    assert angry.priority is Priority.HIGH and "negative" in angry.tags
    assert calm.enrichment == {"order.number": "123456"}
    assert angry.enrichment == {"order.number": "654321"}


async def test_a_slow_shop_system_costs_a_batch_its_budget_not_more(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    store = open_store(tmp_path / "agent.db")
    result = store.ingest("shop", [mail(f"c{n}", f"Wo ist Bestellung 12345{n}?") for n in range(4)],
                          cursor_key="m", cursor=None)
    config = EnrichmentConfig(command="/bin/sh -c 'sleep 600'", timeout=5.0, batch_timeout=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await enrich_messages(store, config, result.new_message_ids) == 4
    assert loop.time() - start < 4.0       # 1 s budget, not 4 x 5 s of timeouts
    assert sorted(c.enrichment["order.number"] for c in store.list_conversations()) == \
        [f"12345{n}" for n in range(4)]
    skipped = [r.getMessage() for r in caplog.records if "without shop fields" in r.getMessage()]
    assert len(skipped) == 1 and "3 of 4" in skipped[0]
