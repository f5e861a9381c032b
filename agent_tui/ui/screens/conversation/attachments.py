"""A conversation's attachments: which messages have them, and `w`, which saves one message's
files into a directory (never overwriting) off the UI thread and reports where they went."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.notifications import SeverityLevel
from textual.screen import Screen

from agent_tui.engine.attachments import SavedAttachment, media_fetcher, save_attachments
from agent_tui.model import Message

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

SAVE_KEY, SAVE_ID = "w", "conversation.save_attachments"


def with_attachments(history: list[Message]) -> list[Message]:
    """The messages that have attachments, newest first."""
    return [m for m in reversed(history) if m.attachments]


def attachments_note(app: AgentApp, history: list[Message]) -> str:
    """" · 📎 3 (w saves)" for the header, or "" when nothing here has attachments."""
    files = sum(len(m.attachments) for m in history)
    if not files:
        return ""
    key = app.keymap.get(SAVE_ID, SAVE_KEY).split(",")[0]
    return f" · 📎 {files} ({key} saves)"


def save_report(saved: list[SavedAttachment], directory: str) -> tuple[str, SeverityLevel]:
    """The notification after `w`: where each file went, and why any was not saved."""
    written = [s.path for s in saved if s.path is not None]
    lines = []
    if written:
        lines.append(f"Saved {len(written)} file{'s' if len(written) > 1 else ''} "
                     f"to {written[0].parent}:")
        lines.extend(f"  {path.name}" for path in written)
    failed = [s for s in saved if s.path is None]
    if failed:
        lines.append(f"Not saved{' to ' + directory if not written else ''}:")
        lines.extend(f"  {s.attachment.name}: {s.problem}" for s in failed)
    severity: SeverityLevel = "information" if not failed else "warning" if written else "error"
    return "\n".join(lines), severity


def choose_and_save(screen: Screen[None], app: AgentApp, messages: list[Message]) -> None:
    """Ask for the message (the newest first) and a directory, then save in a worker thread of
    `screen`."""
    from agent_tui.ui.screens.attachments import SaveAttachmentsScreen, default_directory

    if not messages:
        screen.notify("No attachments in this conversation", timeout=2)
        return

    def done(answer: tuple[Message, str] | None) -> None:
        if answer is not None:
            message, directory = answer
            app.attachment_directory = directory
            screen.run_worker(partial(_save, app, message, directory), thread=True,
                              group="save-attachments")

    app.push_screen(SaveAttachmentsScreen(
        messages, app.attachment_directory or default_directory()), done)


def _save(app: AgentApp, message: Message, directory: str) -> None:
    """Reads the mail source and writes files: off the UI thread. The report goes to the app,
    so it is shown even if the screen was closed meanwhile."""
    try:
        saved = save_attachments(app.reads, message, directory, media_fetcher(app.config))
    except OSError as exc:
        app.deliver(partial(app.notify, f"Cannot save to {directory}: "
                            f"{exc.strerror or exc}", severity="error", markup=False))
        return
    report, severity = save_report(saved, directory)
    app.deliver(partial(app.notify, report, title="Attachments", severity=severity,
                        markup=False, timeout=8))
