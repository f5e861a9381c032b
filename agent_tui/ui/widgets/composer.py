"""The reply/note editor under the timeline, with what the channel allows (SMS segments,
Telegram length, the WhatsApp 24 h window) on the line above it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TextArea

from agent_tui.channels import TELEGRAM_MAX_TEXT, sms_segments, whatsapp_window_open
from agent_tui.model import Channel
from agent_tui.ui.format import plain_line

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

REPLY = "reply"
NOTE = "note"


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a reply goes: one of the contact's conversations and the address in it."""

    conversation_id: int
    channel: Channel
    address: str
    last_inbound_at: datetime | None = None


def channel_limits(target: ReplyTarget, text: str, now: datetime) -> str:
    """What the channel makes of this text, or "" when nothing is worth saying."""
    if target.channel is Channel.SMS:
        seg = sms_segments(text)
        return f"{seg.segments} SMS ({seg.encoding}, {seg.chars_left} left)"
    if target.channel is Channel.TELEGRAM:
        return f"{len(text)}/{TELEGRAM_MAX_TEXT}"
    if target.channel is Channel.WHATSAPP and not whatsapp_window_open(target.last_inbound_at,
                                                                       now):
        return "outside the 24 h window: WhatsApp needs a template"
    return ""


class Composer(Vertical):
    """Hidden until `open`; `mode` is REPLY or NOTE while open, None when closed."""

    def __init__(self) -> None:
        super().__init__(id="composer-box")
        self.mode: str | None = None
        self.target: ReplyTarget | None = None
        self.other_targets = 0          # how many other identities `i` can switch to

    def compose(self) -> ComposeResult:
        yield Static("", id="composer-info", markup=False)
        yield TextArea("", id="composer", soft_wrap=True, show_line_numbers=False)

    def on_mount(self) -> None:
        self.editor.display = False
        self.update_info()

    @property
    def editor(self) -> TextArea:
        return self.query_one("#composer", TextArea)

    @property
    def text(self) -> str:
        return self.editor.text

    def open(self, mode: str, text: str = "") -> None:
        self.mode = mode
        self.editor.display = True
        if text:
            self.editor.load_text(text)
        self.editor.focus()
        self.update_info()

    def close(self) -> None:
        self.editor.load_text("")
        self.editor.display = False
        self.mode = None
        self.update_info()

    def set_text(self, text: str) -> None:
        self.editor.load_text(text)

    def insert(self, text: str) -> None:
        self.editor.insert(text)

    def set_target(self, target: ReplyTarget | None, other_targets: int = 0) -> None:
        self.target = target
        self.other_targets = other_targets
        self.update_info()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.update_info()

    def update_info(self) -> None:
        info = self.query_one("#composer-info", Static)
        if self.mode is None or self.target is None:
            info.update("r reply · n note · 1-9 take a suggestion")
            return
        if self.mode == NOTE:
            info.update("Internal note (never sent) · ctrl+s save · escape cancel")
            return
        target = self.target
        parts = [f"Reply by {target.channel} to {target.address}", "ctrl+s send",
                 "ctrl+e $EDITOR", "alt+1-9 insert"]
        if self.other_targets:
            parts.append(f"i: {self.other_targets} other identit"
                         + ("y" if self.other_targets == 1 else "ies"))
        limits = channel_limits(target, self.text, cast("AgentApp", self.app).clock())
        if limits:
            parts.append(limits)
        info.update(plain_line(" · ".join(parts)))   # the address came from outside
