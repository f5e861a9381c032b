"""The same operations on SQLite and on PostgreSQL give the same results, including the eight
places where the two stores used to disagree (issue 18, ../shared/notes/sql-dialects.md)."""

from __future__ import annotations

import pprint
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import open_store
from tests.conftest import contact_of, reopen_store, store_sql
from tests.unit.test_store_postgres import seed_every_channel, snapshot

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def inbound(channel: Channel, provider_id: str, sender: str, text: str = "Hallo", *,
            subject: str = "", at: datetime = T0) -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=provider_id, direction=Direction.INBOUND,
                          sender=sender, sender_name="", recipients=["service@shop.example"],
                          sent_at=at, subject=subject, text=text)


def reply(provider_id: str, to: str, extra: dict[str, Any]) -> InboundMessage:
    return InboundMessage(channel=Channel.EMAIL, provider_id=provider_id,
                          direction=Direction.OUTBOUND, sender="service@shop.example",
                          sender_name="", recipients=[to], sent_at=T0 + timedelta(hours=1),
                          subject="Re: Lieferzeit", text="Ist unterwegs", extra=extra)


def without_clock(value: Any) -> str:
    """`value` as text, dicts sorted (jsonb orders keys its own way), every timestamp of
    today or yesterday (each store's own clock: created_at, claimed at...) as NOW."""
    text = pprint.pformat(value, width=1)
    for day in (datetime.now(UTC), datetime.now(UTC) - timedelta(days=1)):
        text = re.sub(rf"datetime\.datetime\({day.year}, {day.month}, {day.day}, [^)]*\)",
                      "NOW", text)
    return text


def disagreements(store: Any) -> dict[str, Any]:
    """The operations the two stores used to answer differently, and what they answer now."""
    out: dict[str, Any] = {}
    # Four conversations started at the same second: ties break by id on both (4).
    store.ingest("shop", [
        inbound(Channel.EMAIL, "m1@x", "kim@example.org", "Wann kommt die GRÖSSE 42?",
                subject="Lieferzeit"),
        inbound(Channel.EMAIL, "m2@x", "tom@example.org", "Bitte die Rechnung",
                subject="Rechnung"),
        inbound(Channel.SMS, "SM1", "+491701234567"),
        inbound(Channel.SMS, "SM2", "+491709999999", "Hallo auch"),
    ], cursor_key="m", cursor={"uid": 4})
    kim, sms = contact_of(store, "kim@example.org"), contact_of(store, "+491701234567")
    out["waiting"] = [c.id for c in store.waiting_conversations()]
    out["listed"] = [c.id for c in store.list_conversations()]
    # Tags and enrichment change in one statement's transaction (2).
    store.add_tag(1, "vip")
    store.add_tag(1, "vip")
    store.add_tag(1, "rechnung")
    store.remove_tag(1, "vip")
    store.set_enrichment(1, {"order": "A1"})
    store.set_enrichment(1, {"status": "sent"})
    conversation = store.get_conversation(1)
    out["tags"] = (conversation.tags, conversation.enrichment,
                   [c.id for c in store.list_conversations(tag="rechnung")])
    # A person merges a pair they once rejected: the proposal is accepted (1).
    store.propose_merge(kim, sms, "phone in a signature")
    store.reject_merge(kim, sms)
    store.merge_contacts(kim, sms)
    out["merged"] = [(p.contact_a, p.contact_b, p.merged_id, p.state, p.resolved_at is not None)
                     for p in store.merge_proposals(state=None)]
    out["contact_conversations"] = [c.id for c in store.contact_conversations(kim)]
    # A split is remembered as a rejected pair, lower id first (6).
    new = store.split_contact(kim, "phone", "+491701234567")
    out["split"] = [(p.contact_a, p.contact_b, p.state)
                    for p in store.merge_proposals(state="rejected")]
    out["split_ids"] = (new > kim, store.find_contact("+491701234567") == new)
    # A reply whose outbox id is not a number has no outbox row, and no error (5).
    outbox_id = store.outbox_enqueue(1, "shop", {"automatic": True, "entry_id": "lieferzeit"},
                                     "key-1")
    store.record_outbound("shop", reply("r1@x", "kim@example.org", {"outbox_id": outbox_id}),
                          conversation_id=1)
    store.record_outbound("shop", reply("r2@x", "tom@example.org", {"outbox_id": "x1"}),
                          conversation_id=2)
    out["stats"] = [(s.conversation_id, s.direction, s.automatic, s.entry_id)
                    for s in store.stats_messages(T0 - timedelta(days=1))]
    # Leases by the database's clock (3): a lease that expired is free for the next holder.
    out["leases"] = [store.acquire_lease("fetch:shop", "a", 60),
                     store.acquire_lease("fetch:shop", "b", 60),
                     store.renew_lease("fetch:shop", "b", 60),
                     store.acquire_lease("reply:1", "a", -1),
                     store.lease_holder("reply:1"),
                     store.acquire_lease("reply:1", "b", 60),
                     store.lease_holders("")]
    # Decisions come back in one shape, `at` as ISO text (7).
    message_id = store.get_messages(1)[0].id
    store.record_decision(message_id, "answer", "entry", entry_id="x", score=0.9, at=T0)
    store.record_decision(message_id, "skip", "again", entry_id=None, score=None, at=T0)
    out["decisions"] = store.automation_decisions(1)
    # Search: prefixes, case and accents fold alike, addresses split into words; the same
    # hits, ranked by each database's own measure (8).
    out["search"] = {q: sorted(h.message_id for h in store.search(q))
                     for q in ("grösse", "GROSSE", "liefer", "example", "rechnung", "")}
    out["hours"] = store.inbound_hour_counts(T0 - timedelta(days=1))
    claimed = store.outbox_claim_next(T0 + timedelta(days=1))
    out["claimed"] = claimed and (claimed.id, claimed.state, claimed.attempts)
    return out


