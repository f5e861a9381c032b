from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.automation.safety import refusal_reason
from agent_tui.config import parse_config
from agent_tui.errors import ConfigError
from agent_tui.model import AutoFlags, Channel

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)


def reason(sender: str = "kunde@example.org", channel: Channel = Channel.EMAIL,
           auto: AutoFlags | None = None, last: datetime | None = None) -> str | None:
    return refusal_reason(channel=channel, sender=sender, auto=auto or AutoFlags(),
                          own_addresses=["service@shop.example"], last_auto_reply=last,
                          now=NOW, window=WINDOW)


def test_a_person_may_get_an_automatic_answer() -> None:
    assert reason() is None


@pytest.mark.parametrize("flags, words", [
    (AutoFlags(auto_submitted=True), "automatically"),
    (AutoFlags(bulk=True), "bulk"),
    (AutoFlags(list_mail=True), "list"),
    (AutoFlags(bounce=True), "bounce"),
    (AutoFlags(null_sender=True), "Return-Path"),
])
def test_rfc3834_flags_refuse(flags: AutoFlags, words: str) -> None:
    refused = reason(auto=flags)
    assert refused is not None and words in refused


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.org", "postmaster@example.org",
                                    "owner-list@example.org", "list-request@example.org",
                                    "no-reply@example.org", "Service@Shop.Example", ""])
def test_robot_and_own_senders_refused(sender: str) -> None:
    assert reason(sender) is not None


def test_window_per_contact() -> None:
    assert reason(last=NOW - timedelta(hours=23)) is not None
    assert reason(last=NOW - timedelta(hours=25)) is None


def test_chat_channels_ignore_mail_only_flags_but_keep_the_window() -> None:
    assert reason("+491701234567", Channel.SMS) is None
    assert reason("+491701234567", Channel.SMS, last=NOW - timedelta(hours=1)) is not None


def test_business_hours_across_a_weekend() -> None:
    hours = BusinessHours.parse("Mon-Fri 09:00-18:00, Sat 10:00-14:00", "Europe/Berlin")
    friday_evening = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)      # 18:00 Berlin: closed
    assert not hours.is_open(friday_evening)
    assert hours.is_open(datetime(2026, 11, 20, 16, 59, tzinfo=UTC))
    assert hours.is_open(datetime(2026, 11, 21, 9, 30, tzinfo=UTC))  # Sat 10:30 Berlin
    assert not hours.is_open(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # Sunday
    # Fri 17:00 Berlin -> Mon 10:00 Berlin: 1 h Friday + 4 h Saturday + 1 h Monday.
    start = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
    end = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert hours.open_seconds_between(start, end) == 6 * 3600


def test_holidays_are_closed_all_day(tmp_path: Path) -> None:
    path = tmp_path / "agent-tui.toml"
    config = parse_config('[automation]\nbusiness_hours = "Mon-Fri 09:00-18:00"\n'
                          'timezone = "Europe/Berlin"\n'
                          'holidays = [2026-12-24, "2026-12-25"]\n', path)
    hours = BusinessHours.from_config(config.automation)
    assert hours is not None
    assert not hours.is_open(datetime(2026, 12, 24, 10, 0, tzinfo=UTC))      # Thursday
    assert hours.is_open(datetime(2026, 12, 23, 10, 0, tzinfo=UTC))
    # Wed 17:00 Berlin -> Mon 28 Dec 10:00 Berlin: 1 h Wednesday, two holidays, 1 h Monday.
    assert hours.open_seconds_between(datetime(2026, 12, 23, 16, 0, tzinfo=UTC),
                                      datetime(2026, 12, 28, 9, 0, tzinfo=UTC)) == 2 * 3600
    with pytest.raises(ConfigError, match=r"holidays.*expected dates like 2026-12-24"):
        parse_config('[automation]\nholidays = ["24.12.2026"]\n', path)


def test_opening_time_counts_real_seconds_across_a_dst_change() -> None:
    # 29 March 2026, Berlin: clocks go from 02:00 to 03:00. 01:00-04:00 that day is two hours.
    hours = BusinessHours.parse("Sun 01:00-04:00", "Europe/Berlin")
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    monday = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    assert hours.open_seconds_between(saturday, monday) == 2 * 3600
    # And on the way back (25 October 2026: 03:00 -> 02:00) the same span is four hours.
    assert hours.open_seconds_between(datetime(2026, 10, 24, tzinfo=UTC),
                                      datetime(2026, 10, 26, tzinfo=UTC)) == 4 * 3600


@pytest.mark.parametrize("text", ["Mon-Fry 09:00-18:00", "Mon-Fri 9-18", "Mon 18:00-09:00"])
def test_bad_business_hours_name_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match="business_hours"):
        BusinessHours.parse(text, "Europe/Berlin")


def test_unknown_time_zone() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        BusinessHours.parse("Mon-Fri 09:00-18:00", "Mars/Olympus")
