"""Pure parts of the Telegram connector: splitting, phone numbers, the rate limiter, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from telegram.error import NetworkError, RetryAfter, TimedOut

from agent_tui.model import Channel
from connectors.base import AuthError, OutboundMessage, PermanentError, UncertainDelivery
from connectors.telegram import (
    MAX_TEXT_UTF16,
    RateLimiter,
    TelegramConnector,
    TelegramSettings,
    e164,
    never_sent,
    parse_cursor,
    retry_after_seconds,
    split_message,
    utf16_length,
)


def test_short_text_is_one_part() -> None:
    assert split_message("Hallo") == ["Hallo"]
    assert split_message("x" * MAX_TEXT_UTF16) == ["x" * MAX_TEXT_UTF16]


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    assert split_message("aaaa bb\n\ncc dd", limit=10) == ["aaaa bb", "cc dd"]
    assert split_message("aaaa\nbb cc dd", limit=10) == ["aaaa", "bb cc dd"]
    assert split_message("aaa bbb ccc ddd", limit=10) == ["aaa bbb", "ccc ddd"]
    assert split_message("abcdefghijklmno", limit=10) == ["abcdefghij", "klmno"]


def test_split_keeps_every_character_but_the_separators() -> None:
    paragraphs = [f"Absatz {n}: " + "wort " * 300 for n in range(12)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    parts = split_message(text)
    assert len(parts) > 1 and all(utf16_length(p) <= MAX_TEXT_UTF16 for p in parts)
    assert "\n\n".join(parts) == text


def test_split_counts_utf16_units_like_telegram() -> None:
    emoji = "\U0001f4e6"                       # a parcel: two UTF-16 units
    parts = split_message(emoji * 3000)
    assert [utf16_length(p) for p in parts] == [4096, 1904]
    assert "".join(parts) == emoji * 3000


def test_shared_phone_numbers_become_e164() -> None:
    assert e164("491701234567") == "+491701234567"
    assert e164("+44 20 7946 0958") == "+442079460958"
    assert e164("12") is None and e164("not a number") is None


def test_cursor() -> None:
    assert parse_cursor(None) is None and parse_cursor({}) is None
    assert parse_cursor({"version": 1, "offset": 100301}) == 100301


def test_retry_after_in_seconds_whatever_ptb_gives() -> None:
    assert retry_after_seconds(RetryAfter(3)) == 3.0
    assert retry_after_seconds(RetryAfter(timedelta(seconds=90))) == 90.0


def _wrapped(error: Exception, outer: type[NetworkError] = NetworkError) -> NetworkError:
    try:
        try:
            raise error
        except Exception as exc:
            raise outer("network trouble") from exc
    except NetworkError as wrapped:
        return wrapped


def test_only_errors_before_the_request_went_out_count_as_never_sent() -> None:
    assert never_sent(_wrapped(httpx.ConnectError("refused")))
    assert never_sent(_wrapped(httpx.ConnectTimeout("slow connect"), TimedOut))
    assert not never_sent(_wrapped(httpx.ReadTimeout("no answer"), TimedOut))
    assert not never_sent(_wrapped(httpx.RemoteProtocolError("closed")))
    assert not never_sent(NetworkError("Bad Gateway"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_rate_limiter_paces_one_chat_but_not_others() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 30, clock, clock.sleep)
    for chat in ("1", "2", "1", "3", "1"):
        await limiter.acquire(chat)
    assert clock.waits == [1.0, 1.0]


async def test_rate_limiter_holds_the_bot_to_its_per_second_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 30, clock, clock.sleep)
    for chat in range(31):
        await limiter.acquire(str(chat))
    assert clock.waits == [1.0] and clock.now == 1.0


def test_missing_token_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="'shop-telegram': no bot token"):
        TelegramConnector(TelegramSettings(name="shop-telegram", token=""))


async def test_reconcile_always_asks_a_person() -> None:
    connector = TelegramConnector(TelegramSettings(name="shop-telegram", token="1:x"))
    message = OutboundMessage(channel=Channel.TELEGRAM, to="42", text="Hallo",
                              idempotency_key="k")
    with pytest.raises(UncertainDelivery, match="Telegram cannot tell"):
        await connector.reconcile(message, datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    with pytest.raises(PermanentError, match="not a Telegram chat id"):
        await connector.send(OutboundMessage(channel=Channel.TELEGRAM, to="kim@example.org",
                                             text="Hallo", idempotency_key="k"))
    await connector.close()


def test_attachment_types_and_names_from_telegram_are_sanitised() -> None:
    from telegram import Chat, Document, Message, Voice

    message = Message(
        message_id=7, date=datetime.now(UTC), chat=Chat(id=1, type="private"),
        document=Document(file_id="f1", file_unique_id="u1",
                          file_name="..\u202efdp.exe",
                          mime_type="application/pdf\x1b]52;c;eA==\x07"),
        voice=Voice(file_id="f2", file_unique_id="u2", duration=3, mime_type="\x9b2J"))
    document, voice = TelegramConnector._attachments(message)
    assert document.content_type == "application/octet-stream"
    assert "\u202e" not in document.name and not document.name.startswith(".")
    assert voice.content_type == "audio/ogg"
