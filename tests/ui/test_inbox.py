"""Pilot tests: each action changes the store as expected; customer text stays literal."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console
from textual.widgets import DataTable, Static, TextArea

from agent_tui.model import ConversationStatus, OutboxState
from agent_tui.store import Store
from agent_tui.ui.app import AgentApp
from agent_tui.ui.screens.conversation import ConversationScreen
from agent_tui.ui.screens.inbox import InboxScreen
from agent_tui.ui.widgets.timeline import fold_quotes
from tests.ui.conftest import settle as settle_workers

MakeApp = Callable[[], AgentApp]


async def settle(app: AgentApp, pilot: object) -> None:
    await settle_workers(pilot)


def subjects(app: AgentApp) -> list[str]:
    screen = app.screen
    assert isinstance(screen, InboxScreen)
    return [c.subject or c.preview for c in screen.rows]


async def test_queue_puts_the_most_overdue_first(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        # Waited against target: mail 2000/240 min, WhatsApp 30/15, mail 300/240, SMS 50/60...
        assert subjects(app)[:3] == ["Rechnung", "Die Tasse kam kaputt an :(",
                                     "Wo bleibt meine Bestellung?"]
        await pilot.press("j", "j", "space")
        assert app.screen.query_one("#inbox", DataTable).cursor_row == 0


async def test_close_assign_tag_snooze_from_the_inbox(make_app: MakeApp,
                                                      ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, InboxScreen)
        first = screen.rows[0].id
        await pilot.press("a")
        assert ui_store.get_conversation(first).assignee == "Mia"
        await pilot.press("t")
        await pilot.press(*"vip urgent", "enter")
        assert ui_store.get_conversation(first).tags == ["vip", "urgent"]
        await pilot.press("s")
        await pilot.press("ctrl+a", "ctrl+k", *"1d", "enter")
        assert ui_store.get_conversation(first).status is ConversationStatus.SNOOZED
        await settle(app, pilot)
        second = screen.rows[0].id
        assert second != first                       # snoozed ones leave the queue
        await pilot.press("e")
        assert ui_store.get_conversation(second).status is ConversationStatus.CLOSED


async def test_take_a_suggestion_and_send_queues_it(make_app: MakeApp,
                                                   ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, InboxScreen)
        target = next(c.id for c in screen.rows if c.subject == "Rücksendung")
        app.push_screen(ConversationScreen(target))
        await settle(app, pilot)
        conversation = app.screen
        assert isinstance(conversation, ConversationScreen)
        assert conversation.suggestions, "a returns question gets suggestions"
        await pilot.press("1")
        composer = conversation.query_one("#composer", TextArea)
        assert composer.text == conversation.suggestions[0].rendered.text
        await pilot.press("ctrl+s")
        rows = ui_store.outbox_rows(conversation_id=target)
        assert [r.state for r in rows] == [OutboxState.QUEUED]
        assert rows[0].payload["to"] == "jonas@example.org"
        assert rows[0].payload["text"] == conversation.suggestions[0].rendered.text


async def test_note_is_saved_not_sent(make_app: MakeApp, ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        conversation_id = ui_store.list_conversations()[0].id
        app.push_screen(ConversationScreen(conversation_id))
        await settle(app, pilot)
        await pilot.press("n", *"rief an", "ctrl+s")
        assert [n.text for n in ui_store.get_notes(conversation_id)] == ["rief an"]
        assert ui_store.outbox_rows() == []


async def test_hostile_message_renders_literally(make_app: MakeApp, ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app, pilot)
        hostile = next(c.id for c in ui_store.list_conversations() if c.subject == "Achtung")
        app.push_screen(ConversationScreen(hostile))
        await settle(app, pilot)
        console = Console(width=160, record=True, color_system=None, file=io.StringIO())
        console.print(app.screen.query_one("#timeline-body", Static).content)
        shown = console.export_text()
        assert "[@click=app.quit]klick[/]" in shown and "[bold]fett[/bold]" in shown
        assert "\x1b" not in shown and "\u202e" not in shown
        assert "Mallory [red]X[/red]" in shown
        assert app.is_running                      # the click markup did not quit the app


def test_quoted_history_folds() -> None:
    text = "Danke!\n> a\n> b\n> c\n> d\nGruß"
    assert fold_quotes(text) == "Danke!\n[… 4 quoted lines folded, z shows them]\nGruß"


async def test_reply_lease_warns_a_second_agent(make_app: MakeApp, ui_store: Store) -> None:
    conversation_id = ui_store.list_conversations()[0].id
    assert ui_store.acquire_lease(f"reply:{conversation_id}", "Jonas@otherhost:1", 300)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(ConversationScreen(conversation_id))
        await settle(app, pilot)
        await pilot.press("r", *"Hallo", "ctrl+s")
        assert ui_store.outbox_rows() == []          # first ctrl+s only warns
        assert "Jonas is replying" in str(app.screen.query_one("#status", Static).content)
        await pilot.press("ctrl+s")
        assert len(ui_store.outbox_rows()) == 1      # sent on purpose


async def test_merge_contacts_shows_the_whole_history(make_app: MakeApp, ui_store: Store) -> None:
    sms = next(c for c in ui_store.list_conversations() if c.contact_address == "+491701234567")
    mail = next(c for c in ui_store.list_conversations() if c.subject == "Rücksendung")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(ConversationScreen(mail.id))
        await settle(app, pilot)
        await pilot.press("m", *"+491701234567", "enter")
        await settle(app, pilot)
        assert ui_store.get_conversation(sms.id).contact_id == mail.contact_id
        timeline = app.screen.query_one("#timeline-body", Static).content
        console = Console(width=120, record=True, color_system=None, file=io.StringIO())
        console.print(timeline)
        assert "Ist mein Paket schon unterwegs?" in console.export_text()


async def test_keys_typed_while_loading_are_not_lost(make_app: MakeApp, ui_store: Store) -> None:
    target = next(c.id for c in ui_store.list_conversations() if c.subject == "Rücksendung")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(ConversationScreen(target))
        await pilot.press("1", "ctrl+s")             # before the conversation has loaded
        await settle(app, pilot)
        rows = ui_store.outbox_rows(conversation_id=target)
        assert len(rows) == 1 and rows[0].payload["entry_id"] is not None
        assert rows[0].payload["suggestion_edited"] is False
