"""Inbox views and filters, n/N after a search, the palette, and replying on another identity."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import pytest
import textual.constants
from rich.console import Console
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.widgets._footer import FooterKey

from agent_tui.config import DEFAULT_THEME, UI_BINDING_IDS, Config
from agent_tui.model import Channel, ConversationStatus
from agent_tui.store import Store, open_store
from agent_tui.ui.app import SIXTEEN_COLOUR_THEME, AgentApp
from agent_tui.ui.inbox_views import BUILT_IN
from agent_tui.ui.screens.conversation import ConversationScreen
from agent_tui.ui.screens.help import HelpScreen
from agent_tui.ui.screens.inbox import InboxScreen
from tests.ui.conftest import NOW, app_with, chat, settle

MakeApp = Callable[[], AgentApp]


def inbox(app: AgentApp) -> InboxScreen:
    assert isinstance(app.screen, InboxScreen)
    return app.screen


def shown(app: AgentApp) -> list[str]:
    return [c.subject or c.preview for c in inbox(app).rows]


def cursor_subject(app: AgentApp) -> str:
    screen = inbox(app)
    row = screen.rows[screen.query_one("#inbox", DataTable).cursor_row]
    return row.subject or row.preview


async def test_views_overdue_unassigned_and_tag_filter(make_app: MakeApp,
                                                       ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert len(shown(app)) == 7
        await pilot.press("v")                       # overdue: past the channel's target
        await settle(pilot)
        assert inbox(app).view.name == "overdue"
        assert shown(app) == ["Rechnung", "Die Tasse kam kaputt an :(",
                              "Wo bleibt meine Bestellung?"]
        ui_store.assign(inbox(app).rows[0].id, "Jonas")
        await pilot.press("v", "v")                  # open, mine, then unassigned
        await pilot.press("v")
        await settle(pilot)
        assert inbox(app).view.name == "unassigned"
        assert "Rechnung" not in shown(app) and len(shown(app)) == 6
        tagged = inbox(app).rows[0].id
        ui_store.add_tag(tagged, "vip")
        await pilot.press("f", *"vip", "enter")
        await settle(pilot)
        assert [c.id for c in inbox(app).rows] == [tagged]
        assert "#vip" in str(app.screen.query_one("#inbox-title").render())


SAVED_VIEWS = """
[[ui.view]]
name = "chats"
channel = "telegram"
queue = true

[[ui.view]]
name = "my overdue"
assignee = "me"
overdue = true