@pytest.mark.postgres
def test_both_backends_answer_the_same(tmp_path: Path, postgres_url: str) -> None:
    lite = open_store(tmp_path / "agent.db")
    pg = open_store(postgres_url)
    results = [disagreements(lite), disagreements(pg)]
    assert results[0] == results[1]
    got = results[0]
    assert got["waiting"] == got["listed"] == [1, 2, 3, 4]
    assert got["tags"] == (["rechnung"], {"order": "A1", "status": "sent"}, [1])
    assert got["merged"] == [(1, None, 3, "accepted", True)]
    assert got["contact_conversations"] == [1, 3]
    assert got["split"] == [(1, 5, "rejected")] and got["split_ids"] == (True, True)
    assert got["stats"] == [(1, "in", False, None), (1, "out", True, "lieferzeit"),
                            (2, "in", False, None), (2, "out", False, None),
                            (3, "in", False, None), (4, "in", False, None)]
    assert got["leases"] == [True, False, False, True, None, True,
                             {"fetch:shop": "a", "reply:1": "b"}]
    assert got["decisions"] == [{"message_id": 1, "decision": "skip", "why": "again",
                                 "entry_id": None, "score": None,
                                 "at": "2026-11-02T09:00:00.000000Z"}]
    assert got["search"] == {"grösse": [1], "GROSSE": [1], "liefer": [1, 5, 6],
                             "example": [1, 2, 5, 6], "rechnung": [2], "": []}
    lite.close()
    pg.close()


@pytest.mark.postgres
def test_every_channel_reads_back_the_same(tmp_path: Path, postgres_url: str) -> None:
    lite = open_store(tmp_path / "agent.db")
    pg = open_store(postgres_url)
    seed_every_channel(lite)
    seed_every_channel(pg)
    assert without_clock(snapshot(lite)) == without_clock(snapshot(pg))
    lite.close()
    pg.close()


def test_two_writers_tagging_at_once_keep_every_tag(store: Any) -> None:
    store.ingest("shop", [inbound(Channel.SMS, "SM1", "+491701234567")],
                 cursor_key="m", cursor=None)
    others = [reopen_store(store) for _ in range(4)]

    def tag(writer: Any, name: str) -> None:
        for n in range(30):
            writer.add_tag(1, f"{name}{n}")
            writer.set_enrichment(1, {f"{name}{n}": "x"})

    threads = [threading.Thread(target=tag, args=(w, name))
               for w, name in zip(others, "abcd", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conversation = store.get_conversation(1)
    expected = {f"{name}{n}" for name in "abcd" for n in range(30)}
    assert set(conversation.tags) == expected and set(conversation.enrichment) == expected
    assert store_sql(store, "SELECT count(*) FROM conversations")[0][0] == 1
    for other in others:
        other.close()
