"""The demo sandbox: servers start and stop cleanly, and the real connectors work against them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from agent_tui.config import EmailAccount, TwilioAccount, load_config
from agent_tui.demo import Sandbox, SandboxOptions, scenario
from agent_tui.demo.files import prepare_directory, write_config, write_knowledge
from agent_tui.demo.scenario import Message
from agent_tui.errors import UsageError
from agent_tui.knowledge.enrichment import run_enrichers
from agent_tui.knowledge.loader import load_knowledge
from agent_tui.model import Channel, Direction
from connectors.base import OutboundMessage
from connectors.email import EmailConnector, EmailSettings
from tests.fakes.ports import port_is_open

HISTORY = 24        # conversations: enough for threads in every seeded channel, still fast


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    options = SandboxOptions(history_conversations=HISTORY, live_interval=None,
                             thanks_probability=0.0)
    with Sandbox(tmp_path, options) as running:
        yield running


def email_settings(config_path: Path) -> EmailSettings:
    account = load_config(config_path).account("shop-mail")
    assert isinstance(account, EmailAccount)
    return EmailSettings(
        name=account.name, address=account.address, username=account.username,
        password=account.password.text, imap_host=account.imap_host,
        imap_port=account.imap_port, imap_tls=account.imap_tls, smtp_host=account.smtp_host,
        smtp_port=account.smtp_port, smtp_tls=account.smtp_tls, timeout=10.0)


def seeded(sandbox: Sandbox, channel: str) -> list[Message]:
    return [m for m in sandbox.history if m.customer.channel == channel]


def test_sandbox_starts_and_stops_cleanly(tmp_path: Path) -> None:
    before = {thread.name for thread in threading.enumerate()}
    sandbox = Sandbox(tmp_path, SandboxOptions(history_conversations=4, live_interval=None))
    sandbox.start()
    ports = sandbox.ports
    assert {"imap", "smtp", "enrichment"} <= set(ports)
    assert all(port_is_open(port) for port in ports.values())

    sandbox.stop()

    assert not any(port_is_open(port) for port in ports.values())
    after = {thread.name for thread in threading.enumerate()}
    assert "agent-tui-demo-sandbox" not in after
    assert after <= before | {"asyncio_0"}          # no server thread left behind


def test_imap_server_speaks_what_the_mail_connector_needs(sandbox: Sandbox) -> None:
    client = IMAPClient(sandbox.imap.host, port=sandbox.imap.port, ssl=False, timeout=10)
    client.login(scenario.SHOP_MAIL, scenario.SHOP_MAIL_PASSWORD)
    try:
        assert b"IDLE" in client.capabilities()
        inbox = client.select_folder("INBOX", readonly=True)         # EXAMINE
        expected = [m for m in seeded(sandbox, "email") if not m.outbound]
        assert inbox[b"EXISTS"] == len(expected)
        uids = client.search(["UID", f"{min(client.search())}:*"])
        assert len(uids) == len(expected)
        fetched = client.fetch(uids[:1], ["BODY.PEEK[]", "FLAGS"])
        assert b"Message-ID: <history-" in fetched[uids[0]][b"BODY[]"]
        assert b"\\Seen" not in fetched[uids[0]][b"FLAGS"]                # PEEK kept it unread

        client.append("Sent", b"Message-ID: <ours-1@tassenwerk.demo>\r\nSubject: x\r\n\r\nhi\r\n",
                      flags=(b"\\Seen",))
        client.select_folder("Sent", readonly=True)
        assert client.search(["HEADER", "Message-ID", "<ours-1@tassenwerk.demo>"])

        client.select_folder("INBOX")
        client.idle()
        sandbox.write(Message(scenario.customers_on("email", "de")[0], "Noch eine Frage",
                              "Frage"))
        responses = client.idle_check(timeout=10)
        client.idle_done()
        assert any(r[1] == b"EXISTS" for r in responses)
    finally:
        client.logout()


async def test_mail_connector_fetches_the_seeded_mailbox_and_replies_arrive(
        sandbox: Sandbox, tmp_path: Path) -> None:
    connector = EmailConnector(email_settings(write_config(tmp_path, sandbox)))
    try:
        batches = [batch async for batch in connector.fetch(None)]
        fetched = [m for batch in batches for m in batch.messages]
        expected = seeded(sandbox, "email")
        assert sorted(m.provider_id for m in fetched) == sorted(
            m.message_id.strip("<>") for m in expected)
        assert {m.direction for m in fetched} == {Direction.INBOUND, Direction.OUTBOUND}

        await asyncio.to_thread(sandbox.start_customers)
        news = [m for batch in [b async for b in connector.fetch(batches[-1].cursor)]
                for m in batch.messages]
        written = [m for m in sandbox.written() if m.customer.channel == "email"]
        assert len(news) == len(written)
        hostile = next(m for m in news if "DRINGEND" in m.subject)
        assert "\x1b" not in hostile.subject + hostile.text + hostile.sender_name
        assert "\u202e" not in hostile.text
        assert [a.name for a in hostile.attachments]
        assert not any("/" in a.name or ".." in a.name for a in hostile.attachments)
        photo = next(m for m in news if m.subject == "Kaputte Tasse")
        assert [(a.name, a.content_type) for a in photo.attachments] == [("tasse.png",
                                                                           "image/png")]
        assert next(m for m in news if "Newsletter" in m.subject).auto.any
        assert next(m for m in news if "Automatische" in m.subject).auto.auto_submitted

        question = next(m for m in news if m.subject == "Bestellung TW-10004")
        provider_id = await connector.send(OutboundMessage(
            channel=Channel.EMAIL, to=question.sender, text="Ihr Paket ist unterwegs.",
            idempotency_key="demo-test-1", subject=f"Re: {question.subject}",
            in_reply_to=question.provider_id, message_id="<demo-test-1@tassenwerk.demo>"))
        delivered = await asyncio.to_thread(sandbox.wait_for_deliveries, 1, 10.0)
        assert [(d.channel, d.to, d.text.strip()) for d in delivered] == [
            ("email", question.sender, "Ihr Paket ist unterwegs.")]
        assert "Ihr Paket ist unterwegs." in (tmp_path / "customers.log").read_text()
        assert provider_id.strip("<>") == "demo-test-1@tassenwerk.demo"
    finally:
        await connector.close()


async def test_twilio_connector_fetches_seeded_and_live_messages(
        sandbox: Sandbox, tmp_path: Path) -> None:
    if sandbox.twilio is None:
        pytest.fail(f"Twilio look-alike missing: {sandbox.skipped.get('sms')}")
    from connectors.twilio import TwilioConnector, TwilioSettings

    account = load_config(write_config(tmp_path, sandbox)).account("shop-sms")
    assert isinstance(account, TwilioAccount)
    connector = TwilioConnector(TwilioSettings(
        name=account.name, account_sid=account.account_sid, auth_token=account.auth_token.text,
        sms_from=account.sms_from, whatsapp_from=account.whatsapp_from,
        api_base=account.api_base))
    try:
        batches = [batch async for batch in connector.fetch(None)]
        fetched = [m for batch in batches for m in batch.messages]
        expected = [m for channel in ("sms", "whatsapp") for m in seeded(sandbox, channel)
                    if not m.outbound]
        assert sorted(m.text for m in fetched) == sorted(m.text for m in expected)
        assert {m.channel for m in fetched} == {Channel.SMS, Channel.WHATSAPP}

        await asyncio.to_thread(sandbox.start_customers)
        news = [m for b in [b async for b in connector.fetch(batches[-1].cursor)]
                for m in b.messages]
        assert len(news) == len([m for m in sandbox.written()
                                 if m.customer.channel in ("sms", "whatsapp")])
        whatsapp = next(m for m in news if m.channel == Channel.WHATSAPP)
        await connector.send(OutboundMessage(channel=Channel.WHATSAPP, to=whatsapp.sender,
                                             text="Danke, wir kümmern uns.",
                                             idempotency_key="demo-test-2"))
        delivered = await asyncio.to_thread(sandbox.wait_for_deliveries, 1, 10.0)
        assert [(d.channel, d.to, d.text) for d in delivered] == [
            ("whatsapp", whatsapp.sender, "Danke, wir kümmern uns.")]
    finally:
        await connector.close()


async def test_demo_config_knowledge_and_enrichment_fit_together(
        sandbox: Sandbox, tmp_path: Path) -> None:
    write_knowledge(tmp_path)
    config = load_config(write_config(tmp_path, sandbox))
    assert (tmp_path / "agent-tui.toml").stat().st_mode & 0o077 == 0
    assert {a.name for a in config.accounts} >= {"shop-mail", "shop-sms"}
    knowledge = load_knowledge(config.knowledge.path)
    ids = {entry.id for entry in knowledge.entries}
    assert {"order-status", "order-status-en", "return", "return-en"} <= ids

    fields = await run_enrichers(
        {"subject": "Bestellung", "text": "Wo bleibt Bestellung TW-10004?"},
        order_regex=config.enrichment.order_regex, url=config.enrichment.url)

    assert fields["order.number"] == "TW-10004"
    assert fields["order.tracking_url"].endswith("/TW-10004")
    assert fields["order.status"] == sandbox.orders["TW-10004"]["status"]


def test_a_directory_in_use_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        prepare_directory(tmp_path)

    demo = tmp_path / "demo"
    prepare_directory(demo)
    (demo / "agent.db").write_text("old store")
    prepare_directory(demo)                 # an earlier demo's directory is reused, fresh
    assert not (demo / "agent.db").exists()
