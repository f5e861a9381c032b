from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_tui.errors import NotFound, StoreError
from agent_tui.model import Channel, ConversationStatus, Direction, InboundMessage, OutboxState
from agent_tui.store import IllegalTransition, QueuedReply, Store, open_store
from agent_tui.store.sqlite import MIGRATIONS
from tests.conftest import shipped_steps, store_sql

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def mail(provider_id: str, *, sender: str = "kunde@example.org", subject: str = "Bestellung",
         text: str = "Hallo", at: datetime = T0, in_reply_to: str = "",
         references: list[str] | None = None, direction: Direction = Direction.INBOUND,
         recipients: list[str] | None = None) -> InboundMessage:
    return InboundMessage(channel=Channel.EMAIL, provider_id=provider_id, direction=direction,
                          sender=sender, sender_name="Kim Kunde", recipients=recipients or
                          ["service@shop.example"], sent_at=at, subject=subject, text=text,
                          in_reply_to=in_reply_to, references=references or [])


def chat(provider_id: str, *, sender: str = "+491701234567", at: datetime = T0,
         channel: Channel = Channel.SMS, text: str = "Hi") -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=provider_id, direction=Direction.INBOUND,
                          sender=sender, sender_name="", recipients=["+493012345678"],
                          sent_at=at, subject="", text=text)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "data" / "agent.db")
    assert isinstance(s, Store)
    yield s
    s.close()


