"""Webhook mode: Twilio's signature is checked with the library's RequestValidator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from agent_tui.model import Channel, Direction
from connectors.base import InboundMessage
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
