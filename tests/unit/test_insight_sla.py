"""Service levels: due times and waited fractions with business hours, weekends and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.config import SlaConfig
from agent_tui.insight.sla import (
    due_at,
    first_unanswered_inbound,
    open_seconds_between,
    waited_fraction,
)
from agent_tui.model import (
    AutoFlags,
    Channel,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    Priority,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOURS = BusinessHours.parse("Mon-Fri 09:00-18:00", "Europe/Berlin")
SLA = SlaConfig(email=240, sms=60, whatsapp=15, telegram=15)


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in March 2026 in Berlin (6 March is a Friday, 9 March a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN)


def conversation(channel: Channel = Channel.EMAIL, last_inbound_at: datetime | None = None,
                 status: ConversationStatus = ConversationStatus.OPEN, id: int = 1) -> Conversation:
    return Conversation(id=id, contact_id=1, channel=channel, account="shop", subject="",
                        status=status, assignee=None, tags=[], priority=Priority.NORMAL,
                        first_inbound_at=last_inbound_at, last_inbound_at=last_inbound_at,
                        last_activity_at=last_inbound_at, due_at=None, unread=1)


def message(direction: Direction, sent_at: datetime) -> Message:
    return Message(id=0, conversation_id=1, account="shop", channel=Channel.EMAIL,
                   direction=direction, provider_id=str(sent_at), sender="", sender_name="",
                   recipients=[], sent_at=sent_at, subject="", text="", attachments=[],
                   auto=AutoFlags())


def test_friday_evening_mail_is_due_on_monday() -> None:
    # One hour of Friday counts, the other three come on Monday from 9:00.
    assert due_at(berlin(6, 17), Channel.EMAIL, SLA, HOURS) == berlin(9, 12)


def test_weekend_mail_waits_for_monday_opening() -> None:
    assert due_at(berlin(7, 11), "whatsapp", SLA, HOURS) == berlin(9, 9, 15)


def test_holiday_monday_moves_it_to_tuesday() -> None:
    assert due_at(berlin(6, 17), Channel.EMAIL, SLA, HOURS, {date(2026, 3, 9)}) == berlin(10, 12)


def test_within_opening_hours_it_is_plain_addition() -> None:
    assert due_at(berlin(4, 10), Channel.SMS, SLA, HOURS) == berlin(4, 11)


def test_without_business_hours_the_clock_always_runs() -> None:
    assert due_at(berlin(6, 17), Channel.EMAIL, SLA) == berlin(6, 21)


def test_due_at_is_utc() -> None:
    assert due_at(berlin(4, 10), Channel.SMS, SLA, HOURS).tzinfo is UTC


def test_due_at_across_daylight_saving_change() -> None:
    # Clocks go forward on Sunday 29 March 2026; Friday 27th 17:00 + 4 opening hours.
    assert due_at(berlin(27, 17), Channel.EMAIL, SLA, HOURS) == berlin(30, 12)


def test_waited_fraction_counts_opening_time_over_the_weekend() -> None:
    convo = conversation(last_inbound_at=berlin(6, 17))
    # Friday 17-18 and Monday 9-10: two of four hours.
    assert waited_fraction(convo, berlin(9, 10), SLA, HOURS) == pytest.approx(0.5)
    # The weekend adds nothing.
    assert waited_fraction(convo, berlin(8, 23), SLA, HOURS) == pytest.approx(0.25)
    # Overdue on Monday afternoon.
    assert waited_fraction(convo, berlin(9, 15), SLA, HOURS) == pytest.approx(1.75)
    # Round the clock it would be far overdue already.
    assert waited_fraction(convo, berlin(9, 10), SLA) > 10


def test_holidays_do_not_count_as_waiting() -> None:
    convo = conversation(last_inbound_at=berlin(6, 17))
    holiday = {date(2026, 3, 9)}
    assert waited_fraction(convo, berlin(10, 10), SLA, HOURS, holiday) == pytest.approx(0.5)
    assert open_seconds_between(berlin(9, 0), berlin(10, 0), HOURS, holiday) == 0


def test_waited_fraction_uses_the_first_unanswered_message() -> None:
    convo = conversation(last_inbound_at=berlin(4, 12))
    assert waited_fraction(convo, berlin(4, 13), SLA, HOURS,
                           waiting_since=berlin(4, 10)) == pytest.approx(0.75)


@pytest.mark.parametrize("status", [ConversationStatus.CLOSED, ConversationStatus.SNOOZED,
                                    ConversationStatus.PENDING])
def test_parked_conversations_are_not_waiting(status: ConversationStatus) -> None:
    convo = conversation(last_inbound_at=berlin(2, 9), status=status)
    assert waited_fraction(convo, berlin(6, 9), SLA, HOURS) == 0.0


def test_first_unanswered_inbound() -> None:
    inbound, outbound = Direction.INBOUND, Direction.OUTBOUND
    assert first_unanswered_inbound([]) is None
    assert first_unanswered_inbound([message(inbound, berlin(4, 9)),
                                     message(outbound, berlin(4, 10)),
                                     message(inbound, berlin(4, 11)),
                                     message(inbound, berlin(4, 12))]) == berlin(4, 11)
    assert first_unanswered_inbound([message(inbound, berlin(4, 9)),
                                     message(outbound, berlin(4, 10))]) is None
