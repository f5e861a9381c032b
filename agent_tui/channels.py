"""Channel manners the composer and the connectors share: SMS segments, the WhatsApp window,
Telegram's message length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

WHATSAPP_WINDOW = timedelta(hours=24)
TELEGRAM_MAX_TEXT = 4096

__all__ = ["TELEGRAM_MAX_TEXT", "WHATSAPP_WINDOW", "SmsSegments", "sms_segments",
           "whatsapp_window_open"]


def whatsapp_window_open(last_inbound_at: datetime | None, now: datetime | None = None) -> bool:
    """May a free-form WhatsApp reply go out? Only within 24 h of the customer's last message."""
    if last_inbound_at is None:
        return False
    now = now or datetime.now(UTC)
    if last_inbound_at.tzinfo is None:
        last_inbound_at = last_inbound_at.replace(tzinfo=UTC)
    return now - last_inbound_at < WHATSAPP_WINDOW


_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")   # sent as ESC + char: two septets each


class SmsSegments(NamedTuple):
    encoding: str       # "GSM-7" | "UCS-2"
    segments: int
    chars_left: int     # room left in the last segment (GSM-7 septets or UTF-16 units)


def sms_segments(text: str) -> SmsSegments:
    """How an SMS of `text` is split: GSM-7 160 / 153 per part, UCS-2 70 / 67 per part.

    A GSM-7 extension character takes two septets and is never split across parts; a UCS-2
    surrogate pair (most emoji) takes two units and is never split either.
    """
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        units = [2 if c in _GSM7_EXTENSION else 1 for c in text]
        return SmsSegments("GSM-7", *_split(units, single=160, multi=153))
    units = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsSegments("UCS-2", *_split(units, single=70, multi=67))


def _split(units: list[int], *, single: int, multi: int) -> tuple[int, int]:
    total = sum(units)
    if total <= single:
        return (1 if units else 0), single - total
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return segments, multi - used
