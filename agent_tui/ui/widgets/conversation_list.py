"""The inbox table: one row per conversation, filled a page at a time (never the whole store)."""

from __future__ import annotations

from datetime import datetime

from textual import events
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from agent_tui.model import Conversation
from agent_tui.ui.format import conversation_cells

SUBJECT = "Subject / first line"
# Fixed widths: columns never jump when a page with a longer name arrives, and the table needs no
# measuring pass after each page. The subject takes what the others leave of the screen.
COLUMNS: dict[str, int] = {"": 2, "Ch": 2, "Contact": 16, SUBJECT: 0, "Waited": 6,
                           "Status": 7, "Agent": 8, "Tags": 10}
CELL_PADDING = 2
MIN_SUBJECT_WIDTH = 12


class ConversationList(DataTable[object]):
    """Rows are `Conversation`s; `fractions` is each one's waited time over its channel target."""

    def __init__(self) -> None:
        super().__init__(id="inbox", cursor_type="row", zebra_stripes=False)
        self.conversations: list[Conversation] = []
        self.fractions: dict[int, float] = {}

    def on_mount(self) -> None:
        for label, width in COLUMNS.items():
            self.add_column(label, key=label or "mark",
                            width=width or self._subject_width(self.app.size.width))

    def on_resize(self, event: events.Resize) -> None:
        subject = self.columns.get(ColumnKey(SUBJECT))
        if subject is not None and subject.width != self._subject_width(event.size.width):
            subject.width = self._subject_width(event.size.width)
            self._require_update_dimensions = True
            self.refresh()

    @staticmethod
    def _subject_width(table_width: int) -> int:
        others = sum(COLUMNS.values()) + CELL_PADDING * len(COLUMNS) + 1  # 1: the scrollbar
        return max(MIN_SUBJECT_WIDTH, table_width - others)

    def show_page(self, rows: list[Conversation], fractions: dict[int, float], now: datetime,
                  *, replace: bool) -> None:
        """Append a page (or replace everything), keeping the cursor on the same conversation."""
        selected = self.selected_id()
        if replace:
            self.clear()
            self.conversations, self.fractions = [], {}
        for c in rows:
            self.add_row(*conversation_cells(c, now, fractions.get(c.id, 0.0)), key=str(c.id))
        self.conversations.extend(rows)
        self.fractions.update(fractions)
        if replace and selected is not None:
            self.select_id(selected)

    def selected_id(self) -> int | None:
        if not 0 <= self.cursor_row < len(self.conversations):
            return None
        return self.conversations[self.cursor_row].id

    def select_id(self, conversation_id: int) -> bool:
        for index, c in enumerate(self.conversations):
            if c.id == conversation_id:
                self.move_cursor(row=index)
                return True
        return False
