"""A seeded store and a fixed clock, so Pilot tests and snapshots are repeatable."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import textual.constants

from agent_tui.config import Config, parse_config
from agent_tui.model import AttachmentInfo, Channel, Direction, InboundMessage
from agent_tui.store import Store, open_store
from agent_tui.ui.app import AgentApp

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KNOWLEDGE = Path(__file__).resolve().parent / "knowledge.de.toml"
HOSTILE = "Hallo \x1b[31mrot\x1b[0m [@click=app.quit]klick[/] \u202egnirts\u202c [bold]fett[/bold]"


@pytest.fixture(autouse=True)
def true_colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app picks its theme from the terminal's colours; pin them so snapshots match."""
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "truecolor")


@pytest.fixture(autouse=True)
def utc_local_time() -> Iterator[None]:
    """Times on screen use the local zone; pin it so snapshots match on every machine."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def _mail(i: int, subject: str, text: str, sender: str, name: str,
          minutes_ago: int) -> InboundMessage:
    return InboundMessage(channel=Channel.EMAIL, provider_id=f"m{i}@example.org",
                          direction=Direction.INBOUND, sender=sender, sender_name=name,
                          recipients=["service@shop.example"],
                          sent_at=NOW - timedelta(minutes=minutes_ago), subject=subject,
                          text=text)


def chat(channel: Channel, pid: str, sender: str, text: str, minutes_ago: int,
          name: str = "") -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=pid, direction=Direction.INBOUND,
                          sender=sender, sender_name=name, recipients=[],
                          sent_at=NOW - timedelta(minutes=minutes_ago), subject="", text=text)


def seed(store: Store) -> None:
    store.ingest("shop-mail", [
        _mail(1, "Wo bleibt meine Bestellung?", "Hallo,\nwo bleibt meine Bestellung 10234?\n"
              "> Ihre Bestellung wurde versandt\n> am Montag\n> mit DHL\n> Gruß\nDanke, Kim",
              "kim@example.org", "Kim Berger", 300),
        _mail(2, "Rücksendung", "Kann ich die Jacke zurückschicken? Sie ist zu klein.",
              "jonas@example.org", "Jonas Weber", 45),
        _mail(3, "Rechnung", "Bitte schicken Sie mir eine Kopie der Rechnung.",
              "lea@example.org", "Lea Fischer", 2000),
        _mail(4, "Achtung", HOSTILE, "evil@example.org", "Mallory [red]X[/red]", 20),
    ], cursor_key="main", cursor=None)
    store.ingest("shop-sms", [
        chat(Channel.SMS, "SM1", "+491701234567", "Ist mein Paket schon unterwegs?", 50),
        chat(Channel.WHATSAPP, "WA1", "+491709876543", "Die Tasse kam kaputt an :(", 30,
              "Mehmet"),
    ], cursor_key="main", cursor=None)
    store.ingest("shop-telegram", [
        chat(Channel.TELEGRAM, "7:1", "7", "Habt ihr am Samstag geöffnet?", 10, "Sam Telegram"),
    ], cursor_key="main", cursor=None)


@pytest.fixture
def ui_config(tmp_path: Path) -> Config:
    return parse_config(
        f'[agent]\nname = "Mia"\n[store]\npath = "{tmp_path / "agent.db"}"\n'
        f'[knowledge]\npath = "{KNOWLEDGE}"\n', tmp_path / "agent-tui.toml")


@pytest.fixture
def ui_store(ui_config: Config) -> Iterator[Store]:
    store = open_store(ui_config.store.path)
    seed(store)
    yield store
    store.close()


@pytest.fixture
def make_app(ui_config: Config, ui_store: Store) -> object:
    from agent_tui.engine.suggestions import load_suggester

    suggester = load_suggester(ui_config)

    def make() -> AgentApp:
        return AgentApp(ui_config, ui_store, None, clock=lambda: NOW, suggester=suggester)

    return make


def app_with(ui_config: Config, ui_store: Store, toml: str) -> AgentApp:
    """The seeded app with a `[ui]` part read from `toml` by the real config loader."""
    assert ui_config.path is not None
    ui = parse_config(toml, ui_config.path).ui
    return AgentApp(dataclasses.replace(ui_config, ui=ui), ui_store, None, clock=lambda: NOW,
                    load_suggester=False)


async def settle(pilot: Any) -> None:
    """Wait until the screen on top is mounted and the app's workers are done. A load
    superseded by a newer one (exclusive workers) ends cancelled, which is fine; a worker that
    crashed fails the test."""
    import asyncio

    from textual.worker import WorkerState

    await pilot.pause()
    # A just-pushed screen may not have composed yet (push_screen's awaitable can resolve
    # first); its on_mount starts the workers waited for below.
    for _ in range(1000):
        if pilot.app.screen.is_mounted:
            break
        await pilot.pause()
    for _ in range(5):
        # The engine's worker runs for the app's lifetime; everything else finishes.
        workers = [w for w in pilot.app.workers if w.group != "engine"]
        if not workers:
            break
        await asyncio.gather(*(w.wait() for w in workers), return_exceptions=True)
        crashed = [w for w in workers if w.state is WorkerState.ERROR]
        assert not crashed, f"worker crashed: {crashed[0].error!r}"
    await pilot.pause()


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8
PHOTO = b"\xff\xd8\xff\xe0" + b"jpeg" * 700


def _mail_with_attachments(number: int, subject: str, minutes_ago: int,
                           files: list[tuple[bytes, str, str, str]]) -> bytes:
    from email.message import EmailMessage
    from email.utils import format_datetime

    mail = EmailMessage()
    mail["From"] = "Nora Klein <nora@example.org>"
    mail["To"] = "service@shop.example"
    mail["Subject"] = subject
    mail["Date"] = format_datetime(NOW - timedelta(minutes=minutes_ago))
    mail["Message-ID"] = f"<att{number}@example.org>"
    mail.set_content("Anbei die Unterlagen.\nGruß, Nora")
    for data, maintype, subtype, name in files:
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return mail.as_bytes()


def seed_attachments(store: Store) -> int:
    """Two mails of Nora's with attachments (the source kept, as sync keeps it) and a Telegram
    photo (its bytes are at the provider); returns the conversation of the newer mail."""
    from connectors.email.mime import parse_message

    store.ingest("shop-mail", [
        parse_message(_mail_with_attachments(1, "Reklamation", 120,
                                             [(PDF, "application", "pdf", "Rechnung 10234.pdf")])),
        parse_message(_mail_with_attachments(2, "Fotos vom Schaden", 15, [
            (PHOTO, "image", "jpeg", "schaden.jpg"),
            (PDF, "application", "pdf", "Lieferschein.pdf")])),
    ], cursor_key="att", cursor=None)
    store.ingest("shop-telegram", [InboundMessage(
        channel=Channel.TELEGRAM, provider_id="7:2", direction=Direction.INBOUND, sender="7",
        sender_name="Sam Telegram", recipients=[], sent_at=NOW - timedelta(minutes=5),
        subject="", text="Hier das Foto",
        attachments=[AttachmentInfo("photo-1.jpg", "image/jpeg", 48213, "AgACAgIAAx")])],
        cursor_key="att", cursor=None)
    return next(c.id for c in store.list_conversations() if c.subject == "Fotos vom Schaden")


def seed_proposal(store: Store) -> tuple[int, int, int]:
    """Kim's mail signature gave the phone number the SMS customer writes from: a proposed
    merge (as sync makes one). Returns (proposal, Kim's contact, the SMS contact)."""
    kim = store.find_contact("kim@example.org")
    sms = store.find_contact("+491701234567")
    assert kim is not None and sms is not None
    proposal = store.propose_merge(kim, sms, "phone +491701234567 in a mail signature")
    assert proposal is not None
    return proposal, kim, sms


def seed_replies(store: Store) -> None:
    """Two replies, as the outbox sender records them: Jonas got a suggestion unchanged after
    30 minutes, Sam an automatic answer after 5 (the figures the stats screen shows)."""
    replies = [("Rücksendung", "jonas@example.org", 15, {"entry_id": "returns",
                                                        "suggestion_edited": False}),
               ("", "7", 5, {"automatic": True, "entry_id": "opening-hours"})]
    for n, (subject, to, minutes_ago, payload) in enumerate(replies):
        conversation = next(c for c in store.list_conversations()
                            if c.contact_address == to and c.subject == subject)
        account = conversation.account
        outbox_id = store.outbox_enqueue(conversation.id, account,
                                         {"channel": str(conversation.channel), "to": to,
                                          "text": "ok", **payload}, idempotency_key=f"r{n}")
        store.record_outbound(account, InboundMessage(
            channel=conversation.channel, provider_id=f"reply-{n}", direction=Direction.OUTBOUND,
            sender="service@shop.example", sender_name="Mia", recipients=[to],
            sent_at=NOW - timedelta(minutes=minutes_ago), subject="", text="ok",
            extra={"outbox_id": outbox_id}), conversation_id=conversation.id)
