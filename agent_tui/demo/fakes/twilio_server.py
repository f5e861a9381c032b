"""A local Twilio look-alike: the REST endpoints the Twilio connector uses, on loopback.

It speaks Twilio's JSON shapes (2010-04-01 API: Messages with paging and date filters, Message
create/fetch, Media, Calls, Recordings, Transcriptions, the Account), checks HTTP Basic auth, and
has switches to inject failures: `fail_next` (429/500 with Twilio's error JSON), `slow_next` and
`drop_next` (the connection is closed after the request was processed, so a create did happen).

The real `twilio` library reaches it when the client's `api.base_url` is set to `start()`'s result.
Used by the integration tests and, in-process, by `agent-tui demo`:

    fake = FakeTwilio()
    base_url = await fake.start()          # http://127.0.0.1:<free port>
    fake.add_inbound("+491701234567", "+493012345678", "Hallo")
    ...
    await fake.stop()

Like Twilio, date filters have date granularity (`YYYY-MM-DD`, GMT): a time part is ignored, so a
client must query with an overlap and dedupe by SID. Paging is offset-based over the live data, so a
message arriving between two page requests shifts the pages and one SID shows up on two pages, as
it does on the real service. A created message is `queued` with no `date_sent` (null, as on the real
API) until it moves on to sent or delivered, so a DateSent filter does not find it yet.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agent_tui.demo.fakes.local_server import LocalHttpServer

DEFAULT_ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
DEFAULT_AUTH_TOKEN = "fake-auth-token-0123456789"
API = "/2010-04-01"
WHATSAPP_WINDOW = timedelta(hours=24)
FINAL_FAILURE = "failed"
# Statuses of a message Twilio handed on: from then on it has a date_sent.
SENT_STATUSES = frozenset({"sent", "delivered", "undelivered", "read"})

_ERROR_MESSAGES = {
    400: "Bad Request",
    401: "Authenticate",
    404: "The requested resource was not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_ERROR_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


def twilio_date(moment: datetime | None) -> str | None:
    """Twilio's RFC 2822 date format, always in GMT as "+0000"."""
    return None if moment is None else format_datetime(moment.astimezone(UTC))


def _filter_date(value: str) -> date:
    # Twilio documents date granularity only; the time part of "2024-01-01T09:30:00Z" is ignored.
    return date.fromisoformat(value.strip()[:10])


def _date_matcher(query: Mapping[str, str], name: str) -> Callable[[date], bool]:
    """Twilio's filters on one date field: `Name` (that day), `Name>` (on or after), `Name<`."""
    checks: list[Callable[[date], bool]] = []
    if name in query:
        day = _filter_date(query[name])
        checks.append(lambda d: d == day)
    if f"{name}>" in query:
        first = _filter_date(query[f"{name}>"])
        checks.append(lambda d: d >= first)
    if f"{name}<" in query:
        last = _filter_date(query[f"{name}<"])
        checks.append(lambda d: d <= last)
    return lambda d: all(check(d) for check in checks)


@dataclass(slots=True)
class FakeMedia:
    sid: str
    content_type: str
    content: bytes
    date_created: datetime


@dataclass(slots=True)
class FakeMessage:
    sid: str
    from_: str
    to: str
    body: str
    direction: str                       # inbound | outbound-api
    status: str
    date_created: datetime
    date_sent: datetime | None
    media: list[FakeMedia] = field(default_factory=list)
    error_code: int | None = None
    error_message: str | None = None
    content_sid: str | None = None
    date_updated: datetime | None = None


@dataclass(slots=True)
class FakeTranscription:
    sid: str
    recording_sid: str
    text: str | None
    status: str                          # in-progress | completed | failed
    date_created: datetime


@dataclass(slots=True)
class FakeRecording:
    sid: str
    call_sid: str
    duration: int
    date_created: datetime
    transcriptions: list[FakeTranscription] = field(default_factory=list)


@dataclass(slots=True)
class FakeCall:
    sid: str
    from_: str
    to: str
    status: str                          # no-answer | busy | completed | ...
    start_time: datetime
    duration: int
    direction: str = "inbound"


