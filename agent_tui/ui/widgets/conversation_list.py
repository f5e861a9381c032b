"""The inbox table: one row per conversation, filled a page at a time (never the whole store)."""

from __future__ import annotations

from datetime import datetime

from textual.widgets import DataTable

from agent_tui.model import Conversation
from agent_tui.ui.format import conversation_cells

COLUMNS = ("", "Ch", "Contact", "Subject / first line", "Waited", "Status", "Agent", "Tags")
# Width the columns other than the subject need at most; the subject takes the rest.
OTHER_COLUMNS_WIDTH = 66


class ConversationList(DataTable[object]):
    """Rows are `Conversation`s; `fractions` is each one's waited time over its channel target."""

    def __init__(self) -> None:
        super().__init__(id="inbox", cursor_type="row", zebra_stripes=False)
        self.conversations: list[Conversation] = []
        self.fractions: dict[int, float] = {}

    def on_mount(self) -> None:
        for label in COLUMNS:
            self.add_column(label, key=label or "mark")

    def show_page(self, rows: list[Conversation], fractions: dict[int, float], now: datetime,
                  *, replace: bool) -> None:
        """Append a page (or replace everything), keeping the cursor on the same conversation."""
        selected = self.selected_id()
        if replace:
            self.clear()
            self.conversations, self.fractions = [], {}
        topic_limit = max(12, min(60, self.screen.size.width - OTHER_COLUMNS_WIDTH))
        for c in rows:
            self.add_row(*conversation_cells(c, now, fractions.get(c.id, 0.0), topic_limit),
                         key=str(c.id))
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

    def most_overdue_row(self) -> int | None:
        """The loaded row whose customer waited longest against the target, if anyone waits."""
        if not self.conversations:
            return None
        best = max(range(len(self.conversations)),
                   key=lambda i: self.fractions.get(self.conversations[i].id, 0.0))
        return best if self.fractions.get(self.conversations[best].id, 0.0) > 0 else None
