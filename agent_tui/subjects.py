"""Mail subjects: the reply and forward prefixes of many languages, for threading and replies.

Shared by the store (threading by normalised subject, DESIGN.md "Conversation") and the mail
connector (the subject of a reply), so neither imports the other.
"""

from __future__ import annotations

import re

from agent_tui.sanitize import clean_line

__all__ = ["normalise_subject", "reply_subject"]

# Reply prefixes (en, de, nl, nordic, pl, pt/es, it) with an optional counter ("Re[2]:", "AW(3):").
_REPLY_PREFIX = r"(?:re|aw|antw|antwort|sv|vs|odp|res|rv|ynt)"
_FORWARD_PREFIX = r"(?:fwd?|wg|tr|doorst|vb|enc|i)"
_COUNTER = r"(?:\[\d+\]|\(\d+\))?"
_REPLY_PREFIXES = re.compile(rf"^(?:\s*{_REPLY_PREFIX}{_COUNTER}\s*[:\uff1a]\s*)+", re.IGNORECASE)
_ANY_PREFIXES = re.compile(
    rf"^(?:\s*(?:{_REPLY_PREFIX}|{_FORWARD_PREFIX}){_COUNTER}\s*[:\uff1a]\s*)+", re.IGNORECASE)


def normalise_subject(subject: str) -> str:
    """The subject for threading: reply/forward prefixes gone, case and spacing folded."""
    return " ".join(_ANY_PREFIXES.sub("", subject).split()).casefold()


def reply_subject(subject: str) -> str:
    """`Re: ` + the subject without its stacked reply prefixes (no "Re: AW: Re:")."""
    rest = " ".join(_REPLY_PREFIXES.sub("", clean_line(subject)).split())
    return f"Re: {rest}" if rest else "Re:"
