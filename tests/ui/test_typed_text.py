"""What an agent types (a note, tags, a snooze time, a search) is data: markup in it is shown as
typed, never styled, linked, run or parsed (a stray `[/]` used to crash the app)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

from rich.console import Console
from textual.content import Content
from textual.widgets import Static
from textual.widgets._toast import Toast

from agent_tui.config import Config
from agent_tui.store import Store
from agent_tui.ui.app import AgentApp
from agent_tui.ui.screens.conversation import ConversationScreen
from agent_tui.ui.screens.inbox import InboxScreen
from agent_tui.ui.screens.search import SearchScreen
from tests.ui.conftest import NOW, settle

MakeApp = Callable[[], AgentApp]

TYPED = ["[/]", "[bold]x[/bold]", "[link=file:///etc]x[/link]", "[@click=app.quit]x[/]"]


def toasts(app: AgentApp) -> list[str]:
    """The notifications as they are drawn (rendering is where markup used to be parsed)."""
    return [toast.render().plain for toast in app.screen.query(Toast)]


def text_of(app: AgentApp, selector: str) -> str:
    """The widget's text as drawn: a string was parsed (or not) into Content by the widget."""
    widget = app.screen.query_one(selector, Static)
    if isinstance(widget.visual, Content):
        return widget.visual.plain
    console = Console(file=io.StringIO(), width=300, color_system=None)
    console.print(widget.content)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


async def first_row(app: AgentApp, pilot: object) -> int:
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, InboxScreen)
    return screen.rows[0].id


async def test_a_snooze_time_that_cannot_be_read_is_quoted_literally(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await first_row(app, pilot)
        for typed in TYPED:
            await pilot.press("s", "ctrl+a", "ctrl+k", *typed, "enter")
            await settle(pilot)
            assert app.is_running and isinstance(app.screen, InboxScreen)
            assert any(f"Cannot read {typed!r}" in toast for toast in toasts(app)), typed


async def test_tags_are_shown_as_typed(make_app: MakeApp, ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(200, 40), notifications=True) as pilot:
        first = await first_row(app, pilot)
        await pilot.press("t", *" ".join(TYPED), "enter")
        await settle(pilot)
        assert ui_store.get_conversation(first).tags == TYPED
        app.push_screen(ConversationScreen(first))
        await settle(pilot)
        assert app.is_running
        assert ", ".join(TYPED) in text_of(app, "#conversation-header")
        await pilot.press("escape", "f", *TYPED[0], "enter")     # the inbox, only this tag
        await settle(pilot)
        assert app.is_running and f"#{TYPED[0]}" in text_of(app, "#inbox-title")


async def test_a_note_is_saved_and_shown_as_typed(make_app: MakeApp, ui_store: Store) -> None:
    typed = " ".join(TYPED)
    app = make_app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        first = await first_row(app, pilot)
        app.push_screen(ConversationScreen(first))
        await settle(pilot)
        await pilot.press("n", *typed, "ctrl+s")
        await settle(pilot)
        assert app.is_running
        assert [n.text for n in ui_store.get_notes(first)] == [typed]
        assert typed in text_of(app, "#timeline-body")
        assert "Note saved" in toasts(app)


async def test_a_search_is_shown_as_typed(make_app: MakeApp) -> None:
    typed = " ".join(TYPED)
    app = make_app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await first_row(app, pilot)
        await pilot.press("/", *typed, "enter")
        await settle(pilot)
        assert app.is_running and isinstance(app.screen, SearchScreen)
        assert f"Search: {typed} · 0 hits" in text_of(app, "#search-title")


async def test_an_unknown_merge_address_is_quoted_literally(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        first = await first_row(app, pilot)
        app.push_screen(ConversationScreen(first))
        await settle(pilot)
        for typed in TYPED:
            await pilot.press("m", *typed, "enter")
            await settle(pilot)
            assert app.is_running
            assert any(f"No contact with address {typed!r}" in toast
                       for toast in toasts(app)), typed


async def test_the_agent_name_from_the_config_is_shown_literally(ui_config: Config,
                                                                 ui_store: Store) -> None:
    name = "[/]Mia [@click=app.quit]x[/]"
    config = dataclasses.replace(ui_config, agent=dataclasses.replace(ui_config.agent,
                                                                      name=name))
    app = AgentApp(config, ui_store, None, clock=lambda: NOW, load_suggester=False)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        first = await first_row(app, pilot)
        await pilot.press("a")
        await settle(pilot)
        assert app.is_running and ui_store.get_conversation(first).assignee == name
        assert f"Assigned to {name}" in toasts(app)
