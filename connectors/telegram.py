"""Telegram through python-telegram-bot: a plain `Bot` polling getUpdates, no Application loop.

Cursor (opaque to the store, JSON): {"version": 1, "offset": <next update_id to ask for>}.
Each batch carries max(update_id) + 1 of its updates. The engine stores the batch and its cursor in
one transaction, and only then asks for the next batch with that offset, which is what confirms the
updates to Telegram (invariant 1): a crash before the commit gets the same updates again, and the
store dedupes them by provider_id.

What fetch yields (all InboundMessage, channel TELEGRAM):
- provider_id "<chat id>:<message id>", thread_key "<chat id>", sender "<user id>",
  sender_name first + last name, extra["username"] (without "@", "" when the user has none);
- text or caption; photos (largest size), documents, voice, audio and video as AttachmentInfo with
  the file_id as `ref` (bytes on demand through `fetch_attachment`);
- a reply keeps its parent in `in_reply_to` ("<chat id>:<message id>");
- an edited message comes again under the same provider_id with the new text and
  extra["edited"] = True; the store then updates the stored text and marks it edited;
- a shared contact that is the sender's own phone number gives extra["shared_phone"] (E.164), for a
  merge proposal with the SMS/WhatsApp contact; a contact card of someone else only shows as text.

Sending never sets a parse mode (customer-facing text goes out literally), splits at 4,096 UTF-16
code units on paragraph, then line, then word boundaries, and waits for a per-chat (~1/s) and a
per-bot (30/s) limiter. A RetryAfter is obeyed; errors where the request surely did not reach
Telegram (connection refused, connect/pool timeout) are retried with bounded backoff. A timeout
after the request went out is UncertainDelivery: Telegram has no idempotency key and no way to list
what a bot sent, so a person decides rather than the customer getting the reply twice (invariant 2).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import phonenumbers
from telegram import Bot, Message, ReplyParameters, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from agent_tui.model import AttachmentInfo, Channel, Direction
from agent_tui.sanitize import clean_line, clean_text, safe_filename, safe_mime_type
from connectors.base import (
    AuthError,
    ConflictError,
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

TELEGRAM_API_BASE = "https://api.telegram.org"
CURSOR_VERSION = 1
MAX_TEXT_UTF16 = 4096                     # telegram.constants.MessageLimit.MAX_TEXT_LENGTH
MAX_BATCH = 100                           # getUpdates' upper limit
ALLOWED_UPDATES = ("message", "edited_message")
SPLIT_SEPARATORS = ("\n\n", "\n", " ")    # paragraph, then line, then word

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    name: str
    token: str = field(repr=False)            # resolved secret, never shown
    api_base: str = TELEGRAM_API_BASE
    poll_timeout: int = 30                    # seconds a getUpdates long poll may wait
    batch_size: int = MAX_BATCH               # updates per getUpdates call (1-100)
    timeout: float = 20.0                     # seconds per HTTP call (long polls get more)
    max_attempts: int = 4                     # per call: RetryAfter and network errors
    retry_base_delay: float = 1.0             # seconds; doubles per attempt
    max_retry_after: float = 60.0             # a longer RetryAfter goes back to the outbox
    chat_interval: float = 1.0                # seconds between two messages to one chat
    bot_per_second: int = 30                  # messages per second over all chats
    clock: Callable[[], float] = time.monotonic     # injectable for the limiter in tests
    sleep: Sleep = asyncio.sleep                     # injectable: every wait goes through it


# -- pure helpers --------------------------------------------------------------------------------


def utf16_length(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji may count twice)."""
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """The largest index i such that text[:i] is at most `limit` UTF-16 code units long."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def split_message(text: str, limit: int = MAX_TEXT_UTF16) -> list[str]:
    """Parts of at most `limit` UTF-16 units, cut at the last paragraph, else line, else word
    boundary that fits; a word longer than a whole part is cut hard. The separator at a cut is
    dropped, nothing else is changed."""
    parts: list[str] = []
    rest = text
    while utf16_length(rest) > limit:
        fits = _fitting_prefix(rest, limit)
        for separator in SPLIT_SEPARATORS:
            cut = rest.rfind(separator, 0, fits + len(separator))
            if cut > 0:
                parts.append(rest[:cut])
                rest = rest[cut + len(separator):]
                break
        else:
            parts.append(rest[:fits])
            rest = rest[fits:]
    if rest or not parts:
        parts.append(rest)
    return parts


def e164(raw: str) -> str | None:
    """A phone number as Telegram shares it ("491701234567", no plus) in E.164, else None."""
    digits = raw.strip()
    if not digits.startswith("+"):
        digits = f"+{digits}"
    try:
        parsed = phonenumbers.parse(digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        # Reading it as int is deprecated in PTB 22 in favour of timedelta; both are handled.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def never_sent(error: NetworkError) -> bool:
    """True when the request surely did not reach Telegram, so repeating it cannot duplicate."""
    cause = error.__cause__ or error.__context__
    return isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def parse_cursor(cursor: Cursor | None) -> int | None:
    if not cursor or cursor.get("offset") is None:
        return None
    return int(cursor["offset"])


# -- rate limiting --------------------------------------------------------------------------------


class RateLimiter:
    """Telegram's flood limits: about one message per second per chat, 30 per second per bot.

    Time comes from `clock` and waits go through `sleep`, so tests can check the waits without
    spending them.
    """

    def __init__(self, chat_interval: float, per_second: int, clock: Callable[[], float],
                 sleep: Sleep) -> None:
        self.chat_interval = chat_interval
        self.per_second = per_second
        self.clock = clock
        self.sleep = sleep
        self._next_for_chat: dict[str, float] = {}
        self._recent: deque[float] = deque()       # start times of the last sends of the bot
        self._lock = asyncio.Lock()

    async def acquire(self, chat: str) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                while self._recent and self._recent[0] <= now - 1.0:
                    self._recent.popleft()
                wait = self._next_for_chat.get(chat, now) - now
                if len(self._recent) >= self.per_second:
                    wait = max(wait, self._recent[0] + 1.0 - now)
                if wait <= 0:
                    break
                await self.sleep(wait)
            self._recent.append(now)
            self._next_for_chat[chat] = now + self.chat_interval


# -- the connector --------------------------------------------------------------------------------


class TelegramConnector(Connector):
    """One bot, polled with getUpdates."""

    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self.name = settings.name
        # The engine's fallback pause when listen() ends; ours only ends on errors.
        self.poll_interval = float(settings.poll_timeout)
        base = settings.api_base.rstrip("/")
        if not settings.token:
            raise AuthError(f"telegram account {settings.name!r}: no bot token configured")
        self._requests = (self._http(settings.timeout, 4), self._http(settings.timeout, 1))
        self._bot = Bot(settings.token, base_url=f"{base}/bot",
                        base_file_url=f"{base}/file/bot", request=self._requests[0],
                        get_updates_request=self._requests[1])
        self._limiter = RateLimiter(settings.chat_interval, settings.bot_per_second,
                                    settings.clock, settings.sleep)
        self._ready = False
        self._offset: int | None = None          # the offset of the last batch handed out

    @staticmethod
    def _http(timeout: float, connections: int) -> HTTPXRequest:
        return HTTPXRequest(connection_pool_size=connections, connect_timeout=timeout,
                            read_timeout=timeout, write_timeout=timeout, pool_timeout=timeout)

    # -- naming and errors ------------------------------------------------------------------------

    def _who(self) -> str:
        if self._ready and self._bot.username:
            return f"telegram account {self.name!r} (@{self._bot.username})"
        return f"telegram account {self.name!r}"

    def _conflict(self, error: Conflict) -> ConflictError:
        if "webhook" in error.message.lower():
            advice = ("a webhook is set for this bot; remove it (Bot API deleteWebhook) "
                      "to fetch updates here")
        else:
            advice = ("another program is fetching updates for this bot; stop the other "
                      "poller (only one process may poll a bot)")
        return ConflictError(f"{self._who()}: {advice} (Telegram 409: {error.message})")

    def _auth(self) -> AuthError:
        return AuthError(f"{self._who()}: the bot token was refused (401/404); check the "
                         f"account's token")

    async def _ensure_ready(self) -> None:
        """getMe once (through Bot.initialize), so that errors can name the bot."""
        if self._ready:
            return
        await self._with_retries("getMe", self._bot.initialize, idempotent=True)
        self._ready = True

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]], *,
                            idempotent: bool) -> T:
        """Run one Bot API call; obey RetryAfter, retry network errors with bounded backoff.

        Only a non-idempotent call (sendMessage) turns an ambiguous network error into
        UncertainDelivery; every error leaves as a ConnectorError naming the account.
        """
        settings = self.settings
        for attempt in range(1, settings.max_attempts + 1):
            last = attempt == settings.max_attempts
            try:
                return await call()
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if last or wait > settings.max_retry_after:
                    raise TransientError(f"{self._who()}: {what}: Telegram asks to wait "
                                         f"{wait:g} s (flood control)", retry_after=wait) from exc
                await settings.sleep(wait)
            except InvalidToken:
                # PTB's own message and chain carry the token itself (invariant 6).
                raise self._auth() from None
            except Conflict as exc:
                raise self._conflict(exc) from exc
            except Forbidden as exc:
                raise PermanentError(f"{self._who()}: {what}: {exc.message} "
                                     f"(the user blocked the bot or never started it)") from exc
            except ChatMigrated as exc:
                raise PermanentError(f"{self._who()}: {what}: the group moved to chat "
                                     f"{exc.new_chat_id}") from exc
            except BadRequest as exc:
                raise PermanentError(f"{self._who()}: {what}: {exc.message}") from exc
            except (TimedOut, NetworkError) as exc:   # TimedOut is a NetworkError; explicit
                if not idempotent and not never_sent(exc):
                    raise UncertainDelivery(
                        f"{self._who()}: {what}: no answer after the request went out "
                        f"({exc.message}); Telegram cannot tell whether it was delivered") from exc
                if last:
                    raise TransientError(f"{self._who()}: {what}: {exc.message} "
                                         f"(after {attempt} attempts)") from exc
                await settings.sleep(settings.retry_base_delay * 2 ** (attempt - 1))
            except TelegramError as exc:
                raise ConnectorError(f"{self._who()}: {what}: {exc.message}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- inbound ----------------------------------------------------------------------------------

    async def _get_updates(self, offset: int | None, timeout: int,
                           limit: int) -> tuple[Update, ...]:
        async def call() -> tuple[Update, ...]:
            return await self._bot.get_updates(
                offset=offset, limit=limit, timeout=timeout,
                allowed_updates=list(ALLOWED_UPDATES))
        return await self._with_retries("getUpdates", call, idempotent=True)

    async def fetch(self, cursor: Cursor | None) -> AsyncGenerator[FetchBatch, None]:
        await self._ensure_ready()
        offset = parse_cursor(cursor)
        limit = min(max(self.settings.batch_size, 1), MAX_BATCH)
        while True:
            # Asking with `offset` confirms everything before it: the caller has stored the
            # previous batch together with this offset before the generator resumes here.
            updates = await self._get_updates(offset, 0, limit)
            if not updates:
                self._offset = offset
                return
            offset = max(u.update_id for u in updates) + 1
            self._offset = offset
            messages = [m for m in (self._inbound(u) for u in updates) if m is not None]
            done = len(updates) < limit
            yield FetchBatch(messages, {"version": CURSOR_VERSION, "offset": offset}, done)
            if done:
                return

    async def listen(self) -> AsyncGenerator[None, None]:
        """Long-poll getUpdates without moving the offset; yield when updates wait."""
        await self._ensure_ready()
        while True:
            # Only the offset of a batch already handed out (and so stored) is sent here.
            updates = await self._get_updates(self._offset, self.settings.poll_timeout, 1)
            if updates:
                yield None

    def _inbound(self, update: Update) -> InboundMessage | None:
        edited = update.edited_message is not None
        message = update.edited_message or update.message
        if message is None or message.from_user is None:
            return None
        user = message.from_user
        chat_id = message.chat.id
        text = message.text or message.caption or ""
        extra: dict[str, Any] = {"username": clean_line(user.username or ""),
                                 "update_id": update.update_id}
        defects: list[str] = []
        if edited:
            extra["edited"] = True
        if message.contact is not None:
            text = self._contact_text(message, extra)
        attachments = self._attachments(message)
        if not text and not attachments and message.contact is None:
            text = "[a Telegram message of a kind this client does not show]"
            defects.append("unsupported Telegram message type")
        in_reply_to = ""
        if message.reply_to_message is not None:
            in_reply_to = f"{chat_id}:{message.reply_to_message.message_id}"
        return InboundMessage(
            channel=Channel.TELEGRAM, provider_id=f"{chat_id}:{message.message_id}",
            direction=Direction.INBOUND, sender=str(user.id),
            sender_name=clean_line(user.full_name), recipients=[self._bot_address()],
            sent_at=message.date.astimezone(UTC), subject="", text=clean_text(text),
            attachments=attachments, in_reply_to=in_reply_to, thread_key=str(chat_id),
            defects=defects, extra=extra)

    def _bot_address(self) -> str:
        return f"@{self._bot.username}" if self._ready and self._bot.username else self.name

    @staticmethod
    def _contact_text(message: Message, extra: dict[str, Any]) -> str:
        contact = message.contact
        assert contact is not None and message.from_user is not None
        number = e164(contact.phone_number)
        name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
        own = contact.user_id is not None and contact.user_id == message.from_user.id
        if number and own:
            extra["shared_phone"] = number
        label = "Shared their phone number" if own else f"Shared a contact: {name}"
        return f"{label}: {number or contact.phone_number}"

    @staticmethod
    def _attachments(message: Message) -> list[AttachmentInfo]:
        found: list[AttachmentInfo] = []
        key = message.message_id
        if message.photo:
            largest = message.photo[-1]
            found.append(AttachmentInfo(f"photo-{key}.jpg", "image/jpeg",
                                        largest.file_size or 0, largest.file_id))
        if message.document is not None:
            doc = message.document
            found.append(AttachmentInfo(safe_filename(doc.file_name or "", f"document-{key}"),
                                        safe_mime_type(doc.mime_type or ""),
                                        doc.file_size or 0, doc.file_id))
        if message.voice is not None:
            voice = message.voice
            found.append(AttachmentInfo(f"voice-{key}.ogg",
                                        safe_mime_type(voice.mime_type or "", "audio/ogg"),
                                        voice.file_size or 0, voice.file_id))
        if message.audio is not None:
            audio = message.audio
            found.append(AttachmentInfo(safe_filename(audio.file_name or "", f"audio-{key}"),
                                        safe_mime_type(audio.mime_type or "", "audio/mpeg"),
                                        audio.file_size or 0, audio.file_id))
        if message.video is not None:
            video = message.video
            found.append(AttachmentInfo(safe_filename(video.file_name or "", f"video-{key}.mp4"),
                                        safe_mime_type(video.mime_type or "", "video/mp4"),
                                        video.file_size or 0, video.file_id))
        return found

    async def fetch_attachment(self, ref: str) -> bytes:
        """The bytes of an attachment, by its file_id (getFile, then the file download)."""
        await self._ensure_ready()

        async def call() -> bytes:
            telegram_file = await self._bot.get_file(ref)
            return bytes(await telegram_file.download_as_bytearray())
        return await self._with_retries("getFile", call, idempotent=True)

    # -- outbound ---------------------------------------------------------------------------------

    @staticmethod
    def _reply_target(chat_id: str, in_reply_to: str) -> int | None:
        chat, _, message = in_reply_to.partition(":")
        if chat == chat_id and message.isdigit():
            return int(message)
        return None

    async def send(self, message: OutboundMessage) -> str:
        chat_id = str(message.extra.get("chat_id") or message.to).strip()
        if not chat_id.lstrip("-").isdigit():
            raise PermanentError(f"{self._who()}: {chat_id!r} is not a Telegram chat id")
        await self._ensure_ready()
        parts = split_message(message.text)
        reply_to = self._reply_target(chat_id, message.in_reply_to)
        sent: list[str] = []
        for number, part in enumerate(parts, start=1):
            try:
                provider_id = await self._send_part(chat_id, part, reply_to if number == 1
                                                    else None)
            except ConnectorError as exc:
                if not sent:
                    raise
                raise UncertainDelivery(
                    f"{self._who()}: parts 1-{len(sent)} of {len(parts)} were sent (last "
                    f"{sent[-1]}), part {number} failed: {exc}") from exc
            sent.append(provider_id)
        return sent[-1]

    async def _send_part(self, chat_id: str, text: str, reply_to: int | None) -> str:
        async def call() -> Message:
            await self._limiter.acquire(chat_id)
            reply = (ReplyParameters(reply_to, allow_sending_without_reply=True)
                     if reply_to is not None else None)
            # No parse_mode, ever: customer-facing text must not turn into markup.
            return await self._bot.send_message(int(chat_id), text, reply_parameters=reply)
        sent = await self._with_retries("sendMessage", call, idempotent=False)
        return f"{sent.chat.id}:{sent.message_id}"

    async def reconcile(self, message: OutboundMessage, attempted_at: datetime) -> str | None:
        raise UncertainDelivery(
            f"{self._who()}: the reply to {message.to} may or may not have been sent before "
            f"the crash ({attempted_at:%Y-%m-%d %H:%M} UTC); Telegram cannot tell, so a person "
            f"decides whether to send it again")

    # -- doctor and lifecycle ---------------------------------------------------------------------

    async def check(self) -> str:
        await self._ensure_ready()
        bot = self._bot.bot
        return (f"{self.name}: Telegram bot @{bot.username} "
                f"({clean_line(bot.first_name)!r}, id {bot.id})")

    async def close(self) -> None:
        self._ready = False
        await self._bot.shutdown()
        # Bot.shutdown skips its requests when initialize() never finished (a refused token).
        for request in self._requests:
            await request.shutdown()
