"""Data protection: export, erasure without a trace, retention, merge and split (issues 11, 13)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_tui.engine.privacy import export_contact
from agent_tui.errors import UsageError
from agent_tui.model import Channel, ConversationStatus, Direction
from agent_tui.store import Store
from connectors.base import InboundMessage
from tests.conftest import reopen_store, store_files, store_sql

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RAW = (b"From: Kim <kim@example.org>\r\nTo: s@shop.example\r\nSubject: Quittung\r\n"
       b"Message-ID: <m1@example.org>\r\nMIME-Version: 1.0\r\n"
       b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
       b"Content-Type: text/plain\r\n\r\nAnbei die Quittung Zebrafinkenquittung\r\n--b\r\n"
       b"Content-Type: application/pdf\r\n"
       b'Content-Disposition: attachment; filename="../quittung.pdf"\r\n'
       b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n")


def seed(store: Store) -> tuple[int, int]:
    from connectors.email.mime import parse_message

    store.ingest("mail", [parse_message(RAW)], cursor_key="m", cursor=None)
    store.ingest("sms", [InboundMessage(
        channel=Channel.SMS, provider_id="SM1", direction=Direction.INBOUND,
        sender="+491701234567", sender_name="", recipients=[], sent_at=T0, subject="",
        text="Zebrafinkenquittung per SMS")], cursor_key="m", cursor=None)
    store.ingest("mail", [InboundMessage(
        channel=Channel.EMAIL, provider_id="other@example.org", direction=Direction.INBOUND,
        sender="someone@example.org", sender_name="Other", recipients=[], sent_at=T0,
        subject="Hallo", text="nichts")], cursor_key="m", cursor=None)
    ids = {c.contact_address: c.contact_id for c in store.list_conversations()}
    return ids["kim@example.org"], ids["+491701234567"]


def test_merge_split_and_export_across_channels(store: Store, tmp_path: Path) -> None:
    kim, phone = seed(store)
    store.merge_contacts(kim, phone)
    assert {i.kind for i in store.get_contact(kim).identities} == {"email", "phone"}
    out = tmp_path / "export"
    result = export_contact(store, kim, out)
    document = json.loads((out / "contact.json").read_text())
    texts = [m["text"] for c in document["conversations"] for m in c["messages"]]
    assert result["messages"] == 2 and len(texts) == 2
    assert any("per SMS" in t for t in texts) and any("Anbei" in t for t in texts)
    [saved] = (out / "attachments").iterdir()         # "../quittung.pdf" stays inside
    assert saved.name.endswith("quittung.pdf") and "/" not in saved.name
    assert saved.read_bytes().startswith(b"%PDF") and result["attachments"] == 1
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "Messages: 2" in (out / "summary.txt").read_text()
    with pytest.raises(UsageError):
        export_contact(store, kim, out)                 # never overwrites an export
    new = store.split_contact(kim, "phone", "+491701234567")
    assert [c.channel for c in store.contact_conversations(new)] == [Channel.SMS]


def test_erase_leaves_no_trace_and_is_not_reimported(store: Store,
                                                    request: pytest.FixtureRequest) -> None:
    kim, phone = seed(store)
    store.merge_contacts(kim, phone)
    removed = store.erase_contact(kim)
    assert removed == {"conversations": 2, "messages": 2, "identities": 2}
    assert store.search("Zebrafinkenquittung") == []
    for table in ("contacts", "identities", "conversations", "messages", "notes", "outbox"):
        rows = store_sql(store, f"SELECT * FROM {table}")
        assert not any("kim@" in json.dumps([*r], default=str) for r in rows), table
    for path in store_files(store, request):
        assert b"Zebrafinkenquittung" not in path.read_bytes(), path
    store.close()
    again = reopen_store(store)
    from connectors.email.mime import parse_message

    result = again.ingest("mail", [parse_message(RAW)], cursor_key="m", cursor=None)
    assert (result.new, result.skipped) == (0, 1)


def test_retention_purges_only_old_closed_conversations(store: Store) -> None:
    kim, phone = seed(store)
    by_contact = {c.contact_id: c.id for c in store.list_conversations()}
    store.set_status(by_contact[kim], ConversationStatus.CLOSED)
    store.set_status(by_contact[phone], ConversationStatus.CLOSED)
    store_sql(store, "UPDATE conversations SET closed_at='2025-01-01T00:00:00.000000Z' "
                      "WHERE id=?", (by_contact[kim],))
    assert store.purge_closed(datetime.now(UTC) - timedelta(days=365)) == 1
    remaining = {c.id for c in store.list_conversations()}
    assert by_contact[kim] not in remaining and by_contact[phone] in remaining
    assert len(remaining) == 2


def test_erase_removes_merge_proposals_and_hints_without_a_trace(
        store: Store, request: pytest.FixtureRequest) -> None:
    kim, phone = seed(store)
    other = store.find_contact("someone@example.org")
    assert other is not None
    # Kim's mail shows a phone another contact writes from; Kim was split off once; another
    # customer's mail named Kim's address as its Reply-To.
    store.propose_merge(kim, phone, "Reply-To kim@example.org (Zebrafinkenhinweis)")
    store.merge_contacts(kim, phone)
    store.split_contact(kim, "phone", "+491701234567")
    store.add_contact_hint(kim, "phone", "+4930999999", "phone +4930999999 in a mail signature")
    store.add_contact_hint(other, "email", "kim@example.org", "Reply-To kim@example.org")
    store.propose_merge(kim, other, "Reply-To kim@example.org")
    store.erase_contact(kim)
    for table in ("merge_proposals", "contact_hints"):
        rows = store_sql(store, f"SELECT * FROM {table}")
        assert not any("kim@" in json.dumps([*r], default=str) for r in rows), table
    assert store.contact_hints("phone", "+4930999999") == []
    for path in store_files(store, request):
        data = path.read_bytes()
        assert b"kim@example.org" not in data and b"Zebrafinkenhinweis" not in data, path
        assert b"+4930999999" not in data, path


def test_export_names_files_as_saving_attachments_does(store: Store, tmp_path: Path) -> None:
    """One helper for both: same copy names, names cut to fit the file system, no overwrite."""
    from email.message import EmailMessage

    from agent_tui.engine.files import candidate_names
    from connectors.email.mime import parse_message

    long_name = "Rücksendung 📦📦📦 für Größe ÄÖÜ " * 10 + ".pdf"     # 304 characters, 464 bytes
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "kim@example.org", "s@shop.example", "Dateien"
    mail["Message-ID"] = "<files@example.org>"
    mail.set_content("Anbei")
    for name, data in (("backup.tar.gz", b"one"), ("backup.tar.gz", b"two"),
                       (long_name, b"three"), (long_name, b"four")):
        mail.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    store.ingest("mail", [parse_message(mail.as_bytes())], cursor_key="m", cursor=None)
    [conversation] = store.list_conversations()
    out = tmp_path / "export"
    assert export_contact(store, conversation.contact_id, out)["attachments"] == 4
    files = out / "attachments"
    tar, long = candidate_names("backup.tar.gz"), candidate_names(long_name)
    expected = {next(tar): b"one", next(tar): b"two", next(long): b"three", next(long): b"four"}
    assert "backup (1).tar.gz" in expected
    assert {p.name: p.read_bytes() for p in files.iterdir()} == expected
    document = json.loads((out / "contact.json").read_text())
    [entry] = document["conversations"]
    assert sorted(a["file"] for a in entry["attachments"]) == sorted(
        f"attachments/{name}" for name in expected)
