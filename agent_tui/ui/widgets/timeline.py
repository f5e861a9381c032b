"""A contact's messages across channels and conversations, with internal notes, oldest first."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from agent_tui.model import Direction, Message, Note
from agent_tui.ui.format import CHANNEL_LETTER, attachment_line, plain, plain_line

QUOTE_FOLD_LINES = 3


def fold_quotes(text: str) -> str:
    """Collapse quoted mail history ("> ..." runs) into one line."""
    out: list[str] = []
    run = 0
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            run += 1
            continue
        if run:
            out.append(f"[… {run} quoted lines folded, z shows them]" if run > QUOTE_FOLD_LINES
                       else "> …")
            run = 0
        out.append(line)
    if run:
        out.append(f"[… {run} quoted lines folded, z shows them]")
    return "\n".join(out)


def message_block(m: Message, conversation_id: int, *, show_quotes: bool) -> Text:
    inbound = m.direction is Direction.INBOUND
    head = Text()
    head.append(f"{CHANNEL_LETTER.get(m.channel, '?')} ", style="bold")
    head.append(f"{m.sent_at.astimezone():%Y-%m-%d %H:%M} ", style="dim")
    head.append_text(plain_line(m.sender_name or m.sender,
                                style="bold" if inbound else "bold green"))
    if not inbound:
        head.append(f"  → {m.delivery_status or 'sent'}", style="green")
    if m.edited:
        head.append("  (edited)", style="dim")
    if m.conversation_id != conversation_id:
        head.append(f"  (conversation #{m.conversation_id})", style="dim")
    body = m.text if show_quotes else fold_quotes(m.text)
    block = Text.assemble(head, "\n", plain(body.rstrip() or "(no text)"))
    for a in m.attachments:
        block.append("\n")
        block.append_text(attachment_line(a))
    if m.defects:
        block.append("\n")
        block.append_text(plain_line("defects: " + "; ".join(m.defects[:3]), style="dim"))
    return block


def note_block(note: Note) -> Text:
    return Text.assemble(
        Text(f"✎ note {note.created_at.astimezone():%Y-%m-%d %H:%M} ", style="yellow"),
        plain_line(note.author, style="yellow bold"), "\n", plain(note.text))


class MessageTimeline(VerticalScroll):
    """Scrolls; the newest message is at the bottom and shown first."""

    def __init__(self) -> None:
        super().__init__(id="timeline")

    def compose(self) -> ComposeResult:
        yield Static("", id="timeline-body")

    def show(self, history: list[Message], notes: list[Note], conversation_id: int, *,
             show_quotes: bool) -> None:
        items: list[tuple[datetime, Text]] = [
            (m.sent_at, message_block(m, conversation_id, show_quotes=show_quotes))
            for m in history]
        items.extend((note.created_at, note_block(note)) for note in notes)
        items.sort(key=lambda item: item[0])
        parts: list[Text] = []
        for _, block in items:
            parts.extend([block, Text("")])
        self.query_one("#timeline-body", Static).update(Group(*parts))
        self.scroll_end(animate=False)
