"""EmailConnector.send/reconcile/check against aiosmtpd and a real Dovecot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from agent_tui.loopback import free_port
from agent_tui.model import Channel, Direction
from connectors.base import (
    AuthError,
    ConnectorError,
    OutboundMessage,
    PermanentError,
    TransientError,
    UncertainDelivery,
)
from connectors.email import EmailConnector
from connectors.email.endpoint import Endpoint
from tests.fakes.dovecot import Dovecot
from tests.fakes.smtp_sink import SmtpSink
from tests.integration.conftest import SettingsFactory


def reply(key: str, **overrides: object) -> OutboundMessage:
    values: dict[str, object] = dict(
        channel=Channel.EMAIL, to="Customer <customer@example.org>",
        text="Your order 10001 left our warehouse today.", idempotency_key=key,
        subject="Re: Re: Order question", in_reply_to="msg-1@example.org",
        references=["root@example.org", "msg-1@example.org"],
        message_id=f"{key}@shop.test")
    values.update(overrides)
    return OutboundMessage(**values)  # type: ignore[arg-type]


@pytest.fixture
async def connector(email_settings: SettingsFactory) -> AsyncIterator[EmailConnector]:
    mail = EmailConnector(email_settings(display_name="Shop Service"))
    yield mail
    await mail.close()


async def test_reply_goes_out_and_comes_back_threaded_from_sent(
        connector: EmailConnector, smtp_sink: SmtpSink, mail_user: tuple[str, str]) -> None:
    provider_id = await connector.send(reply("k1"))

    assert provider_id == "k1@shop.test"
    [mail] = smtp_sink.received
    assert mail.recipients == ["customer@example.org"]
    assert mail.mail_from == mail_user[0]
    assert mail.message["Message-ID"] == "<k1@shop.test>"

    # A second sync reads our reply back from Sent, threaded to the customer's mail.
    fetched = [m async for b in connector.fetch(None) for m in b.messages]
    [own] = [m for m in fetched if m.provider_id == provider_id]
    assert own.direction is Direction.OUTBOUND
    assert own.extra["folder"] == "Sent"
    assert "\\Seen" in own.extra["flags"]
    assert "\\Draft" not in own.extra["flags"]     # the pending mark went once SMTP took it
    assert own.in_reply_to == "msg-1@example.org"
    assert own.references == ["root@example.org", "msg-1@example.org"]
    assert own.subject == "Re: Order question"
    assert "left our warehouse" in own.text


async def test_reconcile_finds_a_sent_reply_and_not_an_unsent_one(
        connector: EmailConnector, smtp_sink: SmtpSink) -> None:
    sent = reply("k-sent")
    attempted = datetime.now(UTC)
    await connector.send(sent)

    # After a crash in `sending` the outbox asks before it sends again.
    assert await connector.reconcile(sent, attempted) == "k-sent@shop.test"
    assert await connector.reconcile(reply("k-never"), attempted) is None
    assert len(smtp_sink.received) == 1


async def test_smtp_4xx_is_transient_and_5xx_permanent_with_the_server_text(
        connector: EmailConnector, smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, 451, "4.7.1 greylisted, try again")
    with pytest.raises(TransientError, match="greylisted"):
        await connector.send(reply("k-4xx"))
    smtp_sink.fail_next(1, 554, "5.7.1 message rejected as spam")
    with pytest.raises(PermanentError, match="rejected as spam") as permanent:
        await connector.send(reply("k-5xx"))
    assert "shop-mail" in str(permanent.value)
    # Neither went out, so neither may appear in Sent.
    assert await connector.reconcile(reply("k-4xx"), datetime.now(UTC)) is None
    assert await connector.reconcile(reply("k-5xx"), datetime.now(UTC)) is None


async def test_connection_lost_after_data_is_uncertain_not_retried(
        connector: EmailConnector, smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_after_data_next()
    with pytest.raises(UncertainDelivery, match="may have been delivered"):
        await connector.send(reply("k-drop"))
    assert len(smtp_sink.received) == 1          # the server did get it

    # The copy filed before SMTP still says "pending": a later reconcile cannot call it sent or
    # unsent, and a sync does not show it as a sent reply.
    with pytest.raises(UncertainDelivery, match="still marked"):
        await connector.reconcile(reply("k-drop"), datetime.now(UTC))
    fetched = [m async for b in connector.fetch(None) for m in b.messages]
    assert "k-drop@shop.test" not in {m.provider_id for m in fetched}


async def test_wrong_imap_password_is_an_auth_error_naming_account_and_host(
        email_settings: SettingsFactory, dovecot: Dovecot) -> None:
    connector = EmailConnector(email_settings(password="wrong-password"))
    try:
        with pytest.raises(AuthError) as failure:
            async for _ in connector.fetch(None):
                pass
        with pytest.raises(AuthError):
            await connector.check()
    finally:
        await connector.close()
    message = str(failure.value)
    assert "'shop-mail'" in message and f"127.0.0.1:{dovecot.port}" in message
    assert "wrong-password" not in message
    assert "\n" not in message


async def test_wrong_smtp_password_is_an_auth_error(email_settings: SettingsFactory) -> None:
    with SmtpSink(users={"agent@shop.test": "right"}) as sink:
        connector = EmailConnector(email_settings(smtp_port=sink.port))
        try:
            with pytest.raises(AuthError, match=r"SMTP 127\.0\.0\.1") as failure:
                await connector.send(reply("k-auth"))
        finally:
            await connector.close()
    assert connector.settings.password not in str(failure.value)
    assert sink.received == []


async def test_check_summarises_both_servers(connector: EmailConnector, dovecot: Dovecot,
                                             smtp_sink: SmtpSink) -> None:
    summary = await connector.check()
    assert f"IMAP 127.0.0.1:{dovecot.port} ok" in summary
    assert "INBOX 0" in summary and "IDLE" in summary and "CONDSTORE" in summary
    assert f"SMTP 127.0.0.1:{smtp_sink.port} ok" in summary
    assert "\n" not in summary


async def test_refused_connections_are_transient_and_name_the_server(
        email_settings: SettingsFactory, smtp_sink: SmtpSink) -> None:
    port = free_port()           # nothing listens there
    imap_down = EmailConnector(email_settings(imap_port=port))
    smtp_down = EmailConnector(email_settings(smtp_port=port))
    try:
        with pytest.raises(TransientError, match=f"IMAP 127.0.0.1:{port}: connection refused"):
            await imap_down.check()
        # Without the pending copy in Sent a crash could send it twice: the reply waits.
        with pytest.raises(TransientError, match=f"IMAP 127.0.0.1:{port}"):
            await imap_down.send(reply("k-imap-down"))
        assert smtp_sink.received == []
        with pytest.raises(TransientError, match=f"SMTP 127.0.0.1:{port}"):
            await smtp_down.send(reply("k-smtp-down"))
        # Not sent, so its pending copy is gone and a retry may send it.
        assert await smtp_down.reconcile(reply("k-smtp-down"), datetime.now(UTC)) is None
    finally:
        await imap_down.close()
        await smtp_down.close()


def test_plaintext_is_refused_to_a_remote_host() -> None:
    endpoint = Endpoint("shop-mail", "IMAP", "imap.example.org", 143, "none", "u", "p")
    with pytest.raises(ConnectorError, match="only to loopback"):
        endpoint.tls_context()
    assert Endpoint("shop-mail", "SMTP", "::1", 25, "none", "u", "p").tls_context() is None
