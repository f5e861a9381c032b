"""Service levels: when a conversation's reply is due, and how far into its target it is.

Targets come from `[sla]` (minutes per channel). With business hours, only opening time counts: a
mail that arrives on Friday evening with a four-hour target is due on Monday at 13:00 when the shop
opens at 9. Holidays (local dates) count as closed all day. Without business hours the clock runs
around the clock. The inbox orders by `waited_fraction`, largest first: above 1.0 is overdue.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, timedelta

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.config import SlaConfig
from agent_tui.model import Channel, Conversation, ConversationStatus, Direction, Message

# Conversations in these states are not waiting for us: a person parked or finished them.
NOT_WAITING = frozenset({ConversationStatus.PENDING, ConversationStatus.SNOOZED,
                         ConversationStatus.CLOSED})
# How far ahead to look for opening time before giving up on the business hours (a calendar
# whose every open day is a holiday): then the clock runs around the clock.
MAX_SEARCH_DAYS = 3 * 366


def target_seconds(channel: Channel | str, sla: SlaConfig) -> float:
    return float(sla.minutes(str(channel)) * 60)


def due_at(first_unanswered_inbound_at: datetime, channel: Channel | str, sla: SlaConfig,
           hours: BusinessHours | None = None,
           holidays: Collection[date] = ()) -> datetime:
    """When the reply to a message that came in at `first_unanswered_inbound_at` is due (UTC)."""
    start = first_unanswered_inbound_at.astimezone(UTC)
    remaining = target_seconds(channel, sla)
    if hours is None:
        return start + timedelta(seconds=remaining)
    for opens, closes in _open_intervals(start, hours, holidays):
        length = (closes - opens).total_seconds()
        if remaining <= length:
            return opens + timedelta(seconds=remaining)
        remaining -= length
    return start + timedelta(seconds=target_seconds(channel, sla))


def open_seconds_between(start: datetime, end: datetime, hours: BusinessHours | None = None,
                         holidays: Collection[date] = ()) -> float:
    """Seconds that count against a target between two instants."""
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds()
    total = hours.open_seconds_between(start, end)
    for holiday in holidays:
        day_start = datetime.combine(holiday, datetime.min.time(), hours.zone)
        day_end = datetime.combine(holiday + timedelta(days=1), datetime.min.time(), hours.zone)
        lo, hi = max(start, day_start), min(end, day_end)
        if hi > lo:
            total -= hours.open_seconds_between(lo, hi)
    return max(total, 0.0)


def waited_fraction(conversation: Conversation, now: datetime, sla: SlaConfig,
                    hours: BusinessHours | None = None, holidays: Collection[date] = (),
                    waiting_since: datetime | None = None) -> float:
    """How far into its target a conversation is: 0 not waiting, 1.0 due now, above 1.0 overdue.

    `waiting_since` is the first inbound message after our last reply (`first_unanswered_inbound`
    finds it in a message list). Without it the conversation's last inbound time stands in, which
    under-counts only when the customer wrote several times without an answer.
    """
    if conversation.status in NOT_WAITING:
        return 0.0
    since = waiting_since or conversation.last_inbound_at
    if since is None:
        return 0.0
    target = target_seconds(conversation.channel, sla)
    if target <= 0:
        return float("inf")
    return open_seconds_between(since, now, hours, holidays) / target


def first_unanswered_inbound(messages: Iterable[Message]) -> datetime | None:
    """The first inbound message after the last outbound one, or None when we spoke last."""
    waiting: datetime | None = None
    for message in sorted(messages, key=lambda m: m.sent_at):
        if message.direction is Direction.OUTBOUND:
            waiting = None
        elif waiting is None:
            waiting = message.sent_at
    return waiting


def _open_intervals(start: datetime, hours: BusinessHours,
                    holidays: Collection[date]) -> Iterable[tuple[datetime, datetime]]:
    """Opening intervals from `start` on, in order, in UTC."""
    day = start.astimezone(hours.zone).date()
    for _ in range(MAX_SEARCH_DAYS):
        if day not in holidays:
            spans = sorted((s for s in hours.spans if day.weekday() in s.days),
                           key=lambda s: s.start)
            for span in spans:
                # UTC before arithmetic: aware datetimes in one zone subtract as wall-clock times.
                opens = datetime.combine(day, span.start, hours.zone).astimezone(UTC)
                closes = datetime.combine(day, span.end, hours.zone).astimezone(UTC)
                lo = max(opens, start)
                if closes > lo:
                    yield lo, closes
        day += timedelta(days=1)