def test_file_is_private_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "agent.db"
    s = open_store(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer agent-tui"):
        open_store(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    path.write_bytes(b"this is no sqlite file" * 100)
    with pytest.raises(StoreError, match=r"agent\.db"):
        open_store(path)


def test_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:9/agent") as caught:
        open_store("postgresql://mia:s3cret@127.0.0.1:9/agent")
    assert "s3cret" not in str(caught.value)


def test_dedupe_by_provider_id_and_cursor(store: Store) -> None:
    first = store.ingest("shop", [mail("a@x"), mail("b@x")], cursor_key="main",
                         cursor={"INBOX": {"last_uid": 2}})
    again = store.ingest("shop", [mail("a@x"), mail("c@x")], cursor_key="main",
                         cursor={"INBOX": {"last_uid": 3}})
    assert (first.new, again.new, again.duplicates) == (2, 1, 1)
    assert store.get_cursor("shop", "main") == {"INBOX": {"last_uid": 3}}
    # The same provider id in another account is another message.
    assert store.ingest("other", [mail("a@x")], cursor_key="main", cursor=None).new == 1


def test_crash_inside_the_transaction_keeps_neither_messages_nor_cursor(store: Store) -> None:
    store.ingest("shop", [mail("a@x")], cursor_key="main", cursor={"uid": 1})
    broken = mail("c@x")
    broken.sent_at = "not a datetime"  # type: ignore[assignment]  # fails inside the insert
    with pytest.raises((AttributeError, TypeError)):
        store.ingest("shop", [mail("b@x"), broken], cursor_key="main", cursor={"uid": 3})
    assert store.get_cursor("shop", "main") == {"uid": 1}
    assert [m.provider_id for c in store.list_conversations()
            for m in store.get_messages(c.id)] == ["a@x"]


def test_fts_finds_german_words(store: Store) -> None:
    store.ingest("shop", [
        mail("1@x", text="Wann kommt die Lieferung?"),
        mail("2@x", subject="Größe", text="Die Jacke passt nicht, brauche eine andere Größe."),
        mail("3@x", sender="other@example.org", text="Nichts davon"),
    ], cursor_key="main", cursor=None)
    assert [h.snippet for h in store.search("Lieferung")] == ["Wann kommt die «Lieferung»?"]
    assert len(store.search("Größe")) == 1
    assert len(store.search("groe")) == 0
    assert store.search("liefer")[0].conversation_id > 0     # prefix search


@pytest.mark.parametrize("query", ['"', "AND(", "NEAR(a b", "*", "a OR", "-x", "'; DROP"])
def test_hostile_search_text_does_not_raise(store: Store, query: str) -> None:
    store.ingest("shop", [mail("1@x", text="x")], cursor_key="main", cursor=None)
    assert isinstance(store.search(query), list)


def test_threading_by_references_and_subject(store: Store) -> None:
    store.ingest("shop", [
        mail("root@x", subject="Rücksendung"),
        mail("reply@x", subject="AW: Rücksendung", in_reply_to="unknown@x",
             at=T0 + timedelta(hours=1)),
        mail("deep@x", subject="Anderes Thema", references=["root@x", "gone@x"],
             at=T0 + timedelta(hours=2)),
        mail("later@x", subject="Re: Rücksendung", at=T0 + timedelta(days=20)),
        mail("stranger@x", sender="x@example.org", subject="Rücksendung",
             at=T0 + timedelta(hours=3)),
    ], cursor_key="main", cursor=None)
    by_id = {m.provider_id: m.conversation_id for c in store.list_conversations()
             for m in store.get_messages(c.id)}
    assert by_id["reply@x"] == by_id["root@x"]     # unknown In-Reply-To: subject fallback
    assert by_id["deep@x"] == by_id["root@x"]      # any References entry
    assert by_id["later@x"] != by_id["root@x"]     # beyond 14 days
    assert by_id["stranger@x"] != by_id["root@x"]  # another contact


def test_closed_mail_conversation(store: Store) -> None:
    store.ingest("shop", [mail("root@x", subject="Rechnung")], cursor_key="m", cursor=None)
    conv = store.list_conversations()[0].id
    store.set_status(conv, ConversationStatus.CLOSED)
    store.ingest("shop", [mail("new@x", subject="Rechnung", at=T0 + timedelta(hours=1))],
                 cursor_key="m", cursor=None)
    store.ingest("shop", [mail("re@x", subject="Re: Rechnung", in_reply_to="root@x",
                               at=T0 + timedelta(hours=2))], cursor_key="m", cursor=None)
    assert {m.provider_id for m in store.get_messages(conv)} == {"root@x", "re@x"}
    assert store.get_conversation(conv).status is ConversationStatus.OPEN


def test_chat_conversations_reopen_within_a_week(store: Store) -> None:
    store.ingest("sms", [chat("SM1"), chat("SM2", at=T0 + timedelta(minutes=5))],
                 cursor_key="m", cursor=None)
    assert store.count_conversations() == 1
    conv = store.list_conversations()[0].id
    store.set_status(conv, ConversationStatus.CLOSED)
    store.ingest("sms", [chat("SM3", at=datetime.now(UTC))], cursor_key="m", cursor=None)
    assert store.count_conversations() == 1
    store_sql(store, "UPDATE conversations SET status='closed', closed_at=? WHERE id=?",
              ("2026-01-01T00:00:00.000000Z", conv))
    store.ingest("sms", [chat("SM4", at=datetime.now(UTC))], cursor_key="m", cursor=None)
    assert store.count_conversations() == 2
    # WhatsApp from the same number is another conversation of the same contact.
    store.ingest("sms", [chat("WA1", channel=Channel.WHATSAPP)], cursor_key="m", cursor=None)
    contacts = {c.contact_id for c in store.list_conversations()}
    assert store.count_conversations() == 3 and len(contacts) == 1


def test_delivery_status_and_edits_update_known_messages(store: Store) -> None:
    store.ingest("tg", [chat("1:5", channel=Channel.TELEGRAM, sender="42", text="hallo")],
                 cursor_key="m", cursor=None)
    edit = chat("1:5", channel=Channel.TELEGRAM, sender="42", text="hallo, wo ist mein Paket?")
    edit.extra["edited"] = True
    result = store.ingest("tg", [edit], cursor_key="m", cursor=None)
    assert result.updated == 1 and result.new == 0
    message = store.get_messages(store.list_conversations()[0].id)[0]
    assert message.edited and message.text.endswith("Paket?")
    assert len(store.search("Paket")) == 1 and len(store.search("hallo")) == 1


def test_tombstoned_message_is_not_reimported(store: Store) -> None:
    store.ingest("shop", [mail("spam@x")], cursor_key="m", cursor=None)
    message = store.get_messages(store.list_conversations()[0].id)[0]
    store.delete_message(message.id)
    result = store.ingest("shop", [mail("spam@x")], cursor_key="m", cursor=None)
    assert (result.new, result.skipped) == (0, 1)
    raw = store_sql(store, "SELECT key_hash FROM tombstones")[0][0]
    assert "spam@x" not in raw


def test_outbox_transitions(store: Store) -> None:
    store.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    conv = store.list_conversations()[0].id
    key = "k1"
    oid = store.outbox_enqueue(conv, "shop", {"text": "hi"}, key)
    assert store.outbox_enqueue(conv, "shop", {"text": "hi"}, key) == oid
    with pytest.raises(IllegalTransition):
        store.outbox_mark_sent(oid, "x")           # queued -> sent without a claim
    now = datetime.now(UTC)
    assert store.outbox_claim_next(now, accounts={"other"}) is None
    row = store.outbox_claim_next(now)
    assert row is not None and row.state is OutboxState.SENDING and row.attempts == 1
    assert store.outbox_claim_next(now) is None     # nothing else due
    store.outbox_retry_later(oid, "421 try later", now + timedelta(minutes=1))
    assert store.outbox_claim_next(now) is None     # not due yet
    row = store.outbox_claim_next(now + timedelta(minutes=2))
    assert row is not None and row.attempts == 2
    store.outbox_mark_sent(oid, "msg-1")
    assert store.outbox_claim_next(now + timedelta(hours=1)) is None   # sent stays sent
    with pytest.raises(IllegalTransition):
        store.outbox_mark_failed(oid, "x")
    with pytest.raises(IllegalTransition):
        store.outbox_retry_later(oid, "x", now)
    assert store.outbox_counts() == {"sent": 1}


def test_a_decision_queues_its_reply_and_a_second_decision_queues_no_second_reply(
        store: Store) -> None:
    store.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    conv = store.list_conversations()[0]
    [message] = store.get_messages(conv.id)
    reply = QueuedReply(conv.id, "shop", {"text": "hi"}, "auto-a")
    first = store.record_decision(message.id, "replied", "entry x", entry_id="x", score=0.9,
                                  at=T0, reply=reply)
    again = store.record_decision(message.id, "replied", "entry x", entry_id="x", score=0.9,
                                  at=T0, reply=reply)

    assert first is not None and again == first
    assert [r.idempotency_key for r in store.outbox_rows()] == ["auto-a"]
    assert store.automation_pending(since=T0 - timedelta(days=1)) == []
    assert store.record_decision(message.id, "left", "", entry_id=None, score=None,
                                 at=T0) is None


def test_an_outbox_claim_is_synced_to_disk_before_it_returns(sqlite_store: Store) -> None:
    sqlite_store.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    conv = sqlite_store.list_conversations()[0].id
    sqlite_store.outbox_enqueue(conv, "shop", {}, "k")
    statements: list[str] = []
    sqlite_store._db.set_trace_callback(statements.append)

    assert sqlite_store.outbox_claim_next(datetime.now(UTC)) is not None

    sqlite_store._db.set_trace_callback(None)
    assert statements[0] == "PRAGMA synchronous=FULL" and statements[-2] == "COMMIT"
    assert statements[-1] == "PRAGMA synchronous=NORMAL"
    assert tuple(sqlite_store._db.execute("PRAGMA synchronous").fetchone()) == (1,)  # NORMAL


def test_stuck_sending_rows_of_dead_processes(store: Store) -> None:
    store.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    conv = store.list_conversations()[0].id
    oid = store.outbox_enqueue(conv, "shop", {}, "k")
    now = datetime.now(UTC)
    store.outbox_claim_next(now, holder=f"{os.uname().nodename}:{os.getpid()}")
    assert store.outbox_stuck_sending() == []       # we are alive
    store_sql(store, "UPDATE outbox SET claimed_by=? WHERE id=?",
              (f"{os.uname().nodename}:999999999", oid))
    assert [r.id for r in store.outbox_stuck_sending()] == [oid]


def test_leases_expire(store: Store) -> None:
    assert store.acquire_lease("fetch:shop", "a", 60)
    assert not store.acquire_lease("fetch:shop", "b", 60)
    assert store.lease_holder("fetch:shop") == "a"
    store_sql(store, "UPDATE leases SET expires_at='2000-01-01T00:00:00.000000Z'")
    assert store.lease_holder("fetch:shop") is None
    assert store.acquire_lease("fetch:shop", "b", 60)
    assert not store.renew_lease("fetch:shop", "a", 60)
    store.release_lease("fetch:shop", "b")
    assert store.lease_holder("fetch:shop") is None


def test_people_actions(store: Store) -> None:
    store.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    conv = store.list_conversations()[0]
    assert conv.unread == 1 and conv.waiting_since == T0
    store.assign(conv.id, "Mia")
    store.add_tag(conv.id, "vip")
    store.add_tag(conv.id, "vip")
    store.set_priority(conv.id, "high")
    store.mark_read(conv.id)
    note = store.add_note(conv.id, "Mia", "called back")
    c = store.get_conversation(conv.id)
    assert (c.assignee, c.tags, str(c.priority), c.unread) == ("Mia", ["vip"], "high", 0)
    assert store.get_notes(conv.id) == [note]
    assert store.list_conversations(tag="vip", assignee="Mia")[0].id == conv.id
    assert store.list_conversations(assignee="") == []
    store.remove_tag(conv.id, "vip")
    assert store.list_conversations(tag="vip") == []
    with pytest.raises(NotFound):
        store.assign(9999, "x")


def test_our_reply_ends_the_wait(store: Store) -> None:
    store.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    conv = store.list_conversations()[0].id
    store.ingest("shop", [mail("ours@shop", direction=Direction.OUTBOUND,
                               sender="service@shop.example", recipients=["kunde@example.org"],
                               in_reply_to="a@x", at=T0 + timedelta(minutes=30))],
                 cursor_key="m", cursor=None)
    c = store.get_conversation(conv)
    assert c.waiting_since is None and len(store.get_messages(conv)) == 2
    assert store.waiting_conversations() == []


def test_data_version_sees_other_connections(tmp_path: Path) -> None:
    a = open_store(tmp_path / "agent.db")
    b = open_store(tmp_path / "agent.db")
    before = a.data_version()
    b.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    assert a.data_version() != before
    a.close()
    b.close()


def test_older_file_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    db = sqlite3.connect(path)
    db.executescript(shipped_steps("sqlite", 1)[0])
    db.execute("INSERT INTO contacts(display_name, created_at) VALUES ('Kim', 'x')")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = open_store(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.get_contact(1).display_name == "Kim"
    store.close()


def test_failed_migration_step_leaves_the_file_as_it_was(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.db"
    open_store(path).close()
    broken = "CREATE TABLE half_done (a);\nSELECT no_such_function();\n"
    monkeypatch.setattr("agent_tui.store.sqlite.MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(StoreError, match=r"agent\.db"):
        open_store(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables and "messages" in tables
    db.close()


def test_listing_never_reads_message_bodies(sqlite_store: Store) -> None:
    store = sqlite_store
    store.ingest("shop", [mail(f"{i}@x", sender=f"k{i}@example.org", text=f"Zeile eins\nmehr {i}",
                               at=T0 + timedelta(minutes=i)) for i in range(5)],
                 cursor_key="m", cursor=None)
    read_tables: set[str] = set()

    def record(action: int, table: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and table:
            read_tables.add(table)
        return sqlite3.SQLITE_OK

    store._db.set_authorizer(record)
    listed = store.list_conversations(limit=3)
    store.count_conversations(status="open")
    store._db.set_authorizer(None)
    assert [c.contact_address for c in listed] == ["k4@example.org", "k3@example.org",
                                                   "k2@example.org"]
    assert listed[0].preview == "Zeile eins"
    assert "conversations" in read_tables and "messages" not in read_tables


def test_reader_reads_while_a_write_transaction_is_open(store: Store) -> None:
    store.ingest("shop", [mail("a@x")], cursor_key="m", cursor=None)
    reader = store.reader()
    with store.transaction() as db:
        db.execute("UPDATE conversations SET subject='changing'")
        # Would wait for the busy timeout and fail if the reader shared the writer's lock.
        assert [c.subject for c in reader.list_conversations()] == ["Bestellung"]
    assert [c.subject for c in reader.list_conversations()] == ["changing"]
    reader.close()


def test_mail_without_message_id_is_deduplicated_by_its_content_hash(store: Store) -> None:
    # The mail parser names such a mail "hash:<content hash>" (connectors/email/mime.py).
    first = mail("hash:3f2a", subject="Ohne Message-ID")
    first.content_hash = "3f2a"
    again = mail("hash:3f2a", subject="Ohne Message-ID")
    again.content_hash = "3f2a"
    assert store.ingest("shop", [first], cursor_key="m", cursor=None).new == 1
    assert store.ingest("shop", [again], cursor_key="m", cursor=None).duplicates == 1
