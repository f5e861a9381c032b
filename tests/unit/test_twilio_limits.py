"""SMS segment counting, the WhatsApp window and E.164 normalisation (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_tui.channels import sms_segments, whatsapp_window_open
from connectors.twilio import normalise_phone


@pytest.mark.parametrize(("text", "expected"), [
    ("", ("GSM-7", 0, 160)),
    ("a" * 160, ("GSM-7", 1, 0)),
    ("a" * 161, ("GSM-7", 2, 2 * 153 - 161)),
    ("Grüße aus Köln, Ihr Paket ist da!", ("GSM-7", 1, 160 - 33)),
    ("€" * 80, ("GSM-7", 1, 0)),                  # extension characters take two septets
    ("€" * 81, ("GSM-7", 2, 153 - 10)),           # 76 fit in part one; a pair is never split
    ("a" * 152 + "{" + "b", ("GSM-7", 1, 5)),
    ("a" * 153 * 3, ("GSM-7", 3, 0)),
    ("Dziękuję", ("UCS-2", 1, 70 - 8)),
    ("ł" * 70, ("UCS-2", 1, 0)),
    ("ł" * 71, ("UCS-2", 2, 2 * 67 - 71)),
    ("😀" * 35, ("UCS-2", 1, 0)),                 # a surrogate pair is two units
    ("a" + "😀" * 34, ("UCS-2", 1, 1)),
    ("a" + "😀" * 35, ("UCS-2", 2, 67 - 4)),      # "a" + 33 emoji fill part one
    ("ab" + "😀" * 35, ("UCS-2", 2, 67 - 6)),     # 66 units: the 34th pair is not split
])
def test_sms_segments(text: str, expected: tuple[str, int, int]) -> None:
    assert tuple(sms_segments(text)) == expected


def test_whatsapp_window() -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    assert whatsapp_window_open(now - timedelta(hours=23, minutes=59), now)
    assert not whatsapp_window_open(now - timedelta(hours=24), now)
    assert not whatsapp_window_open(None, now)
    naive = datetime(2025, 6, 2, 11, 0)                    # stored without a zone: UTC
    assert whatsapp_window_open(naive, now)


@pytest.mark.parametrize(("raw", "expected"), [
    ("0170 1234567", "+491701234567"),
    ("whatsapp:+491701234567", "+491701234567"),
    ("+49 (170) 123-4567", "+491701234567"),
    ("+14155552671", "+14155552671"),
])
def test_phone_numbers_become_e164(raw: str, expected: str) -> None:
    assert normalise_phone(raw, "DE") == (expected, [])


def test_unknown_number_format_is_kept_with_a_note() -> None:
    number, defects = normalise_phone("SHOP-INFO", "DE")
    assert number == "SHOP-INFO"
    assert len(defects) == 1 and "SHOP-INFO" in defects[0]
