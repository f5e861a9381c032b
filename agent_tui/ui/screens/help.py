"""? — every key of the current screens, from their bindings' descriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close help", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static(self._table(), id="help-table"), id="help")

    def _table(self) -> Table:
        table = Table(title="agent-tui keys (escape closes)", expand=True, show_lines=False)
        table.add_column("Key", style="bold", no_wrap=True)
        table.add_column("Action")
        table.add_column("Where", style="dim")
        seen: set[tuple[str, str]] = set()
        screens = [s for s in self.app.screen_stack if s is not self]
        for source in [*reversed(screens), self.app]:
            where = type(source).__name__.removesuffix("Screen").removesuffix("App") or "app"
            for binding in getattr(source, "BINDINGS", []):
                if not isinstance(binding, Binding):
                    continue
                key = cast("AgentApp", self.app).keys_of(binding)
                if (key, binding.description) in seen:
                    continue
                seen.add((key, binding.description))
                table.add_row(key, binding.description, where)
        table.add_row("ctrl+p", "Command palette: every action by name", "app")
        return table
