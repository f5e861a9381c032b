"""PostgreSQL-only behaviour: migration from SQLite, live updates, concurrency, schema steps.

The backend-neutral behaviour is tested on both stores by the suites that take `any_store`
(test_store.py, test_privacy.py, test_store_proposals.py, test_engine_contacts.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")

from agent_tui.cli import main
from agent_tui.errors import StoreError, UsageError
from agent_tui.model import AttachmentInfo, AutoFlags, Channel, Direction, InboundMessage
from agent_tui.store import open_store, postgres, sqlite
from agent_tui.store.migrate import DATA_TABLES, TABLES, migrate
from agent_tui.store.postgres import PostgresStore
from agent_tui.store.sqlite import SqliteStore
from tests.conftest import store_sql

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def message(channel: Channel, provider_id: str, sender: str, text: str, *,
            at: datetime = T0, **extra: Any) -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=provider_id, direction=Direction.INBOUND,
                          sender=sender, sender_name="Kim Kunde", recipients=["shop"],
                          sent_at=at, subject="Bestellung" if channel is Channel.EMAIL else "",
                          text=text, **extra)


def seed_every_channel(store: Any) -> None:
    store.ingest("mail", [
        message(Channel.EMAIL, "m1@x", "kim@example.org", "Wo bleibt die Lieferung?",
                raw=b"From: kim@example.org\r\n\r\nWo bleibt die Lieferung?\x00\xff",
                attachments=[AttachmentInfo("rechnung.pdf", "application/pdf", 1234, "2")],
                auto=AutoFlags(bulk=True), references=["r0@x"], defects=["no date"],
                reply_to="Kim@Other.example"),
    ], cursor_key="INBOX", cursor={"uidvalidity": 7, "last_uid": 1, "modseq": 99})
    store.ingest("sms", [message(Channel.SMS, "SM1", "+491701234567", "Paket kaputt")],
                 cursor_key="main", cursor={"date_sent": "2026-11-02T09:00:00Z", "sids": ["SM1"]})
    store.ingest("wa", [message(Channel.WHATSAPP, "WA1", "+491701234567", "Größe falsch",
                                at=T0 + timedelta(minutes=5))], cursor_key="main", cursor=None)
    store.ingest("tg", [message(Channel.TELEGRAM, "42:1", "42", "Hallo 👋",
                                extra={"shared_phone": "+491709999999"})],
                 cursor_key="main", cursor={"offset": 2})
    conversations = {c.channel: c for c in store.list_conversations()}
    mail = conversations[Channel.EMAIL]
    store.add_note(mail.id, "Mia", "called back")
    store.add_tag(mail.id, "vip")
    store.assign(mail.id, "Mia")
    store.set_enrichment(mail.id, {"order.number": "12345"})
    store.set_due(mail.id, T0 + timedelta(hours=4))
    store.outbox_enqueue(mail.id, "mail", {"text": "Ist unterwegs"}, "key-1")
    sent = store.outbox_enqueue(conversations[Channel.SMS].id, "sms", {"text": "ok"}, "key-2")
    store.outbox_claim_next(datetime.now(UTC), accounts={"sms"})
    store.outbox_mark_sent(sent, "SMabc")
    store.record_auto_reply(mail.contact_id, T0)
    store.record_decision(store.get_messages(mail.id)[0].id, "skip", "bulk mail",
                          entry_id=None, score=0.5, at=T0)
    store.ingest("mail", [message(Channel.EMAIL, "spam@x", "spam@example.org", "Spam")],
                 cursor_key="INBOX", cursor=None)
    spam = store.find_contact("spam@example.org")
    store.delete_message(store.get_messages(store.contact_conversations(spam)[0].id)[0].id)
    store.propose_merge(mail.contact_id, conversations[Channel.TELEGRAM].contact_id,
                        "Telegram shared phone")
    store.add_contact_hint(mail.contact_id, "phone", "+491708888888", "signature phone")


def snapshot(store: Any) -> dict[str, Any]:
    """Everything the API shows, comparable across backends."""
    conversations = store.list_conversations(limit=1000)
    return {
        "conversations": conversations,
        "messages": [store.get_messages(c.id) for c in conversations],
        "raw": [store.get_raw(m.id) for c in conversations for m in store.get_messages(c.id)],
        "extras": [store.get_message_extra(m.id) for c in conversations
                   for m in store.get_messages(c.id)],
        "notes": [store.get_notes(c.id) for c in conversations],
        "contacts": [store.get_contact(c.contact_id) for c in conversations],
        "cursors": [store.get_cursor(a, k) for a, k in
                    [("mail", "INBOX"), ("sms", "main"), ("wa", "main"), ("tg", "main")]],
        "outbox": store.outbox_rows(),
        "proposals": store.merge_proposals(state=None),
        "hints": store.contact_hints("phone", "+491708888888"),
        "auto": [store.last_auto_reply(c.contact_id) for c in conversations],
        "decisions": [store.automation_decisions(c.id) for c in conversations],
        "search": [h.message_id for h in store.search("Lieferung")],
    }


def test_migrate_keeps_every_row_of_every_channel(tmp_path: Path, empty_postgres_url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.db"
    source = SqliteStore(path)
    seed_every_channel(source)
    before = snapshot(source)
    source.close()
    code = main(["store", "migrate", "--from", str(path), "--to", empty_postgres_url, "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    db = sqlite3.connect(path)
    expected = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    db.close()
    assert report["counts"] == expected
    assert expected["messages"] == 4 and expected["tombstones"] == 1
    target = open_store(empty_postgres_url)
    assert snapshot(target) == before
    # Ids go on from the copied ones, and the tombstone still keeps the deleted mail out.
    assert target.ingest("mail", [message(Channel.EMAIL, "spam@x", "spam@example.org", "x")],
                         cursor_key="INBOX", cursor=None).skipped == 1
    new = target.ingest("mail", [message(Channel.EMAIL, "m2@x", "new@example.org", "neu")],
                        cursor_key="INBOX", cursor=None)
    assert new.new_message_ids[0] > max(m.id for ms in before["messages"] for m in ms)
    target.close()


def test_migrate_refuses_a_target_with_data(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "agent.db"
    SqliteStore(path).close()
    occupied = open_store(postgres_url)
    occupied.ingest("sms", [message(Channel.SMS, "SM1", "+491701234567", "x")],
                    cursor_key="m", cursor=None)
    occupied.close()
    with pytest.raises(UsageError, match="not empty"):
        migrate(path, postgres_url)
    assert main(["store", "migrate", "--from", str(path), "--to", "/tmp/x.db"]) == 2


def test_migrate_into_an_empty_schema_is_quiet_without_a_terminal(
        tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.db"
    SqliteStore(path).close()
    assert main(["store", "migrate", "--from", str(path), "--to", postgres_url]) == 0
    out, err = capsys.readouterr()
    assert "messages" in out and err == ""
    assert set(DATA_TABLES) <= set(TABLES)


def test_a_change_in_one_connection_is_seen_by_another_without_polling(
        postgres_url: str) -> None:
    a = PostgresStore(postgres_url)
    b = PostgresStore(postgres_url, migrate=False)
    version = b.data_version()
    assert b.data_version() == version                      # nothing happened
    b.wait_for_change(0)

    def write() -> None:
        a.ingest("sms", [message(Channel.SMS, "SM1", "+491701234567", "Hallo")],
                 cursor_key="m", cursor=None)

    timer = threading.Timer(0.2, write)
    timer.start()
    started = time.monotonic()
    changed = b.wait_for_change(10)                          # blocks on the socket, no query
    while not {"messages", "conversations", "contacts"} <= changed \
            and time.monotonic() - started < 10:
        changed |= b.wait_for_change(1)                      # (if the commit's came apart)
    assert time.monotonic() - started < 5
    timer.join()
    assert {"messages", "conversations", "contacts"} <= changed
    assert b.data_version() != version
    # A statement that changes nothing notifies nobody (the UI would redraw for nothing).
    version = b.data_version()
    a.wake_snoozed()
    assert b.wait_for_change(0.3) == set() and b.data_version() == version
    a.assign(a.list_conversations()[0].id, "Mia")
    assert b.wait_for_change(5) == {"conversations"}
    a.close()
    b.close()


def test_claims_never_hand_one_row_to_two_senders(postgres_url: str) -> None:
    seed = open_store(postgres_url)
    seed.ingest("sms", [message(Channel.SMS, "SM1", "+491701234567", "x")],
                cursor_key="m", cursor=None)
    conversation = seed.list_conversations()[0].id
    ids = {seed.outbox_enqueue(conversation, "sms", {"n": i}, f"k{i}") for i in range(40)}
    seed.close()
    claimed: list[int] = []
    lock = threading.Lock()

    def sender(name: str) -> None:
        store = PostgresStore(postgres_url, migrate=False)
        while (row := store.outbox_claim_next(datetime.now(UTC), holder=name)) is not None:
            with lock:
                claimed.append(row.id)
        store.close()

    threads = [threading.Thread(target=sender, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_leases_between_two_hosts(postgres_url: str) -> None:
    a = PostgresStore(postgres_url)
    b = PostgresStore(postgres_url, migrate=False)
    b.data_version()                                          # b listens from now on
    assert a.acquire_lease("reply:1", "mia@host1", 60)
    assert not b.acquire_lease("reply:1", "tom@host2", 60)
    assert b.lease_holder("reply:1") == "mia@host1"
    assert a.acquire_lease("reply:1", "mia@host1", 60)       # ours: renewed
    assert a.acquire_lease("short", "mia@host1", 0.2)
    assert b.wait_for_change(5) >= {"leases"}
    time.sleep(0.3)
    assert b.lease_holder("short") is None                    # expired: a dead instance
    assert b.acquire_lease("short", "tom@host2", 60)
    a.close()
    b.close()


def test_ingest_from_two_processes_at_once_keeps_one_contact(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, migrate=False) for _ in range(3)]
    errors: list[BaseException] = []

    def sync(store: PostgresStore, n: int) -> None:
        try:
            for i in range(10):
                store.ingest("sms", [message(Channel.SMS, f"SM{i}", "+491701234567", f"m{i}",
                                             at=T0 + timedelta(minutes=i))],
                             cursor_key="m", cursor={"n": n})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check = stores[0]
    assert check.count_conversations() == 1
    assert len(check.get_messages(check.list_conversations()[0].id)) == 10
    assert store_sql(check, "SELECT count(*) FROM contacts")[0][0] == 1
    for s in stores:
        s.close()


def test_schema_steps_keep_in_step_with_sqlite(empty_postgres_url: str) -> None:
    assert len(postgres.MIGRATIONS) == len(sqlite.MIGRATIONS)
    store = PostgresStore(empty_postgres_url)
    assert store_sql(store, "SELECT version FROM agent_tui_schema") == [(len(postgres.MIGRATIONS),)]
    assert store.search_folding == "unaccent"
    store_sql(store, "UPDATE agent_tui_schema SET version=?", (len(postgres.MIGRATIONS) + 1,))
    store.close()
    with pytest.raises(StoreError, match="newer agent-tui"):
        PostgresStore(empty_postgres_url)


def test_older_database_is_upgraded_and_keeps_its_data(empty_postgres_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent_tui.store.postgres.MIGRATIONS", postgres.MIGRATIONS[:2])
    old = PostgresStore(empty_postgres_url)
    old.ingest("sms", [message(Channel.SMS, "SM1", "+491701234567", "x")],
               cursor_key="m", cursor=None)
    old.close()
    monkeypatch.undo()
    store = PostgresStore(empty_postgres_url)
    assert store_sql(store, "SELECT version FROM agent_tui_schema") == [(len(postgres.MIGRATIONS),)]
    assert store.count_conversations() == 1 and store.merge_proposals() == []
    store.close()


def test_search_folds_accents_and_splits_addresses(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store.ingest("mail", [
        message(Channel.EMAIL, "1@x", "kim@example.org", "Die GRÖSSE passt nicht, Straße 5"),
        message(Channel.EMAIL, "2@x", "tom@shop.example", "Nul\x00 byte and ESC\x1b[31m text"),
    ], cursor_key="m", cursor=None)
    assert len(store.search("grösse")) == 1 and len(store.search("grosse")) == 1
    assert len(store.search("strasse")) == 1
    assert len(store.search("example")) == 2                  # parts of the sender address
    assert len(store.search("kim@example.org")) == 1
    [hit] = store.search("byte")
    assert "«byte»" in hit.snippet
    assert store.search("\x00 & | ! :* ''") == []
    store.close()


def test_reader_and_data_version_survive_a_lost_connection(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    version = store.data_version()
    pid = store._listening().info.backend_pid
    other = PostgresStore(postgres_url, migrate=False)
    store_sql(other, "SELECT pg_terminate_backend(?)", (pid,))
    deadline = time.monotonic() + 5
    while store.data_version() == version and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.data_version() != version      # the lost listener counts as a change
    other.close()
    store.close()


def test_the_store_carries_on_after_the_server_restarts(postgres_server: Any,
                                                        postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        seed_every_channel(store)
        before = [c.id for c in store.list_conversations()]

        postgres_server.restart()

        # A read and a write, each the first on the dropped connection: connected again.
        assert [c.id for c in store.list_conversations()] == before
        postgres_server.restart()
        conversation = before[0]
        store.add_note(conversation, "Mia", "after the restart")
        assert [n.text for n in store.get_notes(conversation)][-1] == "after the restart"
        postgres_server.restart()
        row = store.outbox_claim_next(datetime.now(UTC))
        assert row is not None and row.idempotency_key == "key-1"
        assert store.outbox_claim_next(datetime.now(UTC)) is None    # claimed once
    finally:
        store.close()


def test_a_transaction_cut_before_its_commit_is_not_repeated_and_the_next_one_runs(
        postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    other = PostgresStore(postgres_url, migrate=False)
    try:
        seed_every_channel(store)
        conversation = store.list_conversations()[0].id
        pid = store._db.info.backend_pid
        with pytest.raises(StoreError), store.transaction() as db:
            db.execute("INSERT INTO notes(conversation_id, author, text, created_at) "
                       "VALUES (?, 'Mia', 'cut', now())", (conversation,))
            store_sql(other, "SELECT pg_terminate_backend(?)", (pid,))
            db.execute("SELECT 1")
        assert "cut" not in [n.text for n in store.get_notes(conversation)]
        store.add_note(conversation, "Mia", "next")
        assert [n.text for n in other.get_notes(conversation)][-1] == "next"
    finally:
        other.close()
        store.close()


def test_retention_never_locks_others_out_with_vacuum_full(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    reading = PostgresStore(postgres_url, migrate=False)
    try:
        seed_every_channel(store)
        closed = store.list_conversations()[0].id
        store.set_status(closed, "closed")
        # A colleague's open transaction holds a share lock on the tables (VACUUM FULL would
        # wait for it, and every later reader would wait behind VACUUM FULL).
        with reading.transaction() as db:
            db.execute("SELECT count(*) FROM messages").fetchone()
            done = threading.Event()
            purge = threading.Thread(target=lambda: (
                store.purge_closed(datetime.now(UTC) + timedelta(days=1)), done.set()))
            purge.start()
            assert done.wait(20), "retention waited for an exclusive lock"
            purge.join()
    finally:
        reading.close()
        store.close()


def test_connections_have_keepalives_and_a_statement_timeout(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        assert store._query("SELECT setting FROM pg_settings WHERE name='statement_timeout'"
                            ) == [("60000",)]
        params = store._db.info.get_parameters()
        assert params["keepalives"] == "1" and params["keepalives_idle"] == "30"
    finally:
        store.close()


async def test_doctor_opens_the_postgres_store_and_never_shows_the_password(
        postgres_url: str, tmp_path: Path) -> None:
    from agent_tui.engine.doctor import run_doctor

    url = postgres_url.replace("agent_tui@", "agent_tui:not-a-secret@")   # trust auth ignores it
    config = tmp_path / "agent-tui.toml"
    # a password in the URL is a plaintext secret, allowed only so (test_store_url_password.py)
    config.write_text(f'allow_plaintext_secrets = true\n[store]\npath = "{url}"\n')
    config.chmod(0o600)
    report = await run_doctor(str(config))
    [store] = [c for c in report.checks if c.name == "store"]
    assert store.ok and store.detail.startswith("postgresql://127.0.0.1:")
    assert "not-a-secret" not in report.text()
