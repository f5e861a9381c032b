"""A yes/no question in a modal: the text says exactly what will happen, y or enter confirms."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp


class ConfirmScreen(ModalScreen[bool]):
    """Returns True on y/enter, False on n/escape."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, body: Text | str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.title_text, id="confirm-title", markup=False)
            # Text, never markup: contact names and reasons come from customers' messages.
            yield Static(self.body if isinstance(self.body, Text) else Text(self.body),
                         id="confirm-body")
            yield Label(self._keys(), id="confirm-keys", markup=False)

    def _keys(self) -> str:
        """The keys as the user's [ui.keymap] has them."""
        app = cast("AgentApp", self.app)
        yes, no = (b for b in self.BINDINGS if isinstance(b, Binding))
        return (f"{app.keys_of(yes).replace(',', ' or ')}: yes · "
                f"{app.keys_of(no).replace(',', ' or ')}: no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
