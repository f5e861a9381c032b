"""Webhook mode for Twilio: an aiohttp endpoint for inbound messages and status callbacks.

A terminal app has no public URL, so polling is the default; this serves a relay (or a host with
a public address) that forwards Twilio's POSTs. Every request must carry a valid
`X-Twilio-Signature` (the library's RequestValidator, over the URL Twilio called and all form
parameters); unsigned or wrongly signed requests get 403 and are never delivered.

Twilio signs the URL it was configured with. Behind a relay that differs from what this server
sees, so `public_base_url` (scheme + host as Twilio calls them) replaces the local one.

Usage:
    server = TwilioWebhookServer(WebhookSettings(auth_token=token), deliver)
    url = await server.start(port=8080)       # POST {url}/twilio/messages
    ...
    await server.stop()
`deliver(message)` gets each valid inbound message or status update as an InboundMessage (same
shape as `TwilioConnector.fetch` yields); if it raises, Twilio gets a 500 and retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator, get_signature_algorithm

from agent_tui.model import AttachmentInfo, Channel, Direction
from agent_tui.sanitize import clean_line, clean_text, safe_filename, safe_mime_type
from connectors.base import InboundMessage
from connectors.twilio import DELIVERY_ERRORS, WHATSAPP_PREFIX, normalise_phone

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
MESSAGES_PATH = "/twilio/messages"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA = 10

Deliver = Callable[[InboundMessage], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    auth_token: str = field(repr=False)
    default_region: str = "DE"
    public_base_url: str = ""            # e.g. "https://relay.shop.example"; "" = as received
    path: str = MESSAGES_PATH


def message_from_params(params: MultiDictProxy[str] | dict[str, str],
                        default_region: str = "DE",
                        received_at: datetime | None = None) -> InboundMessage:
    """An inbound message (or a status update of ours) from a webhook's form parameters."""
    received_at = received_at or datetime.now(UTC)
    sid = str(params.get("MessageSid") or params.get("SmsSid") or "")
    from_raw, to_raw = str(params.get("From", "")), str(params.get("To", ""))
    status = str(params.get("MessageStatus") or params.get("SmsStatus") or "")
    if status and status != "received":
        return _status_update(params, sid, from_raw, to_raw, status, default_region,
                              received_at)
    channel = Channel.WHATSAPP if from_raw.startswith(WHATSAPP_PREFIX) else Channel.SMS
    sender, defects = normalise_phone(from_raw, default_region)
    recipient, _ = normalise_phone(to_raw, default_region)
    attachments = []
    for index in range(min(_int(params.get("NumMedia")), MAX_MEDIA)):
        url = str(params.get(f"MediaUrl{index}", ""))
        content_type = safe_mime_type(str(params.get(f"MediaContentType{index}", "")))
        if url:
            attachments.append(AttachmentInfo(
                name=safe_filename(url.rstrip("/").rpartition("/")[2]),
                content_type=content_type, size=0, ref=url))
    return InboundMessage(
        channel=channel, provider_id=sid, direction=Direction.INBOUND, sender=sender,
        sender_name=clean_line(str(params.get("ProfileName", ""))), recipients=[recipient],
        sent_at=received_at, subject="", text=clean_text(str(params.get("Body", ""))),
        attachments=attachments, thread_key=f"{channel}:{sender}", delivery_status=status,
        defects=defects)


def _status_update(params: MultiDictProxy[str] | dict[str, str], sid: str, from_raw: str,
                   to_raw: str, status: str, default_region: str,
                   received_at: datetime) -> InboundMessage:
    channel = Channel.WHATSAPP if to_raw.startswith(WHATSAPP_PREFIX) else Channel.SMS
    customer, defects = normalise_phone(to_raw, default_region)
    ours, _ = normalise_phone(from_raw, default_region)
    extra: dict[str, Any] = {"status_update": True}
    code = _int(params.get("ErrorCode"))
    if code:
        reason = DELIVERY_ERRORS.get(code) or clean_line(str(params.get("ErrorMessage", "")))
        extra["error_code"] = code
        extra["delivery_error"] = f"Twilio error {code}{f': {reason}' if reason else ''}"
    return InboundMessage(
        channel=channel, provider_id=sid, direction=Direction.OUTBOUND, sender=ours,
        sender_name="", recipients=[customer], sent_at=received_at, subject="", text="",
        thread_key=f"{channel}:{customer}", delivery_status=status, defects=defects,
        extra=extra)


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def create_webhook_app(settings: WebhookSettings, deliver: Deliver) -> web.Application:
    validator = RequestValidator(settings.auth_token)

    async def receive(request: web.Request) -> web.Response:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        params = await request.post()
        # File parts have no place in a Twilio webhook; only text fields are signed.
        form = MultiDictProxy(MultiDict((k, v) for k, v in params.items() if isinstance(v, str)))
        base = settings.public_base_url.rstrip("/")
        url = f"{base}{request.path_qs}" if base else str(request.url)
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER, ""))
        if not signature or not validator.validate(url, form, signature, algorithm):
            raise web.HTTPForbidden(text="invalid or missing X-Twilio-Signature")
        await deliver(message_from_params(form, settings.default_region))
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    app = web.Application()
    app.router.add_post(settings.path, receive)
    return app


class TwilioWebhookServer:
    """The webhook app on a local port (a relay or reverse proxy forwards Twilio to it)."""

    def __init__(self, settings: WebhookSettings, deliver: Deliver) -> None:
        self.settings = settings
        self.deliver = deliver
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen and return the base URL (the endpoint is base URL + settings.path)."""
        self._runner = web.AppRunner(create_webhook_app(self.settings, self.deliver),
                                     access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        return f"http://{host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