[[ui.view]]
name = "vip"
tag = "vip"
status = "any"
"""


async def test_v_reaches_the_saved_views_after_the_built_in_ones(ui_config: Config,
                                                                 ui_store: Store) -> None:
    app = app_with(ui_config, ui_store, SAVED_VIEWS)
    rechnung = next(c.id for c in ui_store.list_conversations() if c.subject == "Rechnung")
    ui_store.assign(rechnung, "Mia")
    vip = next(c.id for c in ui_store.list_conversations() if c.subject == "Achtung")
    ui_store.add_tag(vip, "vip")
    ui_store.set_status(vip, ConversationStatus.CLOSED)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert [v.name for v in app.views[-3:]] == ["chats", "my overdue", "vip"]
        await pilot.press(*"v" * len(BUILT_IN))
        await settle(pilot)
        assert inbox(app).view.name == "chats"
        assert shown(app) == ["Habt ihr am Samstag geöffnet?"]
        assert "Chats · telegram" in str(app.screen.query_one("#inbox-title").render())
        await pilot.press("v")                       # mine, past the target
        await settle(pilot)
        assert shown(app) == ["Rechnung"]
        await pilot.press("v")                       # tagged vip, closed ones too
        await settle(pilot)
        assert [c.id for c in inbox(app).rows] == [vip]
        await pilot.press("v")                       # round again to the queue
        await settle(pilot)
        assert inbox(app).view.name == "queue" and len(shown(app)) == 6


async def test_n_and_shift_n_step_through_search_hits(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n")                       # no search yet: the cursor stays
        assert cursor_subject(app) == "Rechnung"
        await pilot.press("slash", *"Bestellung Paket", "enter")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        # "Bestellung Paket" matches no single message; "Paket" does (the SMS and nothing else).
        await pilot.press("slash", *"Paket", "enter")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("n")
        assert cursor_subject(app) == "Ist mein Paket schon unterwegs?"
        await pilot.press("g", "N")
        assert cursor_subject(app) == "Ist mein Paket schon unterwegs?"


async def test_space_walks_the_waiting_conversations(make_app: MakeApp,
                                                     ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        ui_store.assign(inbox(app).rows[1].id, "Jonas")      # someone else's: skipped
        app.poll_store()
        await settle(pilot)
        await pilot.press("G", "space")
        assert cursor_subject(app) == "Rechnung"
        await pilot.press("space")
        assert cursor_subject(app) == "Wo bleibt meine Bestellung?"


async def test_palette_runs_any_binding(make_app: MakeApp, ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Open", "Close", "Snooze", "Search", "Next match", "Help"} <= titles
        first = inbox(app).rows[0].id
        await pilot.press("ctrl+p", *"Assign me")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert ui_store.get_conversation(first).assignee == "Mia"


async def test_reply_on_another_identity_of_the_contact(make_app: MakeApp,
                                                        ui_store: Store) -> None:
    mail = next(c for c in ui_store.list_conversations() if c.subject == "Rücksendung")
    sms = next(c for c in ui_store.list_conversations() if c.channel is Channel.SMS)
    ui_store.merge_contacts(mail.contact_id, sms.contact_id)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ConversationScreen(mail.id))
        await settle(pilot)
        await pilot.press("i", *"Paket ist unterwegs", "ctrl+s")
        rows = ui_store.outbox_rows()
        assert len(rows) == 1
        assert rows[0].conversation_id == sms.id
        assert rows[0].payload["channel"] == "sms"
        assert rows[0].payload["to"] == "+491701234567"


async def test_a_message_from_another_process_appears_without_a_keypress(
        make_app: MakeApp, ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        other_process = open_store(ui_store.path)       # its own connection, as `sync` has
        other_process.ingest("shop-sms", [chat(Channel.SMS, "SM9", "+491709999999",
                                               "Neue Frage", 16 * 60)],
                             cursor_key="main", cursor=None)
        other_process.close()
        # The poll timer (0.5 s) notices the commit; wait for it, with a generous bound.
        for _ in range(100):
            await pilot.pause(0.05)
            if "Neue Frage" in shown(app):
                break
        await settle(pilot)
        assert shown(app)[0] == "Neue Frage"        # 16 h waited on a 1 h target: first


KEYMAP = """
[ui.keymap]
inbox.close = "x"
"app.help" = "f1"
conversation.quotes = "Z,ctrl+z"
"""


def footer_keys(app: AgentApp) -> dict[str, str]:
    """Description -> key as the footer of the current screen shows it."""
    return {key.description: key.key_display or key.key for key in app.screen.query(FooterKey)}


def help_rows(app: AgentApp) -> dict[str, str]:
    """Action -> key as the help screen lists them."""
    table = app.screen.query_one("#help-table", Static).content
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    rows: dict[str, str] = {}
    for line in console.file.getvalue().splitlines():  # type: ignore[attr-defined]
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 3 and cells[1]:
            rows.setdefault(cells[1], cells[0])
    return rows


async def test_user_keymap_rebinds_by_binding_id(ui_config: Config, ui_store: Store) -> None:
    app = app_with(ui_config, ui_store, KEYMAP)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        first = inbox(app).rows[0].id
        await pilot.press("e")                       # no longer bound
        assert ui_store.get_conversation(first).status is ConversationStatus.OPEN
        await pilot.press("x")
        assert ui_store.get_conversation(first).status is ConversationStatus.CLOSED
        assert any(c.help == "key x" for c in app.get_system_commands(app.screen)
                   if c.title == "Close")
        await settle(pilot)
        assert footer_keys(app)["Close"] == "x"
        assert footer_keys(app)["Reply"] == "r"      # the others keep their keys
        await pilot.press("question_mark")           # app.help moved to f1
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        rows = help_rows(app)
        assert (rows["Close"], rows["Help"], rows["Reply"]) == ("x", "f1", "r")
        await pilot.press("escape", "enter")         # into a conversation: z moved to Z
        await settle(pilot)
        assert isinstance(app.screen, ConversationScreen)
        await pilot.press("z")
        assert not app.screen.show_quotes
        await pilot.press("Z")
        assert app.screen.show_quotes
        await pilot.press("ctrl+z")
        assert not app.screen.show_quotes
        await settle(pilot)
        assert footer_keys(app)["Quotes"] == "Z"


async def test_a_keymap_clash_is_reported_once(ui_config: Config, ui_store: Store) -> None:
    app = app_with(ui_config, ui_store, '[ui.keymap]\ninbox.close = "r"\n')
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        first = inbox(app).rows[0].id
        await pilot.press("j", "k", "r")             # r closes now; reply lost the key
        await settle(pilot)
        assert isinstance(app.screen, InboxScreen)
        assert ui_store.get_conversation(first).status is ConversationStatus.CLOSED
        app.report_keymap_clashes(app.screen)       # as when the screen is shown again
        warnings = [n.message for n in app._notifications if n.title == "Keymap"]
        assert warnings == ["[ui.keymap] gave r to 'Close' (inbox.close): "
                            "'Reply' (inbox.reply) lost it"]


def test_every_binding_of_the_ui_has_an_id_the_config_knows() -> None:
    """[ui.keymap] ids are checked by the config without importing the UI: keep both in step."""
    import agent_tui.ui.screens.attachments
    import agent_tui.ui.screens.contact
    import agent_tui.ui.screens.conversation
    import agent_tui.ui.screens.help
    import agent_tui.ui.screens.inbox
    import agent_tui.ui.screens.search
    import agent_tui.ui.screens.stats
    import agent_tui.ui.widgets.confirm
    import agent_tui.ui.widgets.prompt  # noqa: F401

    def subclasses(cls: type) -> set[type]:
        return {cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))}

    ids: list[str | None] = []
    for cls in {AgentApp, *subclasses(Widget)}:     # screens are widgets too
        if cls.__module__.startswith("agent_tui.ui"):
            ids.extend(b.id for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding))
    assert None not in ids, "every binding needs an id (for [ui.keymap])"
    assert len(ids) == len(set(ids)), "binding ids must be unique"
    assert set(ids) == UI_BINDING_IDS


class EngineStandIn:
    """The Engine's interface as the app uses it: accounts' states, the outbox wake-up."""

    def __init__(self) -> None:
        self.woken = 0
        self.stop = asyncio.Event()

    def status(self) -> dict[str, str]:
        return {"shop-mail": "ok", "shop-sms": "auth error: 20003 Authenticate"}

    def wake_outbox(self) -> None:
        self.woken += 1

    async def run(self) -> None:
        await self.stop.wait()


async def test_status_bar_shows_accounts_and_a_reply_wakes_the_outbox(
        ui_config: Config, ui_store: Store) -> None:
    engine = EngineStandIn()
    app = AgentApp(ui_config, ui_store, engine, clock=lambda: NOW,  # type: ignore[arg-type]
                   load_suggester=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        status = str(app.screen.query_one("#status").render())
        assert "shop-mail: ok" in status and "shop-sms: auth error: 20003" in status
        app.push_screen(ConversationScreen(inbox(app).rows[0].id))
        await settle(pilot)
        await pilot.press("r", *"Hallo", "ctrl+s")
        assert engine.woken == 1
        app.poll_store()
        assert "outbox 1 queued" in str(app.screen.query_one("#status").render())
        engine.stop.set()



async def test_off_topic_message_offers_one_marked_guess(make_app: MakeApp,
                                                         ui_store: Store) -> None:
    hostile = next(c.id for c in ui_store.list_conversations() if c.subject == "Achtung")
    returns = next(c.id for c in ui_store.list_conversations() if c.subject == "Rücksendung")
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ConversationScreen(hostile))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        assert len(screen.suggestions) == 1
        assert "a guess" in str(screen.query_one("#suggestions").render())
        await pilot.press("escape")
        app.push_screen(ConversationScreen(returns))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        assert [s.suggestion.entry_id for s in screen.suggestions] == ["return"]
        assert "a guess" not in str(screen.query_one("#suggestions").render())


def test_sixteen_colour_terminal_gets_the_terminal_palette(
        make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "standard")
    assert make_app().theme == SIXTEEN_COLOUR_THEME
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "truecolor")
    assert make_app().theme == DEFAULT_THEME


async def test_opening_marks_read_once(make_app: MakeApp, ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        first = inbox(app).rows[0]
        assert first.unread
        await pilot.press("enter")
        await settle(pilot)
        assert not ui_store.get_conversation(first.id).unread
        version = ui_store.data_version()
        await pilot.press("escape", "enter")       # already read: nothing is written
        await settle(pilot)
        assert ui_store.data_version() == version
        await pilot.press("escape")
        await settle(pilot)
        assert not inbox(app).rows[0].unread
