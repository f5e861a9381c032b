"""Saving attachments: bytes from the stored mail source, safe names, never an overwrite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from agent_tui.engine.attachments import save_attachments
from agent_tui.model import AttachmentInfo, Channel, Direction, Message
from agent_tui.store import Store, open_store
from connectors.base import InboundMessage

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
PHOTO = b"\xff\xd8\xff\xe0 not really a jpeg"


def mail_with_attachments() -> bytes:
    mail = EmailMessage()
    mail["From"] = "Kim Berger <kim@example.org>"
    mail["To"] = "service@shop.example"
    mail["Subject"] = "Rechnung und Foto"
    mail["Message-ID"] = "<att1@example.org>"
    mail.set_content("Anbei Rechnung und Foto.")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="Rechnung 10234.pdf")
    mail.add_attachment(PHOTO, maintype="image", subtype="jpeg", filename="../../.bashrc\u202e.jpg")
    return mail.as_bytes()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    from connectors.email.mime import parse_message

    store = open_store(str(tmp_path / "agent.db"))
    store.ingest("shop-mail", [parse_message(mail_with_attachments())], cursor_key="m",
                 cursor=None)
    yield store
    store.close()


def the_mail(store: Store) -> Message:
    conversation = store.list_conversations()[0]
    return store.get_messages(conversation.id)[0]


def test_saves_the_decoded_parts_under_safe_names(store: Store, tmp_path: Path) -> None:
    message = the_mail(store)
    assert [(a.name, a.content_type, a.size) for a in message.attachments] == [
        ("Rechnung 10234.pdf", "application/pdf", len(PDF)),
        ("____.bashrc.jpg", "image/jpeg", len(PHOTO))]
    out = tmp_path / "downloads" / "new"        # made if missing
    saved = save_attachments(store, message, out)
    assert [s.problem for s in saved] == ["", ""]
    assert [s.path for s in saved] == [out / "Rechnung 10234.pdf", out / "____.bashrc.jpg"]
    assert (out / "Rechnung 10234.pdf").read_bytes() == PDF
    assert (out / "____.bashrc.jpg").read_bytes() == PHOTO
    assert sorted(p.name for p in out.iterdir()) == ["Rechnung 10234.pdf", "____.bashrc.jpg"]
    assert not (tmp_path / ".bashrc").exists() and not (tmp_path / "downloads" / ".bashrc").exists()


def test_saving_twice_gives_two_files_never_an_overwrite(store: Store, tmp_path: Path) -> None:
    message = the_mail(store)
    (tmp_path / "Rechnung 10234.pdf").write_bytes(b"mine, keep it")
    first = save_attachments(store, message, tmp_path)
    second = save_attachments(store, message, tmp_path)
    assert [s.path.name for s in first if s.path] == ["Rechnung 10234 (1).pdf",
                                                      "____.bashrc.jpg"]
    assert [s.path.name for s in second if s.path] == ["Rechnung 10234 (2).pdf",
                                                       "____.bashrc (1).jpg"]
    assert (tmp_path / "Rechnung 10234.pdf").read_bytes() == b"mine, keep it"
    assert (tmp_path / "Rechnung 10234 (2).pdf").read_bytes() == PDF


def test_what_cannot_be_saved_says_why(store: Store, tmp_path: Path) -> None:
    store.ingest("shop-sms", [InboundMessage(
        channel=Channel.WHATSAPP, provider_id="MM1", direction=Direction.INBOUND,
        sender="+491701234567", sender_name="", recipients=[], sent_at=T0, subject="",
        text="Foto", attachments=[AttachmentInfo("ME1.jpg", "image/jpeg", 0,
                                                 "https://api.twilio.com/2010-04-01/x")])],
        cursor_key="m", cursor=None)
    chat = next(m for c in store.list_conversations() for m in store.get_messages(c.id)
                if m.channel is Channel.WHATSAPP)
    [saved] = save_attachments(store, chat, tmp_path / "out")
    assert saved.path is None and "whatsapp media are kept by the provider" in saved.problem
    # A mail whose source was not kept (an outbound copy, an import): listed, not saveable.
    store.ingest("shop-mail", [InboundMessage(
        channel=Channel.EMAIL, provider_id="nosrc@example.org", direction=Direction.INBOUND,
        sender="lea@example.org", sender_name="", recipients=[], sent_at=T0, subject="x",
        text="x", attachments=[AttachmentInfo("a.pdf", "application/pdf", 3, "2")])],
        cursor_key="m", cursor=None)
    mail = next(m for c in store.list_conversations() for m in store.get_messages(c.id)
                if m.provider_id == "nosrc@example.org")
    [saved] = save_attachments(store, mail, tmp_path / "out")
    assert saved.path is None and saved.problem == "the mail's source is not in the store"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_long_name_is_saved_cut_to_fit_the_file_system(tmp_path: Path) -> None:
    from agent_tui.engine.files import candidate_names
    from connectors.email.mime import parse_message

    long_name = "Rücksendung 📦📦📦 für Größe ÄÖÜ " * 10 + ".pdf"     # 464 bytes
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "kim@example.org", "s@shop.example", "Lang"
    mail["Message-ID"] = "<long@example.org>"
    mail.set_content("Anbei")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename=long_name)
    mail.add_attachment(PHOTO, maintype="application", subtype="pdf", filename=long_name)
    store = open_store(str(tmp_path / "agent.db"))
    store.ingest("shop-mail", [parse_message(mail.as_bytes())], cursor_key="m", cursor=None)
    saved = save_attachments(store, the_mail(store), tmp_path / "out")
    store.close()
    names = candidate_names(long_name)
    assert [(s.problem, s.path) for s in saved] == [
        ("", tmp_path / "out" / next(names)), ("", tmp_path / "out" / next(names))]
    assert [s.path.read_bytes() for s in saved if s.path] == [PDF, PHOTO]
