"""/ — full-text search over all messages; enter opens the conversation of a hit."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from agent_tui.store import SearchHit
from agent_tui.ui.format import plain_line

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp


class SearchScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="search.back"),
        Binding("j,n", "cursor_down", "Next hit", show=False, id="search.down"),
        Binding("k,N", "cursor_up", "Previous hit", show=False, id="search.up"),
        Binding("enter", "open", "Open", id="search.open"),
    ]

    def __init__(self, query: str) -> None:
        super().__init__()
        self.query_text = query
        self.hits: list[SearchHit] = []

    def compose(self) -> ComposeResult:
        yield Static(f" Search: {self.query_text}", id="search-title", markup=False)
        yield DataTable(id="hits", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#hits", DataTable)
        table.add_columns("Conv", "When", "From", "Match")
        table.focus()
        cast("AgentApp", self.app).report_keymap_clashes(self)
        self._search(cast("AgentApp", self.app))

    @work(thread=True, exclusive=True)
    def _search(self, app: AgentApp) -> None:
        app.deliver(self._show, app.reads.search(self.query_text, limit=200), screen=self)

    def _show(self, hits: list[SearchHit]) -> None:
        self.hits = hits
        # n/N in the inbox step through these conversations after this screen closes.
        cast("AgentApp", self.app).search_hits = list(
            dict.fromkeys(hit.conversation_id for hit in hits))
        table = self.query_one("#hits", DataTable)
        for hit in hits:
            table.add_row(str(hit.conversation_id), f"{hit.sent_at.astimezone():%Y-%m-%d}",
                          plain_line(hit.sender, limit=28), plain_line(hit.snippet, limit=90))
        self.query_one("#search-title", Static).update(
            f" Search: {self.query_text} · {len(hits)} hits")

    def action_cursor_down(self) -> None:
        self.query_one("#hits", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#hits", DataTable).action_cursor_up()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.query_one("#hits", DataTable).cursor_row
        if 0 <= row < len(self.hits):
            from agent_tui.ui.screens.conversation import ConversationScreen

            self.app.push_screen(ConversationScreen(self.hits[row].conversation_id))

    def action_back(self) -> None:
        self.dismiss()
