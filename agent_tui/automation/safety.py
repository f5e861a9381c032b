"""Whether a message may get an automatic answer at all (DESIGN.md invariant 5, RFC 3834).

Each check returns the reason it refuses, so `run --once` can say why it stayed silent.
FreeScout, Zammad and Chatwoot each check only part of this list, and each has had mail-loop bug
reports; we check all of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from agent_tui.model import AutoFlags, Channel

# RFC 3834 §2: responders MAY refuse these local parts; no-reply senders read no answers either.
_ROBOT_LOCAL_PARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply",
                      "do-not-reply", "bounce", "bounces")


def robot_sender(address: str) -> bool:
    local = address.lower().partition("@")[0]
    return (local in _ROBOT_LOCAL_PARTS or local.startswith("owner-")
            or local.endswith("-request") or local.startswith("bounce"))


def refusal_reason(*, channel: Channel, sender: str, auto: AutoFlags,
                   own_addresses: Iterable[str], last_auto_reply: datetime | None,
                   now: datetime, window: timedelta) -> str | None:
    """None when an automatic reply is allowed, else the reason it is not."""
    sender_lc = sender.strip().lower()
    if not sender_lc:
        return "no sender address (null return path)"
    if sender_lc in {a.strip().lower() for a in own_addresses if a}:
        return "sent from one of our own addresses"
    if channel is Channel.EMAIL:
        if auto.null_sender:
            return "empty Return-Path (RFC 3834: never answer a null sender)"
        if auto.bounce:
            return "a bounce or delivery report"
        if auto.auto_submitted:
            return "sent automatically (Auto-Submitted / X-Autoreply / X-Loop)"
        if auto.list_mail:
            return "mailing-list mail (List-Id / List-Unsubscribe / Precedence: list)"
        if auto.bulk:
            return "bulk mail (Precedence: bulk/junk)"
        if robot_sender(sender_lc):
            return f"robot sender {sender_lc}"
    if last_auto_reply is not None and now - last_auto_reply < window:
        hours = window.total_seconds() / 3600
        return f"already answered automatically within {hours:g} h"
    return None
