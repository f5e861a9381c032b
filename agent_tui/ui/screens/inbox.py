"""The inbox: every channel in one list, the longest-waiting customer (against the channel's target)
first. Rows load in pages, so a store of 20,000 conversations opens as fast as one of 100.

Keys: `n`/`N` step through the conversations of the last `/` search (as in less and vim); in a
conversation `n` writes a note instead. `space` jumps to the next conversation that needs me: the
most overdue one that is mine or nobody's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from agent_tui.insight.sla import waited_fraction
from agent_tui.model import Conversation
from agent_tui.ui import actions
from agent_tui.ui.inbox_views import InboxView
from agent_tui.ui.widgets.conversation_list import ConversationList
from agent_tui.ui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

PAGE = 200
QUEUE_LIMIT = 2000      # waiting conversations ranked for the queue view
CHANNELS = (None, "email", "sms", "whatsapp", "telegram")


def in_view(view: InboxView, c: Conversation, agent_name: str) -> bool:
    """The view's filters, for the queue (ranked in Python rather than by the store)."""
    assignee = view.store_assignee(agent_name)
    return ((view.channel is None or str(c.channel) == view.channel)
            and (view.tag is None or view.tag in c.tags)
            and (assignee is None or (c.assignee or "") == assignee))


class InboxScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor_down", "Down", show=False, id="inbox.down"),
        Binding("k,up", "cursor_up", "Up", show=False, id="inbox.up"),
        Binding("g,home", "top", "Top", show=False, id="inbox.top"),
        Binding("G,end", "bottom", "Bottom", show=False, id="inbox.bottom"),
        Binding("enter", "open", "Open", id="inbox.open"),
        Binding("space", "next_waiting", "Next for me", id="inbox.next_waiting"),
        Binding("r", "reply", "Reply", id="inbox.reply"),
        Binding("e", "close", "Close", id="inbox.close"),
        Binding("s", "snooze", "Snooze", id="inbox.snooze"),
        Binding("a", "assign", "Assign me", id="inbox.assign"),
        Binding("t", "tag", "Tag", id="inbox.tag"),
        Binding("slash", "search", "Search", key_display="/", id="inbox.search"),
        Binding("n", "next_match", "Next match", show=False, id="inbox.next_match"),
        Binding("N", "previous_match", "Previous match", show=False, id="inbox.previous_match"),
        Binding("v", "next_view", "View", id="inbox.view"),
        Binding("c", "next_channel", "Channel", id="inbox.channel"),
        Binding("f", "filter_tag", "Tag filter", show=False, id="inbox.filter_tag"),
        Binding("S", "stats", "Stats", id="inbox.stats"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view_index = 0
        self.channel: str | None = None
        self.tag: str | None = None
        self.more = False
        self._loading = False
        self._queue: list[Conversation] = []
        self._queue_fractions: dict[int, float] = {}
        self._last_jump: int | None = None      # where space went last
        self._loaded_version = -1               # the store's data_version of the rows shown

    @property
    def agent_app(self) -> AgentApp:
        return cast("AgentApp", self.app)

    @property
    def view(self) -> InboxView:
        """The chosen view with the channel (c) and tag (f) filters on top."""
        base = self.agent_app.views[self.view_index]
        return base.with_channel(self.channel or base.channel).with_tag(self.tag or base.tag)

    @property
    def table(self) -> ConversationList:
        return self.query_one(ConversationList)

    @property
    def rows(self) -> list[Conversation]:
        return self.table.conversations

    @property
    def fractions(self) -> dict[int, float]:
        return self.table.fractions

    def compose(self) -> ComposeResult:
        yield Static("", id="inbox-title", markup=False)
        yield ConversationList()
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        self.agent_app.report_keymap_clashes(self)
        self.table.focus()
        self.refresh_data()
        self.update_status()

    # --- data -----------------------------------------------------------------------------

    def on_screen_resume(self) -> None:
        # Back from a conversation: reload only if something was written meanwhile.
        if self.agent_app.reads.data_version() != self._loaded_version:
            self.refresh_data()

    def refresh_data(self) -> None:
        self._loaded_version = self.agent_app.reads.data_version()
        self._load(self.agent_app, self.view, offset=0)

    @work(thread=True, exclusive=True, group="inbox-load")
    def _load(self, app: AgentApp, view: InboxView, offset: int) -> None:
        """Runs in a thread: everything it needs from the screen comes in as arguments."""
        store, now = app.reads, app.clock()

        def fraction(c: Conversation) -> float:
            return waited_fraction(c, now, app.config.sla, app.business_hours,
                                   waiting_since=c.waiting_since)

        if view.ranked:
            if offset == 0:
                # The longest-waiting ones, ranked against their channel's target; shown a page
                # at a time, since painting thousands of rows is what makes an inbox slow.
                queue = [c for c in store.waiting_conversations(limit=QUEUE_LIMIT)
                         if in_view(view, c, app.agent_name)]
                ranked = {c.id: fraction(c) for c in queue}
                if view.overdue:
                    queue = [c for c in queue if ranked[c.id] >= 1.0]
                queue.sort(key=lambda c: ranked[c.id], reverse=True)
                self._queue, self._queue_fractions = queue, ranked
            rows = self._queue[offset:offset + PAGE]
            more = len(self._queue) > offset + PAGE
            fractions = {c.id: self._queue_fractions[c.id] for c in rows}
            title = self._title(view, store.count_conversations(status="open"),
                                self._queue_fractions)
        else:
            rows = store.list_conversations(status=view.status, channel=view.channel,
                                            assignee=view.store_assignee(app.agent_name),
                                            tag=view.tag, limit=PAGE, offset=offset)
            more = len(rows) == PAGE
            fractions = {c.id: fraction(c) for c in rows}
            title = self._title(view, store.count_conversations(status="open"), fractions)
        app.deliver(self._show, rows, fractions, more, offset, title, screen=self)

    @staticmethod
    def _title(view: InboxView, open_count: int, fractions: dict[int, float]) -> str:
        overdue = sum(1 for f in fractions.values() if f >= 1.0)
        filters = "".join(f" · {part}" for part in (view.channel, view.tag and f"#{view.tag}")
                          if part)
        return (f" {view.name.capitalize()}{filters} · {open_count} open · {overdue} overdue"
                "   (v view · c channel · space next for me · ? help)")

    def _show(self, rows: list[Conversation], fractions: dict[int, float], more: bool,
              offset: int, title: str) -> None:
        self.table.show_page(rows, fractions, self.agent_app.clock(), replace=offset == 0)
        self.more = more
        self._loading = False
        self.query_one("#inbox-title", Static).update(title)

    def update_status(self) -> None:
        if self.query(StatusBar):       # the refresh timer can fire before compose
            self.query_one(StatusBar).show()

    def selected_id(self) -> int | None:
        return self.table.selected_id()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.more and not self._loading and event.cursor_row >= len(self.rows) - 10:
            self._loading = True
            self._load(self.agent_app, self.view, offset=len(self.rows))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    # --- actions --------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()

    def action_top(self) -> None:
        self.table.move_cursor(row=0)

    def action_bottom(self) -> None:
        self.table.move_cursor(row=max(len(self.rows) - 1, 0))

    def _open(self, reply: bool) -> None:
        conversation_id = self.selected_id()
        if conversation_id is None:
            return
        from agent_tui.ui.screens.conversation import ConversationScreen

        self.app.push_screen(ConversationScreen(conversation_id, reply=reply))

    def action_open(self) -> None:
        self._open(reply=False)

    def action_reply(self) -> None:
        self._open(reply=True)

    def action_next_waiting(self) -> None:
        """Jump to the next conversation that needs me: the customers waiting longest against
        their target among those that are mine or nobody's; pressed again, the one after."""
        me = self.agent_app.agent_name
        waiting = sorted(
            (i for i, c in enumerate(self.rows)
             if self.fractions.get(c.id, 0.0) > 0 and c.assignee in (None, "", me)),
            key=lambda i: self.fractions[self.rows[i].id], reverse=True)
        if not waiting:
            self.notify("Nobody is waiting for you", timeout=2)
            return
        # Pressed again without moving: the one after; otherwise the one that needs me most.
        current = self.table.cursor_row
        repeated = current in waiting and self.selected_id() == self._last_jump
        row = waiting[(waiting.index(current) + 1) % len(waiting)] if repeated else waiting[0]
        self.table.move_cursor(row=row)
        self._last_jump = self.rows[row].id

    def _step_match(self, step: int) -> None:
        hits = set(self.agent_app.search_hits)
        if not hits:
            self.notify("No search yet: / searches all messages", timeout=2)
            return
        count = len(self.rows)
        for distance in range(1, count + 1):
            row = (self.table.cursor_row + step * distance) % count
            if self.rows[row].id in hits:
                self.table.move_cursor(row=row)
                return
        self.notify("No match in this view (v changes the view)", timeout=2)

    def action_next_match(self) -> None:
        self._step_match(+1)

    def action_previous_match(self) -> None:
        self._step_match(-1)

    def _with_selected(self, act: actions.Action) -> None:
        conversation_id = self.selected_id()
        if conversation_id is not None:
            act(self.agent_app, conversation_id)
            self.refresh_data()

    def action_close(self) -> None:
        self._with_selected(actions.close)

    def action_snooze(self) -> None:
        self._with_selected(actions.snooze)

    def action_assign(self) -> None:
        self._with_selected(actions.assign_to_me)

    def action_tag(self) -> None:
        self._with_selected(actions.tag)

    def action_search(self) -> None:
        from agent_tui.ui.screens.search import SearchScreen
        from agent_tui.ui.widgets.prompt import PromptScreen

        def done(query: str | None) -> None:
            if query:
                self.app.push_screen(SearchScreen(query))

        self.app.push_screen(PromptScreen("Search all messages:"), done)

    def action_stats(self) -> None:
        self.agent_app.action_stats()

    def action_next_view(self) -> None:
        self.view_index = (self.view_index + 1) % len(self.agent_app.views)
        self.refresh_data()

    def action_next_channel(self) -> None:
        self.channel = CHANNELS[(CHANNELS.index(self.channel) + 1) % len(CHANNELS)]
        self.refresh_data()

    def action_filter_tag(self) -> None:
        from agent_tui.ui.widgets.prompt import PromptScreen

        def done(tag: str | None) -> None:
            self.tag = tag.lstrip("#") if tag else None
            self.refresh_data()

        self.app.push_screen(PromptScreen("Only conversations tagged (empty: all):",
                                          self.tag or ""), done)
