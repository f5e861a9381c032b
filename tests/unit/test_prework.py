"""Pre-work after sync: enrichment fields, urgency raises priority, negative tone tags."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agent_tui.config import EnrichmentConfig
from agent_tui.engine.enrich import enrich_messages
from agent_tui.model import Channel, Direction, InboundMessage, Priority
from agent_tui.store import open_store


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
