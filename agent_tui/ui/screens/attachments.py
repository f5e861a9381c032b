"""w in a conversation: choose a message with attachments and the directory to save them to.

The newest message with attachments is chosen first; up/down choose another while the
directory is typed. Saving itself (engine.attachments) never overwrites a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from agent_tui.model import Message
from agent_tui.ui.format import CHANNEL_LETTER, human_size, plain_line


def default_directory() -> str:
    """~/Downloads if there is one, else the directory agent-tui was started in."""
    downloads = Path.home() / "Downloads"
    return "~/Downloads" if downloads.is_dir() else str(Path.cwd())


def message_option(m: Message, chosen: bool) -> Text:
    """One message as the chooser lists it: when, who, and its files. The chosen one is marked
    with ▶, not by colour alone."""
    text = Text("▶ " if chosen else "  ", style="bold")
    text.append(f"{CHANNEL_LETTER.get(m.channel, '?')} {m.sent_at.astimezone():%Y-%m-%d %H:%M} ",
                style="dim")
    text.append_text(plain_line(m.sender_name or m.sender, style="bold", limit=24))
    for a in m.attachments:
        text.append("\n    ")
        text.append_text(plain_line(f"📎 {a.name} · {a.content_type} · {human_size(a.size)}",
                                    limit=70))
    return text


class SaveAttachmentsScreen(ModalScreen[tuple[Message, str] | None]):
    """Returns (message, directory as typed) on enter, None on escape."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="attachments.cancel"),
        Binding("up", "choose(-1)", "Previous message", show=False, id="attachments.up"),
        Binding("down", "choose(1)", "Next message", show=False, id="attachments.down"),
    ]

    def __init__(self, messages: list[Message], directory: str) -> None:
        """`messages`: those with attachments, newest first."""
        super().__init__()
        self.messages = messages
        self.directory = directory

    def compose(self) -> ComposeResult:
        with Vertical(id="save-attachments"):
            yield Label("Save the attachments of (↑/↓ choose):")
            yield OptionList(*(Option(message_option(m, i == 0))
                               for i, m in enumerate(self.messages)),
                             id="attachment-messages")
            yield Label("To directory (made if missing; no file is ever overwritten):")
            yield Input(value=self.directory, id="attachment-directory")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.can_focus = False       # the directory has the keyboard; up/down choose here
        self.query_one(Input).focus()

    @property
    def chosen(self) -> Message:
        return self.messages[self.query_one(OptionList).highlighted or 0]

    def action_choose(self, step: int) -> None:
        options = self.query_one(OptionList)
        index = (options.highlighted or 0) + step
        options.highlighted = min(max(index, 0), len(self.messages) - 1)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        options = self.query_one(OptionList)
        for index, message in enumerate(self.messages):
            options.replace_option_prompt_at_index(
                index, message_option(message, index == event.option_index))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one(Input).focus()       # a mouse click on a message

    def on_input_submitted(self, event: Input.Submitted) -> None:
        directory = event.value.strip()
        if directory:
            self.dismiss((self.chosen, directory))

    def action_cancel(self) -> None:
        self.dismiss(None)
