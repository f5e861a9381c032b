"""Turning model objects into cells and lines of Rich Text: always plain, never markup."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from agent_tui.model import AttachmentInfo, Channel, Contact, Conversation, Priority
from agent_tui.sanitize import clean_line, clean_text

CHANNEL_LETTER = {Channel.EMAIL: "M", Channel.SMS: "S", Channel.WHATSAPP: "W",
                  Channel.TELEGRAM: "T"}


def plain(text: str, style: str = "") -> Text:
    """Customer text as data: sanitised again at display, shown literally (no markup)."""
    return Text(clean_text(text), style=style)


def plain_line(text: str, style: str = "", limit: int | None = None) -> Text:
    line = clean_line(text)
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return Text(line, style=style)


def waited(since: datetime | None, now: datetime) -> str:
    """How long a customer has waited, at a glance: `45m`, `5h 07m`, `1d 21h`, `12d`."""
    if since is None:
        return ""
    minutes = max(int((now - since).total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h {minutes % 60:02d}m"
    if hours < 7 * 24:
        return f"{hours // 24}d {hours % 24}h"
    return f"{hours // 24}d"


def human_size(size: int) -> str:
    """1234567 -> "1.2 MB"; 0 means the provider did not say."""
    if size <= 0:
        return "size unknown"
    if size < 1000:
        return f"{size} B"
    value = size / 1000
    for unit in ("KB", "MB"):
        if value < 999.95:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def attachment_line(a: AttachmentInfo) -> Text:
    """📎 name · type · size, one line (the name is shown as the store keeps it: sanitised)."""
    return plain_line(f"📎 {a.name} · {a.content_type or 'unknown type'} · {human_size(a.size)}",
                      style="cyan")


def conversation_cells(c: Conversation, now: datetime, fraction: float) -> tuple[Text, ...]:
    """The inbox row; the table crops each cell to its column, with an ellipsis."""
    overdue = fraction >= 1.0
    urgent = c.priority is Priority.HIGH
    mark = Text(("!" if overdue else " ") + ("↑" if urgent else " "),
                style="bold red" if overdue or urgent else "")
    who = _cell(c.contact_name or c.contact_address)
    topic = _cell(c.subject or c.preview)
    if c.unread:
        who.stylize("bold")
        topic.stylize("bold")
    return (
        mark,
        Text(CHANNEL_LETTER.get(c.channel, "?"), style="bold"),
        who,
        topic,
        Text(waited(c.waiting_since, now), style="red" if overdue else ""),
        Text(str(c.status)),
        _cell(c.assignee or ""),
        _cell(",".join(c.tags)),
    )


def _cell(text: str) -> Text:
    cell = plain_line(text)
    cell.no_wrap, cell.overflow = True, "ellipsis"
    return cell


def contact_label(c: Contact) -> str:
    """"contact 7 · Kim Berger · email kim@example.org, phone +49170…": names both sides of a
    merge or an erase unmistakably (the id is what the CLI takes)."""
    addresses = ", ".join(f"{i.kind} {i.address}" for i in c.identities) or "no address left"
    name = c.display_name.strip()
    return clean_line(f"contact {c.id} · {name} · {addresses}" if name
                      else f"contact {c.id} · {addresses}")
