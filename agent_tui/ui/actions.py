"""Conversation actions shared by the inbox and the conversation screen (close, snooze, tag...)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from agent_tui.model import ConversationStatus
from agent_tui.ui.widgets.prompt import PromptScreen

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

Action = Callable[["AgentApp", int], None]

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_snooze(text: str, now: datetime) -> datetime | None:
    """'30m', '2h', '1d', '1w' or 'tomorrow' (09:00 local) -> when the conversation wakes."""
    text = text.strip().lower()
    if text in ("tomorrow", "morgen"):
        local = now.astimezone()
        return (local + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    m = _DURATION.match(text)
    if not m:
        return None
    return now + timedelta(**{_UNITS[m[2].lower()]: int(m[1])})


def close(app: AgentApp, conversation_id: int) -> None:
    app.run_blocking(lambda: app.store.set_status(conversation_id, ConversationStatus.CLOSED))
    app.notify(f"Conversation {conversation_id} closed", timeout=2)


def assign_to_me(app: AgentApp, conversation_id: int) -> None:
    current = app.store.get_conversation(conversation_id).assignee
    agent = None if current == app.agent_name else app.agent_name
    app.run_blocking(lambda: app.store.assign(conversation_id, agent))
    app.notify(f"Assigned to {agent}" if agent else "Unassigned", timeout=2)


def snooze(app: AgentApp, conversation_id: int) -> None:
    def done(answer: str | None) -> None:
        if answer is None:
            return
        until = parse_snooze(answer, app.clock())
        if until is None:
            app.notify(f"Cannot read {answer!r}: use 30m, 2h, 1d, 1w or tomorrow",
                       severity="error")
            return
        app.run_blocking(lambda: app.store.set_status(conversation_id,
                                                      ConversationStatus.SNOOZED, until))
        app.notify(f"Snoozed until {until.astimezone():%a %H:%M}", timeout=2)

    app.push_screen(PromptScreen("Snooze for (30m, 2h, 1d, 1w, tomorrow):", "2h"), done)


def tag(app: AgentApp, conversation_id: int) -> None:
    def done(answer: str | None) -> None:
        if not answer:
            return
        for name in answer.split():
            change = app.store.remove_tag if name.startswith("-") else app.store.add_tag
            app.run_blocking(partial(change, conversation_id, name.removeprefix("-")))

    app.push_screen(PromptScreen("Tags (space-separated; -tag removes):"), done)


def merge(app: AgentApp, conversation_id: int) -> None:
    """m: this conversation's contact absorbs another one, named by address or contact id."""
    keep = app.store.get_conversation(conversation_id).contact_id

    def done(answer: str | None) -> None:
        if not answer:
            return
        other = int(answer) if answer.isdigit() else app.store.find_contact(answer)
        if other is None:
            app.notify(f"No contact with address {answer!r}", severity="error")
            return
        app.run_blocking(lambda: app.store.merge_contacts(keep, other))
        app.notify(f"Contact {other} merged into this one", timeout=3)

    app.push_screen(PromptScreen("Merge with (address or contact id):"), done)
