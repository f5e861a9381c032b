"""Proposed merges from mail fetched off a real Dovecot by the engine's sync (issue 11)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_tui.engine.sync import sync_account
from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import open_store
from connectors.email import EmailConnector
from tests.fakes.dovecot import Dovecot
from tests.integration.conftest import SettingsFactory

pytestmark = pytest.mark.integration

SIGNED = (b"From: Kim Kunde <kim@example.org>\r\nTo: service@shop.example\r\n"
          b"Subject: Lieferung\r\nMessage-ID: <signed@example.org>\r\n"
          b"Date: Fri, 20 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
          b"Hallo, wo bleibt mein Paket?\r\n\r\n-- \r\nKim Kunde\r\n"
          b"Mobil 0170 1234567\r\n")
FORM = (b"From: Kontaktformular <form@shop-forms.example>\r\nTo: service@shop.example\r\n"
        b"Reply-To: Jo <jo@example.net>\r\nSubject: Rueckruf\r\n"
        b"Message-ID: <form-1@shop-forms.example>\r\nDate: Fri, 20 Nov 2026 09:05:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nBitte um Rueckruf.\r\n")


@pytest.fixture
async def connector(email_settings: SettingsFactory) -> AsyncIterator[EmailConnector]:
    mail = EmailConnector(email_settings())
    yield mail
    await mail.close()


async def test_sync_proposes_merges_from_signature_and_reply_to(
        connector: EmailConnector, dovecot: Dovecot, mail_user: tuple[str, str],
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "agent.db")
    store.ingest("shop-sms", [InboundMessage(
        channel=Channel.SMS, provider_id="SM1", direction=Direction.INBOUND,
        sender="+491701234567", sender_name="", recipients=["+493012345678"],
        sent_at=datetime(2026, 11, 19, tzinfo=UTC), subject="", text="Paket?")],
        cursor_key="main", cursor=None)
    store.ingest("shop-mail-old", [InboundMessage(
        channel=Channel.EMAIL, provider_id="jo-1@example.net", direction=Direction.INBOUND,
        sender="jo@example.net", sender_name="Jo", recipients=["service@shop.example"],
        sent_at=datetime(2026, 11, 18, tzinfo=UTC), subject="Hallo", text="Hallo")],
        cursor_key="main", cursor=None)
    dovecot.deliver(SIGNED, user=mail_user[0])
    dovecot.deliver(FORM, user=mail_user[0])

    result = await sync_account(store, connector, "shop-mail")

    assert result.error == "" and result.new == 2
    reasons = {p.reason: {p.contact_a, p.contact_b} for p in store.merge_proposals()}
    assert reasons == {
        "phone +491701234567 in a mail signature": {store.find_contact("kim@example.org"),
                                                    store.find_contact("+491701234567")},
        "Reply-To jo@example.net": {store.find_contact("jo@example.net"),
                                    store.find_contact("form@shop-forms.example")},
    }
    # Proposed, not merged: every address is still its own contact.
    assert len({store.find_contact(a) for a in ("kim@example.org", "+491701234567",
                                                "jo@example.net",
                                                "form@shop-forms.example")}) == 4
    # A second sync fetches nothing new and proposes nothing twice.
    await sync_account(store, connector, "shop-mail")
    assert len(store.merge_proposals(state=None)) == 2
    store.close()