@dataclass(slots=True)
class _Injection:
    kind: str                            # fail | slow | drop
    remaining: int
    status: int = 0
    seconds: float = 0.0
    method: str | None = None
    path_contains: str | None = None
    code: int | None = None

    def matches(self, request: web.Request) -> bool:
        if self.method is not None and request.method != self.method:
            return False
        return self.path_contains is None or self.path_contains in request.path


class FakeTwilio(LocalHttpServer):
    """An in-memory Twilio account behind an aiohttp server on 127.0.0.1."""

    def __init__(self, account_sid: str = DEFAULT_ACCOUNT_SID,
                 auth_token: str = DEFAULT_AUTH_TOKEN, *,
                 clock: Callable[[], datetime] | None = None,
                 enforce_whatsapp_window: bool = True) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.clock = clock or (lambda: datetime.now(UTC))
        self.enforce_whatsapp_window = enforce_whatsapp_window
        self.messages: list[FakeMessage] = []
        self.calls: list[FakeCall] = []
        self.recordings: list[FakeRecording] = []
        self.requests: list[tuple[str, str]] = []     # (method, path?query) as received
        self._injections: list[_Injection] = []
        self._counter = itertools.count(1)

    # -- seeding and inspection ---------------------------------------------------------------

    def new_sid(self, prefix: str) -> str:
        return f"{prefix}{next(self._counter):032x}"

    @property
    def created(self) -> list[FakeMessage]:
        """Messages created through the API (our outbound replies), oldest first."""
        return [m for m in self.messages if m.direction == "outbound-api"]

    def add_inbound(self, from_: str, to: str, body: str, date_sent: datetime | None = None,
                    *, media: list[tuple[str, bytes]] | None = None,
                    sid: str | None = None) -> FakeMessage:
        """A customer's message to one of our numbers; `media` is [(content_type, bytes)]."""
        sent = date_sent or self.clock()
        message = FakeMessage(
            sid=sid or self.new_sid("MM" if media else "SM"), from_=from_, to=to, body=body,
            direction="inbound", status="received", date_created=sent, date_sent=sent)
        for content_type, content in media or []:
            message.media.append(FakeMedia(self.new_sid("ME"), content_type, content, sent))
        self.messages.append(message)
        return message

    def add_call(self, from_: str, to: str, status: str = "no-answer",
                 start_time: datetime | None = None, *, duration: int = 0,
                 voicemail_text: str | None = None, recording_seconds: int = 12,
                 transcription_status: str = "completed") -> FakeCall:
        """An inbound call; with `voicemail_text` it left a recording with a transcription."""
        started = start_time or self.clock()
        call = FakeCall(self.new_sid("CA"), from_, to, status, started, duration)
        self.calls.append(call)
        if voicemail_text is not None:
            recording = FakeRecording(self.new_sid("RE"), call.sid, recording_seconds,
                                      started + timedelta(seconds=recording_seconds))
            recording.transcriptions.append(FakeTranscription(
                self.new_sid("TR"), recording.sid,
                voicemail_text if transcription_status == "completed" else None,
                transcription_status, recording.date_created))
            self.recordings.append(recording)
        return call

    def set_status(self, sid: str, status: str, error_code: int | None = None,
                   error_message: str | None = None) -> None:
        """Move one of our messages on (sent, delivered, undelivered, failed...)."""
        message = self._message(sid)
        if message is None:
            raise KeyError(sid)
        message.status = status
        if status in SENT_STATUSES and message.date_sent is None:
            message.date_sent = self.clock()
        message.error_code = error_code
        message.error_message = error_message
        message.date_updated = self.clock()

    # -- failure switches -----------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, *, method: str | None = None,
                  path_contains: str | None = None, code: int | None = None) -> None:
        """Answer the next `count` matching requests with `status` and Twilio's error JSON."""
        self._injections.append(_Injection("fail", count, status=status, method=method,
                                           path_contains=path_contains, code=code))

    def slow_next(self, seconds: float, count: int = 1, *, method: str | None = None,
                  path_contains: str | None = None) -> None:
        """Delay the next `count` matching responses by `seconds`."""
        self._injections.append(_Injection("slow", count, seconds=seconds, method=method,
                                           path_contains=path_contains))

    def drop_next(self, count: int = 1, *, method: str | None = None,
                  path_contains: str | None = None) -> None:
        """Process the next matching request, then close the connection without answering."""
        self._injections.append(_Injection("drop", count, method=method,
                                           path_contains=path_contains))

    # -- server lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        application = web.Application(middlewares=[self._middleware])
        account = f"{API}/Accounts/{{account}}"
        application.router.add_get(f"{account}.json", self._account)
        application.router.add_get(f"{account}/Messages.json", self._list_messages)
        application.router.add_post(f"{account}/Messages.json", self._create_message)
        application.router.add_get(f"{account}/Messages/{{sid}}.json", self._fetch_message)
        application.router.add_get(f"{account}/Messages/{{sid}}/Media.json", self._list_media)
        application.router.add_get(f"{account}/Messages/{{sid}}/Media/{{media}}.json",
                                   self._fetch_media)
        application.router.add_get(f"{account}/Messages/{{sid}}/Media/{{media}}",
                                   self._media_content)
        application.router.add_get(f"{account}/Calls.json", self._list_calls)
        application.router.add_get(f"{account}/Recordings.json", self._list_recordings)
        application.router.add_get(f"{account}/Recordings/{{sid}}/Transcriptions.json",
                                   self._list_recording_transcriptions)
        application.router.add_get(f"{account}/Transcriptions.json", self._list_transcriptions)
        return application

    # -- plumbing -------------------------------------------------------------------------------

    def _error(self, status: int, message: str | None = None,
               code: int | None = None) -> web.Response:
        code = code or _ERROR_CODES.get(status, status)
        body = {"code": code, "message": message or _ERROR_MESSAGES.get(status, "Error"),
                "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
        return web.json_response(body, status=status)

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    def _take(self, request: web.Request) -> list[_Injection]:
        taken = []
        for injection in self._injections:
            if injection.remaining > 0 and injection.matches(request):
                injection.remaining -= 1
                taken.append(injection)
        self._injections = [i for i in self._injections if i.remaining > 0]
        return taken

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        injections = self._take(request)
        for injection in injections:
            if injection.kind == "slow":
                await asyncio.sleep(injection.seconds)
        for injection in injections:
            if injection.kind == "fail":
                return self._error(injection.status, code=injection.code)
        if not self._authorised(request):
            return self._error(401)
        if request.match_info.get("account") != self.account_sid:
            return self._error(404)
        response: web.StreamResponse = await handler(request)
        if any(i.kind == "drop" for i in injections):
            # The work is done (a message may have been created) but the client never hears.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return response

    def _message(self, sid: str) -> FakeMessage | None:
        return next((m for m in self.messages if m.sid == sid), None)

    def _uri(self, path: str) -> str:
        return f"{API}/Accounts/{self.account_sid}/{path}"

    def _page(self, request: web.Request, key: str, path: str,
              records: list[dict[str, Any]]) -> web.Response:
        query = request.query
        page_size = max(1, min(int(query.get("PageSize", "50")), 1000))
        page = int(query.get("Page", "0"))
        token = query.get("PageToken", "")
        offset = int(token[2:]) if token.startswith("PT") else page * page_size
        chunk = records[offset:offset + page_size]
        filters = {k: v for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")}

        def uri(page_number: int, page_offset: int | None) -> str:
            params = {**filters, "PageSize": page_size, "Page": page_number}
            if page_offset is not None:
                params["PageToken"] = f"PT{page_offset}"
            return f"{self._uri(path)}?{urlencode(params)}"

        more = offset + page_size < len(records)
        body = {
            key: chunk,
            "end": offset + len(chunk) - 1 if chunk else offset,
            "first_page_uri": uri(0, None),
            "next_page_uri": uri(page + 1, offset + page_size) if more else None,
            "previous_page_uri": (uri(page - 1, max(offset - page_size, 0))
                                  if offset > 0 else None),
            "page": page,
            "page_size": page_size,
            "start": offset,
            "uri": uri(page, None if offset == page * page_size else offset),
        }
        return web.json_response(body)

    # -- resources ------------------------------------------------------------------------------

    def message_json(self, message: FakeMessage) -> dict[str, Any]:
        base = self._uri(f"Messages/{message.sid}")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": twilio_date(message.date_created),
            "date_sent": twilio_date(message.date_sent),
            "date_updated": twilio_date(message.date_updated or message.date_created),
            "direction": message.direction,
            "error_code": message.error_code,
            "error_message": message.error_message,
            "from": message.from_,
            "messaging_service_sid": None,
            "num_media": str(len(message.media)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": f"{base}/Media.json",
                                 "feedback": f"{base}/Feedback.json"},
            "to": message.to,
            "uri": f"{base}.json",
        }

    def _media_json(self, message: FakeMessage, media: FakeMedia) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "content_type": media.content_type,
            "date_created": twilio_date(media.date_created),
            "date_updated": twilio_date(media.date_created),
            "parent_sid": message.sid,
            "sid": media.sid,
            "uri": self._uri(f"Messages/{message.sid}/Media/{media.sid}.json"),
        }

    async def _account(self, request: web.Request) -> web.Response:
        return web.json_response({
            "sid": self.account_sid, "friendly_name": "Fake shop account", "status": "active",
            "type": "Full", "owner_account_sid": self.account_sid,
            "date_created": twilio_date(datetime(2020, 1, 1, tzinfo=UTC)),
            "uri": f"{API}/Accounts/{self.account_sid}.json",
        })

    async def _list_messages(self, request: web.Request) -> web.Response:
        query = request.query
        selected = list(self.messages)
        if "To" in query:
            selected = [m for m in selected if m.to == query["To"]]
        if "From" in query:
            selected = [m for m in selected if m.from_ == query["From"]]
        if any(k.startswith("DateSent") for k in query):
            sent_on = _date_matcher(query, "DateSent")
            selected = [m for m in selected
                        if m.date_sent is not None and sent_on(m.date_sent.date())]
        # Newest first, as Twilio is observed to list (not documented).
        order = {id(m): i for i, m in enumerate(self.messages)}
        selected.sort(key=lambda m: (m.date_sent or m.date_created, order[id(m)]), reverse=True)
        return self._page(request, "messages", "Messages.json",
                          [self.message_json(m) for m in selected])

    async def _fetch_message(self, request: web.Request) -> web.Response:
        message = self._message(request.match_info["sid"])
        if message is None:
            return self._error(404)
        return web.json_response(self.message_json(message))

    def _last_inbound(self, customer: str, ours: str) -> datetime | None:
        times = [m.date_sent for m in self.messages
                 if m.direction == "inbound" and m.from_ == customer and m.to == ours
                 and m.date_sent is not None]
        return max(times, default=None)

    async def _create_message(self, request: web.Request) -> web.Response:
        form = await request.post()
        to, from_ = str(form.get("To", "")), str(form.get("From", ""))
        body = str(form.get("Body", ""))
        content_sid = str(form.get("ContentSid", "")) or None
        if not to:
            return self._error(400, "A 'To' phone number is required.", 21604)
        if not from_:
            return self._error(400, "A 'From' phone number is required.", 21603)
        if not body and content_sid is None and "MediaUrl" not in form:
            return self._error(400, "Message body is required.", 21602)
        if len(body) > 1600:
            return self._error(400, "The concatenated message body exceeds the 1600 character "
                                    "limit.", 21617)
        now = self.clock()
        message = FakeMessage(sid=self.new_sid("SM"), from_=from_, to=to, body=body,
                              direction="outbound-api", status="queued", date_created=now,
                              date_sent=None, content_sid=content_sid)
        if (self.enforce_whatsapp_window and to.startswith("whatsapp:")
                and content_sid is None):
            last = self._last_inbound(to, from_)
            if last is None or now - last > WHATSAPP_WINDOW:
                # Twilio accepts the request and fails the message asynchronously.
                message.status = FINAL_FAILURE
                message.error_code = 63016
                message.error_message = ("Failed to send freeform message because you are "
                                         "outside the allowed window.")
        self.messages.append(message)
        return web.json_response(self.message_json(message), status=201)

    async def _list_media(self, request: web.Request) -> web.Response:
        message = self._message(request.match_info["sid"])
        if message is None:
            return self._error(404)
        return self._page(request, "media_list", f"Messages/{message.sid}/Media.json",
                          [self._media_json(message, m) for m in message.media])

    def _find_media(self, request: web.Request) -> tuple[FakeMessage, FakeMedia] | None:
        message = self._message(request.match_info["sid"])
        if message is None:
            return None
        media = next((m for m in message.media if m.sid == request.match_info["media"]), None)
        return None if media is None else (message, media)

    async def _fetch_media(self, request: web.Request) -> web.Response:
        found = self._find_media(request)
        if found is None:
            return self._error(404)
        return web.json_response(self._media_json(*found))

    async def _media_content(self, request: web.Request) -> web.Response:
        found = self._find_media(request)
        if found is None:
            return self._error(404)
        return web.Response(body=found[1].content, content_type=found[1].content_type)

    def _call_json(self, call: FakeCall) -> dict[str, Any]:
        base = self._uri(f"Calls/{call.sid}")
        return {
            "account_sid": self.account_sid, "sid": call.sid, "from": call.from_,
            "to": call.to, "status": call.status, "direction": call.direction,
            "start_time": twilio_date(call.start_time),
            "end_time": twilio_date(call.start_time + timedelta(seconds=call.duration)),
            "date_created": twilio_date(call.start_time),
            "duration": str(call.duration), "answered_by": None,
            "subresource_uris": {"recordings": f"{base}/Recordings.json"},
            "uri": f"{base}.json",
        }

    async def _list_calls(self, request: web.Request) -> web.Response:
        query = request.query
        selected = list(self.calls)
        for name, attribute in (("To", "to"), ("From", "from_"), ("Status", "status")):
            if name in query:
                selected = [c for c in selected if getattr(c, attribute) == query[name]]
        started_on = _date_matcher(query, "StartTime")
        selected = [c for c in selected if started_on(c.start_time.date())]
        selected.sort(key=lambda c: c.start_time, reverse=True)
        return self._page(request, "calls", "Calls.json", [self._call_json(c) for c in selected])

    def _recording_json(self, recording: FakeRecording) -> dict[str, Any]:
        base = self._uri(f"Recordings/{recording.sid}")
        return {
            "account_sid": self.account_sid, "sid": recording.sid,
            "call_sid": recording.call_sid, "duration": str(recording.duration),
            "status": "completed", "channels": 1, "source": "RecordVerb",
            "date_created": twilio_date(recording.date_created),
            "start_time": twilio_date(recording.date_created),
            "media_url": f"https://api.twilio.com{base}",
            "subresource_uris": {"transcriptions": f"{base}/Transcriptions.json"},
            "uri": f"{base}.json",
        }

    async def _list_recordings(self, request: web.Request) -> web.Response:
        query = request.query
        selected = list(self.recordings)
        if "CallSid" in query:
            selected = [r for r in selected if r.call_sid == query["CallSid"]]
        created_on = _date_matcher(query, "DateCreated")
        selected = [r for r in selected if created_on(r.date_created.date())]
        selected.sort(key=lambda r: r.date_created, reverse=True)
        return self._page(request, "recordings", "Recordings.json",
                          [self._recording_json(r) for r in selected])

    def _transcription_json(self, transcription: FakeTranscription) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid, "sid": transcription.sid,
            "recording_sid": transcription.recording_sid, "status": transcription.status,
            "transcription_text": transcription.text, "type": "fast",
            "date_created": twilio_date(transcription.date_created),
            "uri": self._uri(f"Transcriptions/{transcription.sid}.json"),
        }

    async def _list_recording_transcriptions(self, request: web.Request) -> web.Response:
        recording = next((r for r in self.recordings if r.sid == request.match_info["sid"]),
                         None)
        if recording is None:
            return self._error(404)
        return self._page(request, "transcriptions",
                          f"Recordings/{recording.sid}/Transcriptions.json",
                          [self._transcription_json(t) for t in recording.transcriptions])

    async def _list_transcriptions(self, request: web.Request) -> web.Response:
        every = [t for r in self.recordings for t in r.transcriptions]
        return self._page(request, "transcriptions", "Transcriptions.json",
                          [self._transcription_json(t) for t in every])


def main() -> None:
    """Run the look-alike on its own: `python -m agent_tui.demo.fakes.twilio_server [PORT]`."""
    import sys

    async def serve() -> None:
        fake = FakeTwilio()
        port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
        url = await fake.start(port=port)
        print(json.dumps({"base_url": url, "account_sid": fake.account_sid,
                          "auth_token": fake.auth_token}), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
