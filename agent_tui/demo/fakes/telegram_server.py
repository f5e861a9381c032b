"""A local Telegram Bot API look-alike on loopback: getMe, getUpdates, sendMessage, getFile, files.

It speaks the Bot API's wire format (`POST /bot<token>/<method>`, form-encoded or multipart
parameters, answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code": ...,
"description": ...}`) closely enough for the real python-telegram-bot to talk to it through
`Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")`. Used by the integration
tests and, in-process, by `agent-tui demo`:

    fake = FakeTelegram()
    base_url = await fake.start()          # http://127.0.0.1:<free port>
    fake.add_text(42, "Kim", "Hallo")
    ...
    await fake.stop()

getUpdates follows the Bot API: an update is confirmed (and forgotten) once getUpdates is called
with an offset higher than its update_id; a negative offset keeps only the last -offset updates;
`timeout` long-polls (the answer comes as soon as an update arrives, or empty after the timeout).
A second getUpdates while one is waiting ends the first with 409, as Telegram does with two pollers.

Switches: `conflict_next` (409 on getUpdates), `retry_after_next` (429 with
parameters.retry_after), `slow_next` (the request is processed at once, the answer is delayed: a
client that times out has still sent its message) and `block_chat` (403, the user blocked the bot).
Seeding (`add_*`) must happen on the server's event loop thread or goes through
`call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agent_tui.demo.fakes.local_server import LocalHttpServer

DEFAULT_TOKEN = "123456:TEST-fake-telegram-token"
DEFAULT_USERNAME = "shop_test_bot"
MAX_TEXT_UTF16 = 4096
MAX_LIMIT = 100
CONFLICT_POLLER = ("Conflict: terminated by other getUpdates request; make sure that only one "
                   "bot instance is running")
CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; use "
                    "deleteWebhook to delete the webhook first")

Handler = Callable[[dict[str, str]], Awaitable[web.Response]]


@dataclass(slots=True)
class SentMessage:
    """A message the bot sent, as the fake received it."""

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    reply_to_message_id: int | None
    params: dict[str, str]


@dataclass(slots=True)
class FakeFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes


@dataclass(slots=True)
class _Injection:
    kind: str                    # conflict | retry_after | slow
    remaining: int
    method: str | None
    seconds: float = 0.0
    webhook: bool = False


@dataclass(slots=True)
class _Poll:
    """A getUpdates request that is waiting for news."""

    woken: asyncio.Event = field(default_factory=asyncio.Event)
    terminated: bool = False


def _error(status: int, description: str, **parameters: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FakeTelegram(LocalHttpServer):
    """An in-memory bot behind an aiohttp server on 127.0.0.1."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, username: str = DEFAULT_USERNAME,
                 first_name: str = "Shop Bot",
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.token = token
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.username = username
        self.first_name = first_name
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sent: list[SentMessage] = []
        self.requests: list[tuple[str, dict[str, str]]] = []   # (method, parameters)
        self.files: dict[str, FakeFile] = {}
        self.blocked_chats: set[int] = set()
        self._updates: list[dict[str, Any]] = []       # received, not yet confirmed
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._update_ids = itertools.count(100_000)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._file_ids = itertools.count(1)
        self._injections: list[_Injection] = []
        self._polls: list[_Poll] = []
        self._poll_started = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    # -- seeding ------------------------------------------------------------------------------

    def add_text(self, user_id: int, first_name: str, text: str, username: str | None = None,
                 *, last_name: str | None = None, reply_to: int | None = None) -> int:
        """A customer writes to the bot in a private chat; returns the new message_id."""
        return self._add_message(user_id, first_name, username, last_name, reply_to,
                                 {"text": text})

    def add_photo(self, user_id: int, first_name: str, data: bytes = b"\xff\xd8\xff\xe0photo",
                  caption: str | None = None, username: str | None = None) -> int:
        small = self._add_file("photos", ".jpg", data[: max(1, len(data) // 4)])
        large = self._add_file("photos", ".jpg", data)
        sizes = [{"file_id": f.file_id, "file_unique_id": f.file_unique_id,
                  "file_size": len(f.data), "width": width, "height": width}
                 for f, width in ((small, 90), (large, 800))]
        content: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            content["caption"] = caption
        return self._add_message(user_id, first_name, username, None, None, content)

    def add_document(self, user_id: int, first_name: str, file_name: str, data: bytes,
                     mime_type: str = "application/octet-stream", caption: str | None = None,
                     username: str | None = None) -> int:
        stored = self._add_file("documents", "", data)
        content: dict[str, Any] = {"document": {
            "file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
            "file_name": file_name, "mime_type": mime_type, "file_size": len(data)}}
        if caption is not None:
            content["caption"] = caption
        return self._add_message(user_id, first_name, username, None, None, content)

    def add_voice(self, user_id: int, first_name: str, data: bytes = b"OggS voice",
                  duration: int = 3, username: str | None = None) -> int:
        stored = self._add_file("voice", ".oga", data)
        content = {"voice": {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                             "duration": duration, "mime_type": "audio/ogg",
                             "file_size": len(data)}}
        return self._add_message(user_id, first_name, username, None, None, content)

    def add_contact(self, user_id: int, phone_number: str, first_name: str = "Kunde",
                    username: str | None = None, *, card_name: str | None = None) -> int:
        """The customer shares their own phone number (Telegram's "share contact" button), or
        with `card_name` the card of someone from their phone book (no Telegram user id)."""
        card: dict[str, Any] = {"phone_number": phone_number,
                                "first_name": card_name or first_name}
        if card_name is None:
            card["user_id"] = user_id
        return self._add_message(user_id, first_name, username, None, None, {"contact": card})

    def add_edit(self, chat_id: int, message_id: int, new_text: str) -> None:
        """The customer edits a message they sent earlier."""
        original = self._messages[(chat_id, message_id)]
        edited = dict(original, text=new_text, edit_date=self._now())
        self._messages[(chat_id, message_id)] = edited
        self._queue({"edited_message": edited})

    # -- switches -----------------------------------------------------------------------------

    def conflict_next(self, count: int = 1, *, webhook: bool = False) -> None:
        """The next `count` getUpdates calls answer 409 (another poller, or a webhook is set)."""
        self._injections.append(_Injection("conflict", count, "getUpdates", webhook=webhook))

    def retry_after_next(self, seconds: int, count: int = 1, *,
                         method: str | None = None) -> None:
        """The next `count` calls (of `method`, or any) answer 429 with retry_after."""
        self._injections.append(_Injection("retry_after", count, method, seconds=seconds))

    def slow_next(self, seconds: float, count: int = 1, *, method: str | None = None) -> None:
        """The next `count` calls are processed at once but answered `seconds` later."""
        self._injections.append(_Injection("slow", count, method, seconds=seconds))

    def block_chat(self, chat_id: int) -> None:
        """The user blocked the bot: sendMessage to them answers 403."""
        self.blocked_chats.add(chat_id)

    # -- inspection ---------------------------------------------------------------------------

    @property
    def pending_updates(self) -> int:
        """Updates received and not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    async def wait_until_polling(self) -> None:
        """Return once a getUpdates long poll is waiting for news (lets tests avoid sleeps)."""
        while not self._polls:
            self._poll_started.clear()
            await self._poll_started.wait()

    def calls(self, method: str) -> list[dict[str, str]]:
        return [params for name, params in self.requests if name == method]

    # -- server lifecycle ---------------------------------------------------------------------

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_route("*", "/bot{token}/{method}", self._api)
        application.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return application

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        return await super().start(host, port)

    async def stop(self) -> None:
        for poll in self._polls:
            poll.woken.set()
        await super().stop()

    # -- state --------------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock().timestamp())

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _add_file(self, folder: str, suffix: str, data: bytes) -> FakeFile:
        number = next(self._file_ids)
        stored = FakeFile(f"FILE{number:06d}-{folder}", f"U{number:06d}",
                          f"{folder}/file_{number}{suffix}", data)
        self.files[stored.file_id] = stored
        return stored

    def _add_message(self, user_id: int, first_name: str, username: str | None,
                     last_name: str | None, reply_to: int | None,
                     content: dict[str, Any]) -> int:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
        if last_name:
            user["last_name"] = chat["last_name"] = last_name
        if username:
            user["username"] = chat["username"] = username
        message_id = self._next_message_id(user_id)
        message: dict[str, Any] = {"message_id": message_id, "from": user, "chat": chat,
                                   "date": self._now(), **content}
        if reply_to is not None:
            replied = self._messages.get((user_id, reply_to)) or {
                "message_id": reply_to, "chat": chat, "date": self._now()}
            message["reply_to_message"] = replied
        self._messages[(user_id, message_id)] = message
        self._queue({"message": message})
        return message_id

    def _queue(self, content: dict[str, Any]) -> None:
        self._updates.append({"update_id": next(self._update_ids), **content})
        if self._loop is None or self._thread == threading.get_ident():
            self._wake_polls()
        else:
            self._loop.call_soon_threadsafe(self._wake_polls)

    def _wake_polls(self) -> None:
        for poll in self._polls:
            poll.woken.set()

    def _take(self, method: str) -> list[_Injection]:
        taken = []
        for injection in self._injections:
            if injection.remaining > 0 and injection.method in (None, method):
                injection.remaining -= 1
                taken.append(injection)
        self._injections = [i for i in self._injections if i.remaining > 0]
        return taken

    # -- HTTP ---------------------------------------------------------------------------------

    async def _parameters(self, request: web.Request) -> dict[str, str]:
        params = {key: str(value) for key, value in request.query.items()}
        if request.content_type == "application/json":
            body = await request.json()
            params.update({k: v if isinstance(v, str) else json.dumps(v)
                           for k, v in dict(body).items()})
        elif request.can_read_body:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._parameters(request)
        self.requests.append((method, params))
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        handler = self._handlers().get(method.lower())
        if handler is None:
            return _error(404, "Not Found")
        delay = 0.0
        for injection in self._take(method):
            if injection.kind == "conflict":
                return _error(409, CONFLICT_WEBHOOK if injection.webhook else CONFLICT_POLLER)
            if injection.kind == "retry_after":
                seconds = int(injection.seconds)
                return _error(429, f"Too Many Requests: retry after {seconds}",
                              retry_after=seconds)
            delay += injection.seconds
        response = await handler(params)
        if delay:
            # The work is done; only the answer is late (a client may have given up by now).
            await asyncio.sleep(delay)
        return response

    def _handlers(self) -> dict[str, Handler]:
        return {"getme": self._get_me, "getupdates": self._get_updates,
                "sendmessage": self._send_message, "getfile": self._get_file,
                "deletewebhook": self._delete_webhook}

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name,
                "username": self.username, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def _get_me(self, params: dict[str, str]) -> web.Response:
        return _ok(self._bot_user())

    async def _delete_webhook(self, params: dict[str, str]) -> web.Response:
        return _ok(True)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    async def _get_updates(self, params: dict[str, str]) -> web.Response:
        try:
            offset = int(params.get("offset", "0"))
            limit = min(max(int(params.get("limit", str(MAX_LIMIT))), 1), MAX_LIMIT)
            timeout = max(float(params.get("timeout", "0")), 0.0)
        except ValueError:
            return _error(400, "Bad Request: wrong parameter value")
        # A newer poller ends one that is still waiting, as on the real service.
        for poll in self._polls:
            poll.terminated = True
            poll.woken.set()
        self._confirm(offset)
        if not self._updates and timeout > 0:
            poll = _Poll()
            self._polls.append(poll)
            self._poll_started.set()
            try:
                await asyncio.wait_for(poll.woken.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                self._polls.remove(poll)
            if poll.terminated:
                return _error(409, CONFLICT_POLLER)
        return _ok(self._updates[:limit])

    async def _send_message(self, params: dict[str, str]) -> web.Response:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, ValueError):
            return _error(400, "Bad Request: chat not found")
        text = params.get("text", "")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if _utf16_length(text) > MAX_TEXT_UTF16:
            return _error(400, "Bad Request: message is too long")
        if chat_id in self.blocked_chats:
            return _error(403, "Forbidden: bot was blocked by the user")
        reply_to = self._reply_to(params)
        message_id = self._next_message_id(chat_id)
        self.sent.append(SentMessage(chat_id, message_id, text, params.get("parse_mode"),
                                     reply_to, params))
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        message: dict[str, Any] = {"message_id": message_id, "from": self._bot_user(),
                                   "chat": chat, "date": self._now(), "text": text}
        self._messages[(chat_id, message_id)] = message
        return _ok(message)

    @staticmethod
    def _reply_to(params: dict[str, str]) -> int | None:
        if "reply_parameters" in params:
            return int(json.loads(params["reply_parameters"])["message_id"])
        if "reply_to_message_id" in params:
            return int(params["reply_to_message_id"])
        return None

    async def _get_file(self, params: dict[str, str]) -> web.Response:
        stored = self.files.get(params.get("file_id", ""))
        if stored is None:
            return _error(400, "Bad Request: invalid file_id")
        return _ok({"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                    "file_size": len(stored.data), "file_path": stored.file_path})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return _error(404, "Not Found")
