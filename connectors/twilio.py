"""SMS and WhatsApp (and missed calls / voicemail) through the official `twilio` library.

The library's asyncio client (`AsyncTwilioHttpClient`, aiohttp) is used rather than the blocking
client in worker threads: a poll walks many pages, and on a 2-core host shared with the TUI one
event loop with real cancellation is cheaper than a thread per call. The library sets no timeout on
that client, so every call here runs under `asyncio.timeout`. It does not retry 429 either (see
notes/connectors-facts.md); the retry loops below are ours.

Cursor (opaque to the store, JSON):
    {"version": 1,
     "messages": {"<our address>": {"at": ISO date_sent, "sids": [SIDs at that second]}},
     "calls": {"at": ISO start_time, "sids": [...]},
     "voicemail_pending": {"<call SID>": {...}},   # transcription not ready yet
     "outbound": {"<SID>": ["<status>", ISO date_sent]}}   # our recent messages' statuses
Twilio filters by date only, so each query starts a day before the cursor and everything at or
before the cursor's second that was already seen is skipped (dedupe by SID). List order is not
documented, so the new cursor is handed out only with the last batch: the batches before it carry
the old cursor, and a crash part-way through refetches (the store dedupes by SID) instead of
skipping messages.

What fetch yields besides customers' messages:
- delivery status of our own messages: an InboundMessage with direction OUTBOUND, the message SID
  as provider_id, `delivery_status` = Twilio's status and, on failure, `extra["error_code"]` and a
  one-line `extra["delivery_error"]`; `extra["status_update"] = True`. The store updates the
  status of the message it already has under that SID (or adds a message sent elsewhere).
- missed calls (no-answer/busy) and voicemails as SMS-channel events from the caller, text
  "Missed call" / "Voicemail: ...", `extra["event"] = "missed_call"` (voicemails also carry
  `extra["voicemail"] = True` and the recording as an attachment).

Phone numbers are normalised to E.164 with `phonenumbers`; SMS and WhatsApp from one number give
the same `sender`, and `thread_key` is "<channel>:<E.164>". A number that cannot be parsed is kept
as written with a defect note.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import phonenumbers
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from agent_tui.channels import whatsapp_window_open
from agent_tui.model import AttachmentInfo, Channel, Direction
from agent_tui.sanitize import clean_line, clean_text, safe_filename, safe_mime_type
from connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    Cursor,
    FetchBatch,
    InboundMessage,
    OutboundMessage,
    PermanentError,
    TransientError,
    UncertainDelivery,
)

TWILIO_API_BASE = "https://api.twilio.com"
WHATSAPP_PREFIX = "whatsapp:"
CURSOR_VERSION = 1
QUERY_OVERLAP = timedelta(days=1)          # date-granular filters: start a day early
STATUS_WINDOW = timedelta(days=2)          # how long our own messages' statuses are followed
CLOCK_SKEW = timedelta(minutes=2)          # local clock vs Twilio's, and its whole seconds
VOICEMAIL_WAIT = timedelta(minutes=30)     # then show a voicemail without its transcription
MISSED_CALL_STATUSES = frozenset({"no-answer", "busy"})
ERROR_OUTSIDE_WINDOW = 63016
TEMPLATE_REQUIRED = ("WhatsApp free-form replies are only allowed within 24 hours of the "
                     "customer's last message; send an approved template instead")
DELIVERY_ERRORS = {
    30003: "unreachable handset",
    30004: "message blocked by the recipient",
    30005: "unknown or inactive number",
    30006: "landline or unreachable carrier",
    30007: "filtered as spam by the carrier",
    30008: "unknown delivery error",
    21610: "the recipient replied STOP (unsubscribed)",
    63016: "outside the WhatsApp 24-hour window; a template is required",
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    name: str
    account_sid: str
    auth_token: str = field(repr=False)       # resolved secret, never shown
    sms_from: str | None = None               # "+493012345678"
    whatsapp_from: str | None = None          # "whatsapp:+493012345678" (prefix optional)
    api_base: str = TWILIO_API_BASE
    poll_interval: float = 20.0
    default_region: str = "DE"
    secret_ref: str = ""                      # how the token is referenced, e.g. "env:TWILIO_TOKEN"
    page_size: int = 200
    timeout: float = 30.0                     # seconds per HTTP call
    max_attempts: int = 4                     # per call, for 429/5xx on reads and 429 on create
    retry_base_delay: float = 1.0             # seconds; doubles per attempt


# -- phone numbers, SMS segments, the WhatsApp window ----------------------------------------


def normalise_phone(raw: str, default_region: str = "DE") -> tuple[str, list[str]]:
    """(E.164 number, defects). "whatsapp:" is dropped; an unparsable number is kept as written."""
    text = clean_line(raw)
    number = text.removeprefix(WHATSAPP_PREFIX).strip()
    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        return number, [f"phone number {number!r} not understood; kept as written"]
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), []


def whatsapp_address(number: str) -> str:
    return number if number.startswith(WHATSAPP_PREFIX) else f"{WHATSAPP_PREFIX}{number}"


# -- cursor ---------------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, str) and value:
        try:
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


@dataclass(slots=True)
class _Mark:
    """The newest timestamp of a stream and the SIDs seen at exactly that second."""

    at: datetime | None = None
    sids: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, raw: Any) -> _Mark:
        if not isinstance(raw, dict):
            return cls()
        return cls(_parse_time(raw.get("at")), {str(s) for s in raw.get("sids", [])})

    def dump(self) -> dict[str, Any]:
        return {"at": self.at.isoformat() if self.at else None, "sids": sorted(self.sids)}

    def query_from(self) -> str | None:
        """The date filter (YYYY-MM-DD) for the next query, a day early; None: everything."""
        return (self.at - QUERY_OVERLAP).date().isoformat() if self.at else None

    def already_seen(self, sid: str, at: datetime) -> bool:
        if self.at is None:
            return False
        return at < self.at or (at == self.at and sid in self.sids)

    def advance(self, sid: str, at: datetime) -> None:
        if self.at is None or at > self.at:
            self.at, self.sids = at, {sid}
        elif at == self.at:
            self.sids.add(sid)


@dataclass(slots=True)
class _CursorState:
    messages: dict[str, _Mark]
    calls: _Mark
    voicemail_pending: dict[str, dict[str, Any]]
    outbound: dict[str, list[str]]

    @classmethod
    def load(cls, cursor: Cursor | None) -> _CursorState:
        raw = cursor or {}
        messages = raw.get("messages", {})
        return cls(
            messages={str(k): _Mark.load(v) for k, v in messages.items()}
            if isinstance(messages, dict) else {},
            calls=_Mark.load(raw.get("calls")),
            voicemail_pending=dict(raw.get("voicemail_pending") or {}),
            outbound={str(k): list(v) for k, v in (raw.get("outbound") or {}).items()},
        )

    def dump(self) -> Cursor:
        return {"version": CURSOR_VERSION,
                "messages": {k: v.dump() for k, v in self.messages.items()},
                "calls": self.calls.dump(),
                "voicemail_pending": self.voicemail_pending,
                "outbound": self.outbound}


# -- the connector ------------------------------------------------------------------------------


class TwilioConnector(Connector):
    """One Twilio account: an SMS number and/or a WhatsApp sender."""

    def __init__(self, settings: TwilioSettings, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.poll_interval = settings.poll_interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sms_from = (normalise_phone(settings.sms_from, settings.default_region)[0]
                         if settings.sms_from else None)
        self.whatsapp_from = (whatsapp_address(normalise_phone(
            settings.whatsapp_from, settings.default_region)[0])
            if settings.whatsapp_from else None)
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        # Made on first use, inside the running loop: the aiohttp session binds to it.
        if self._client is None:
            self._http = AsyncTwilioHttpClient(timeout=self.settings.timeout)
            self._client = Client(self.settings.account_sid, self.settings.auth_token,
                                  http_client=self._http, environment={})
            self._client.api.base_url = self.settings.api_base.rstrip("/")
        return self._client

    @property
    def _account(self) -> Any:
        return self.client.api.v2010.account

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None

    def _who(self) -> str:
        return f"twilio account {self.name!r}"

    def _auth_error(self, status: int) -> AuthError:
        where = (f"the auth token ({self.settings.secret_ref})" if self.settings.secret_ref
                 else "the auth token")
        return AuthError(f"{self._who()}: Twilio refused the credentials (HTTP {status}); check "
                         f"the account SID {self.settings.account_sid} and {where}")

    def _map_error(self, exc: Exception, doing: str) -> ConnectorError:
        """A Twilio library or network exception as one of our connector errors."""
        status: int | None = None
        code: int | None = None
        detail = ""
        if isinstance(exc, TwilioRestException | TwilioServiceException):
            status, code = exc.status, exc.code
            detail = exc.msg if isinstance(exc, TwilioRestException) else str(exc.title)
        elif isinstance(exc, TwilioException) and len(exc.args) > 1:
            status = getattr(exc.args[1], "status_code", None)
            detail = str(exc.args[0])
        if isinstance(exc, TimeoutError):
            return TransientError(f"{self._who()}: {doing} timed out after "
                                  f"{self.settings.timeout:g} s")
        if isinstance(exc, aiohttp.ClientError | OSError):
            return TransientError(f"{self._who()}: {doing} failed: network error "
                                  f"({type(exc).__name__})")
        if status in (401, 403):
            return self._auth_error(status)
        if status == 429 or (status is not None and status >= 500):
            return TransientError(f"{self._who()}: {doing}: Twilio answered HTTP {status}"
                                  f"{f' (error {code})' if code and code != status else ''}")
        if code == ERROR_OUTSIDE_WINDOW:
            return PermanentError(f"{self._who()}: {TEMPLATE_REQUIRED} (Twilio error 63016)")
        if status is None and not detail:
            detail = type(exc).__name__
        return PermanentError(f"{self._who()}: {doing}: Twilio error "
                              f"{code or status}: {clean_line(detail)}")

    async def _call(self, make: Callable[[], Awaitable[T]], doing: str) -> T:
        """One read with a timeout; 429, 5xx and network trouble are retried with backoff."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self.settings.timeout):
                    return await make()
            except (TwilioException, TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = self._map_error(exc, doing)
                if not isinstance(error, TransientError) or attempt >= self.settings.max_attempts:
                    raise error from None
            await asyncio.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return float(self.settings.retry_base_delay * 2 ** (attempt - 1))

    async def _pages(self, first: Callable[[], Awaitable[Any]],
                     doing: str) -> AsyncIterator[list[Any]]:
        page = await self._call(first, doing)
        while page is not None:
            yield list(page)
            page = await self._call(page.next_page_async, doing)

    def _phone(self, raw: str | None) -> tuple[str, list[str]]:
        return normalise_phone(raw or "", self.settings.default_region)

    def _absolute(self, uri: str) -> str:
        return f"{self.settings.api_base.rstrip('/')}{uri.removesuffix('.json')}"

    # -- fetch --------------------------------------------------------------------------------

    def _inbound_addresses(self) -> list[str]:
        return [a for a in (self.sms_from, self.whatsapp_from) if a]

    async def fetch(self, cursor: Cursor | None) -> AsyncIterator[FetchBatch]:
        old_cursor: Cursor = dict(cursor or {})
        state = _CursorState.load(cursor)
        for address in self._inbound_addresses():
            mark = state.messages.setdefault(address, _Mark())
            async for messages in self._fetch_inbound(address, mark):
                if messages:
                    yield FetchBatch(messages, old_cursor, done=False)
        final = await self._fetch_statuses(state)
        final += await self._fetch_calls(state)
        yield FetchBatch(final, state.dump(), done=True)

    async def _fetch_inbound(self, address: str,
                             mark: _Mark) -> AsyncIterator[list[InboundMessage]]:
        since = mark.query_from()
        seen_now: set[str] = set()
        start = _Mark(mark.at, set(mark.sids))      # the old mark decides what is new

        async def first_page() -> Any:
            return await self._account.messages.page_async(
                to=address, page_size=self.settings.page_size,
                **({"date_sent_after": since} if since else {}))

        async for records in self._pages(first_page, f"listing messages to {address}"):
            batch = []
            for record in records:
                sent_at = record.date_sent or record.date_created
                if (record.direction != "inbound" or record.sid in seen_now
                        or not isinstance(sent_at, datetime)
                        or start.already_seen(record.sid, sent_at)):
                    continue
                seen_now.add(record.sid)
                batch.append(await self._message_from_record(record))
                mark.advance(record.sid, sent_at)
            yield batch

    async def _message_from_record(self, record: Any) -> InboundMessage:
        from_raw = str(record.from_ or "")
        channel = Channel.WHATSAPP if from_raw.startswith(WHATSAPP_PREFIX) else Channel.SMS
        sender, defects = self._phone(from_raw)
        recipient, _ = self._phone(record.to)
        attachments: list[AttachmentInfo] = []
        if int(record.num_media or 0) > 0:
            attachments = await self._media(record.sid)
        return InboundMessage(
            channel=channel, provider_id=record.sid, direction=Direction.INBOUND,
            sender=sender, sender_name="", recipients=[recipient],
            sent_at=record.date_sent or record.date_created, subject="",
            text=clean_text(record.body or ""), attachments=attachments,
            thread_key=f"{channel}:{sender}", delivery_status=str(record.status or ""),
            defects=defects)

    async def _media(self, message_sid: str) -> list[AttachmentInfo]:
        media_list = self._account.messages(message_sid).media
        attachments = []
        async for records in self._pages(lambda: media_list.page_async(),
                                         f"listing media of {message_sid}"):
            for media in records:
                content_type = safe_mime_type(str(media.content_type or ""))
                extension = mimetypes.guess_extension(content_type) or ""
                attachments.append(AttachmentInfo(
                    name=safe_filename(f"{media.sid}{extension}"), content_type=content_type,
                    size=0, ref=self._absolute(str(media.uri))))
        return attachments

    async def fetch_attachment(self, ref: str) -> bytes:
        """The bytes of a media attachment; Twilio wants the account's credentials for them."""
        base = self.settings.api_base.rstrip("/")
        if not ref.startswith(f"{base}/"):
            # Never send the account's credentials anywhere but the configured API.
            raise PermanentError(f"{self._who()}: attachment {ref!r} is not a Twilio media URL")
        credentials = f"{self.settings.account_sid}:{self.settings.auth_token}".encode()
        headers = {"Authorization": f"Basic {base64.b64encode(credentials).decode()}"}
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.get(ref, headers=headers, allow_redirects=False) as response:
                location = response.headers.get("Location", "")
                if response.status in (301, 302, 303, 307, 308) and location:
                    # Twilio redirects to a signed storage URL: follow it without credentials.
                    async with session.get(location) as redirected:
                        return await self._media_body(redirected)
                return await self._media_body(response)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._map_error(exc, "media download") from None

    async def _media_body(self, response: aiohttp.ClientResponse) -> bytes:
        if response.status in (401, 403):
            raise self._auth_error(response.status)
        if response.status == 429 or response.status >= 500:
            raise TransientError(f"{self._who()}: media download: HTTP {response.status}")
        if response.status != 200:
            raise PermanentError(f"{self._who()}: media download: HTTP {response.status}")
        return await response.read()

    async def _fetch_statuses(self, state: _CursorState) -> list[InboundMessage]:
        """Our own recent messages whose delivery status changed since the last poll."""
        since = (self.clock() - STATUS_WINDOW).date().isoformat()
        followed: dict[str, list[str]] = {}
        updates: list[InboundMessage] = []
        for address in self._inbound_addresses():
            async def first_page(address: str = address) -> Any:
                return await self._account.messages.page_async(
                    from_=address, date_sent_after=since, page_size=self.settings.page_size)

            async for records in self._pages(first_page, f"listing messages from {address}"):
                for record in records:
                    if not str(record.direction or "").startswith("outbound"):
                        continue
                    status = str(record.status or "")
                    sent_at = record.date_sent or record.date_created
                    followed[record.sid] = [status, sent_at.isoformat()]
                    known = state.outbound.get(record.sid)
                    if known is None or known[0] != status:
                        updates.append(self._status_update(record, status, sent_at))
        state.outbound = followed
        return updates

    def _status_update(self, record: Any, status: str, sent_at: datetime) -> InboundMessage:
        to_raw = str(record.to or "")
        channel = Channel.WHATSAPP if to_raw.startswith(WHATSAPP_PREFIX) else Channel.SMS
        customer, defects = self._phone(to_raw)
        ours, _ = self._phone(record.from_)
        extra: dict[str, Any] = {"status_update": True}
        if record.error_code:
            code = int(record.error_code)
            reason = DELIVERY_ERRORS.get(code) or clean_line(str(record.error_message or ""))
            extra["error_code"] = code
            extra["delivery_error"] = f"Twilio error {code}{f': {reason}' if reason else ''}"
        return InboundMessage(
            channel=channel, provider_id=record.sid, direction=Direction.OUTBOUND,
            sender=ours, sender_name="", recipients=[customer], sent_at=sent_at, subject="",
            text=clean_text(record.body or ""), thread_key=f"{channel}:{customer}",
            delivery_status=status, defects=defects, extra=extra)

    async def _fetch_calls(self, state: _CursorState) -> list[InboundMessage]:
        """Missed calls and voicemails to our SMS number, as events the agent answers by SMS."""
        if not self.sms_from:
            return []
        mark = state.calls
        start = _Mark(mark.at, set(mark.sids))
        since = mark.query_from()
        number = self.sms_from

        async def first_calls() -> Any:
            return await self._account.calls.page_async(
                to=number, page_size=self.settings.page_size,
                **({"start_time_after": since} if since else {}))

        async def first_recordings() -> Any:
            return await self._account.recordings.page_async(
                page_size=self.settings.page_size,
                **({"date_created_after": since} if since else {}))

        new_calls: dict[str, Any] = {}
        async for records in self._pages(first_calls, f"listing calls to {number}"):
            for call in records:
                started = call.start_time or call.date_created
                if (call.sid in new_calls or not isinstance(started, datetime)
                        or start.already_seen(call.sid, started)):
                    continue
                new_calls[call.sid] = call
                mark.advance(call.sid, started)
        recordings: dict[str, Any] = {}
        if new_calls:
            async for records in self._pages(first_recordings, "listing recordings"):
                for recording in records:
                    recordings.setdefault(str(recording.call_sid), recording)
        events: list[InboundMessage] = []
        for call in new_calls.values():
            recording = recordings.get(call.sid)
            if recording is not None:
                state.voicemail_pending[call.sid] = {
                    "from": str(call._from or ""), "at": (call.start_time
                                                         or call.date_created).isoformat(),
                    "recording": recording.sid, "recording_uri": str(recording.uri or ""),
                    "duration": str(recording.duration or "")}
            elif call.status in MISSED_CALL_STATUSES:
                events.append(self._call_event(
                    call.sid, str(call._from or ""), call.start_time or call.date_created,
                    "Missed call" if call.status == "no-answer" else "Missed call (line busy)"))
        for call_sid, pending in list(state.voicemail_pending.items()):
            event = await self._voicemail_event(call_sid, pending)
            if event is not None:
                events.append(event)
                del state.voicemail_pending[call_sid]
        return events

    async def _voicemail_event(self, call_sid: str,
                               pending: dict[str, Any]) -> InboundMessage | None:
        """The voicemail once its transcription is done (or given up on), else None."""
        recording_sid = str(pending["recording"])
        transcriptions = self._account.recordings(recording_sid).transcriptions
        text: str | None = None
        waiting = False
        async for records in self._pages(lambda: transcriptions.page_async(),
                                         f"listing transcriptions of {recording_sid}"):
            for transcription in records:
                if transcription.status == "completed" and transcription.transcription_text:
                    text = clean_text(str(transcription.transcription_text)).strip()
                elif transcription.status == "in-progress":
                    waiting = True
        called_at = _parse_time(pending.get("at")) or self.clock()
        if text is None and waiting and self.clock() - called_at < VOICEMAIL_WAIT:
            return None
        seconds = pending.get("duration") or "?"
        body = f"Voicemail: {text}" if text else f"Voicemail ({seconds} s, no transcription)"
        event = self._call_event(call_sid, str(pending.get("from", "")), called_at, body)
        event.extra["voicemail"] = True
        uri = str(pending.get("recording_uri") or "")
        if uri:
            event.attachments.append(AttachmentInfo(
                name=safe_filename(f"voicemail-{recording_sid}.wav"), content_type="audio/x-wav",
                size=0, ref=self._absolute(uri)))
        return event

    def _call_event(self, call_sid: str, caller: str, at: datetime,
                    text: str) -> InboundMessage:
        sender, defects = self._phone(caller)
        return InboundMessage(
            channel=Channel.SMS, provider_id=call_sid, direction=Direction.INBOUND,
            sender=sender, sender_name="", recipients=[self.sms_from or ""], sent_at=at,
            subject="", text=text, thread_key=f"{Channel.SMS}:{sender}", defects=defects,
            extra={"event": "missed_call"})

    # -- send -----------------------------------------------------------------------------------

    def _route(self, message: OutboundMessage) -> tuple[str, str]:
        """(From, To) in Twilio's address form for this message's channel."""
        to, defects = self._phone(message.to)
        if defects:
            raise PermanentError(f"{self._who()}: cannot send to {message.to!r}: "
                                 "not a phone number")
        if message.channel is Channel.WHATSAPP:
            if not self.whatsapp_from:
                raise PermanentError(f"{self._who()}: no 'whatsapp_from' configured")
            return self.whatsapp_from, whatsapp_address(to)
        if message.channel is Channel.SMS:
            if not self.sms_from:
                raise PermanentError(f"{self._who()}: no 'sms_from' configured")
            return self.sms_from, to
        raise PermanentError(f"{self._who()}: cannot send {message.channel} messages")

    def _create_params(self, message: OutboundMessage) -> dict[str, Any]:
        from_, to = self._route(message)
        params: dict[str, Any] = {"from_": from_, "to": to}
        template = message.extra.get("template")
        if message.channel is Channel.WHATSAPP and not template:
            last = _parse_time(message.extra.get("last_inbound_at"))
            if last is not None and not whatsapp_window_open(last, self.clock()):
                raise PermanentError(f"{self._who()}: {TEMPLATE_REQUIRED} (the customer wrote "
                                     f"last at {last:%Y-%m-%d %H:%M} UTC)")
        if template:
            # A WhatsApp template: {"sid": "HX...", "variables": {...}} or just "HX...".
            sid = template.get("sid") if isinstance(template, dict) else template
            params["content_sid"] = str(sid)
            if isinstance(template, dict) and template.get("variables"):
                params["content_variables"] = json.dumps(template["variables"])
        elif message.text.strip():
            params["body"] = message.text
        else:
            raise PermanentError(f"{self._who()}: refusing to send an empty message")
        return params

    async def send(self, message: OutboundMessage) -> str:
        """Send an SMS or WhatsApp message and return its SID.

        429 is never processed by Twilio, so it is retried here with backoff. After a 5xx, a
        timeout or a dropped connection the message may exist: it is looked up (reconcile) and
        its SID returned, rather than sent a second time.
        """
        params = self._create_params(message)
        attempted_at = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self.settings.timeout):
                    created = await self._account.messages.create_async(**params)
            except (TwilioException, TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = self._map_error(exc, "sending")
                status = getattr(exc, "status", None)
                if status == 429:
                    if attempt >= self.settings.max_attempts:
                        raise error from None
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                if isinstance(error, TransientError):
                    return await self._after_uncertain_send(message, attempted_at, error)
                raise error from None
            if created.status == "failed" and created.error_code == ERROR_OUTSIDE_WINDOW:
                raise PermanentError(f"{self._who()}: {TEMPLATE_REQUIRED} (Twilio error 63016)")
            return str(created.sid)

    async def _after_uncertain_send(self, message: OutboundMessage, attempted_at: datetime,
                                    error: TransientError) -> str:
        try:
            found = await self.reconcile(message, attempted_at)
        except ConnectorError as exc:
            raise UncertainDelivery(f"{error}; could not check whether it went out: {exc}") \
                from None
        if found:
            return found
        raise TransientError(f"{error}; not found at Twilio, safe to retry",
                             retry_after=self._backoff(1))

    async def reconcile(self, message: OutboundMessage, attempted_at: datetime) -> str | None:
        """Look for the message among ours to that number since the attempt; its SID or None.

        Matched on to/from/body and `date_created`: a message Twilio still holds (queued,
        accepted, sending) has no `date_sent` yet, so a DateSent filter would miss exactly the
        message a timed-out send most likely left there. The list comes newest first; paging
        stops at the first page that lies wholly before the attempt.
        """
        from_, to = self._route(message)
        earliest = _aware(attempted_at) - CLOCK_SKEW
        template = message.extra.get("template")

        async def first_page() -> Any:
            return await self._account.messages.page_async(
                to=to, from_=from_, page_size=self.settings.page_size)

        async for records in self._pages(first_page, f"looking for a message to {to}"):
            before = 0
            for record in records:
                created = record.date_created
                if not isinstance(created, datetime) or created < earliest:
                    before += 1
                    continue
                if (str(record.direction or "").startswith("outbound")
                        and (template or (record.body or "").strip() == message.text.strip())):
                    return str(record.sid)
            if records and before == len(records):
                break
        return None

    async def check(self) -> str:
        account = await self._call(lambda: self._account.fetch_async(), "logging in")
        numbers = ", ".join(f"{label} {value}" for label, value in (
            ("SMS", self.sms_from), ("WhatsApp", self.whatsapp_from)) if value)
        return (f"{self.name}: Twilio account {clean_line(str(account.friendly_name or ''))!r} "
                f"({account.status}); {numbers}")
