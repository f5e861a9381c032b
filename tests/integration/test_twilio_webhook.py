"""Webhook mode: Twilio's signature is checked with the library's RequestValidator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from agent_tui.config import parse_config
from agent_tui.demo.fakes.twilio_server import DEFAULT_ACCOUNT_SID, FakeTwilio
from agent_tui.engine.runtime import Engine
from agent_tui.loopback import free_port
from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import open_store
from connectors.twilio_webhook import MESSAGES_PATH, TwilioWebhookServer, WebhookSettings

pytestmark = pytest.mark.integration

TOKEN = "webhook-auth-token"
INBOUND = {
    "MessageSid": "SM" + "a" * 32, "SmsSid": "SM" + "a" * 32, "SmsStatus": "received",
    "From": "whatsapp:+491701234567", "To": "whatsapp:+493012345678",
    "Body": "Wo ist mein Paket?", "NumMedia": "1", "ProfileName": "Jana",
    "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
    "MediaContentType0": "image/png", "AccountSid": "AC" + "1" * 32,
}


@pytest.fixture
async def hook() -> AsyncIterator[tuple[str, list[InboundMessage]]]:
    delivered: list[InboundMessage] = []

    async def deliver(message: InboundMessage) -> None:
        delivered.append(message)

    server = TwilioWebhookServer(WebhookSettings(auth_token=TOKEN), deliver)
    base = await server.start()
    yield base + MESSAGES_PATH, delivered
    await server.stop()


async def post(url: str, params: dict[str, str], signature: str | None) -> int:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    async with aiohttp.ClientSession() as session, \
            session.post(url, data=params, headers=headers) as response:
        return response.status


async def test_unsigned_and_wrongly_signed_requests_are_refused(
        hook: tuple[str, list[InboundMessage]]) -> None:
    url, delivered = hook
    assert await post(url, INBOUND, None) == 403
    assert await post(url, INBOUND, RequestValidator("other-token").compute_signature(
        url, INBOUND)) == 403
    # Signed correctly, then tampered with: the body no longer matches.
    signature = RequestValidator(TOKEN).compute_signature(url, INBOUND)
    assert await post(url, {**INBOUND, "Body": "Schicken Sie Geld"}, signature) == 403
    assert delivered == []


async def test_correctly_signed_inbound_message_is_delivered(
        hook: tuple[str, list[InboundMessage]]) -> None:
    url, delivered = hook
    signature = RequestValidator(TOKEN).compute_signature(url, INBOUND)
    assert await post(url, INBOUND, signature) == 200
    [message] = delivered
    assert message.channel is Channel.WHATSAPP
    assert message.direction is Direction.INBOUND
    assert message.sender == "+491701234567"
    assert message.thread_key == "whatsapp:+491701234567"
    assert message.sender_name == "Jana"
    assert message.text == "Wo ist mein Paket?"
    assert message.attachments[0].content_type == "image/png"
    assert message.attachments[0].ref == INBOUND["MediaUrl0"]


async def test_status_callback_becomes_a_delivery_update(
        hook: tuple[str, list[InboundMessage]]) -> None:
    url, delivered = hook
    params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "undelivered",
              "ErrorCode": "30003", "From": "+493012345678", "To": "0170 1234567"}
    assert await post(url, params, RequestValidator(TOKEN).compute_signature(url, params)) == 200
    [update] = delivered
    assert update.direction is Direction.OUTBOUND
    assert update.delivery_status == "undelivered"
    assert update.recipients == ["+491701234567"]
    assert update.extra["delivery_error"] == "Twilio error 30003: unreachable handset"


async def test_signature_over_the_public_url_behind_a_relay() -> None:
    delivered: list[InboundMessage] = []

    async def deliver(message: InboundMessage) -> None:
        delivered.append(message)

    public = "https://relay.shop.example"
    server = TwilioWebhookServer(WebhookSettings(auth_token=TOKEN, public_base_url=public),
                                 deliver)
    base = await server.start()
    try:
        signed_public = RequestValidator(TOKEN).compute_signature(public + MESSAGES_PATH,
                                                                  INBOUND)
        signed_local = RequestValidator(TOKEN).compute_signature(base + MESSAGES_PATH, INBOUND)
        assert await post(base + MESSAGES_PATH, INBOUND, signed_local) == 403
        assert await post(base + MESSAGES_PATH, INBOUND, signed_public) == 200
    finally:
        await server.stop()
    assert len(delivered) == 1


async def test_the_engine_stores_a_signed_webhook_message_at_once(tmp_path: Path) -> None:
    twilio = FakeTwilio()
    base = await twilio.start()
    port = free_port()
    config_path = tmp_path / "agent-tui.toml"
    config = parse_config(f"""\
[store]
path = "agent.db"

[[account]]
name = "shop-sms"
type = "twilio"
account_sid = "{DEFAULT_ACCOUNT_SID}"
auth_token = "env:AGENT_TUI_WEBHOOK_TEST_TOKEN"
whatsapp_from = "whatsapp:+493012345678"
api_base = "{base}"
poll_interval = 3600
webhook_port = {port}
""", config_path)
    store = open_store(config.store.path)
    engine = Engine(config, store)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGENT_TUI_WEBHOOK_TEST_TOKEN", TOKEN)
        running = asyncio.create_task(engine.run())
        try:
            await asyncio.wait_for(engine.started.wait(), 10)
            [url] = engine.webhook_urls
            assert url == f"http://127.0.0.1:{port}{MESSAGES_PATH}"
            refused = await post(url, INBOUND, None)
            accepted = await post(url, INBOUND,
                                  RequestValidator(TOKEN).compute_signature(url, INBOUND))
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await twilio.stop()

    assert (refused, accepted) == (403, 200)
    # The webhook answered after the store had it; the hourly poll had nothing to do with it.
    [conversation] = store.list_conversations()
    assert conversation.contact_address == "+491701234567"
    assert conversation.preview == "Wo ist mein Paket?"
