"""Attachments in a conversation: listed under their message; `w` saves them, never overwriting."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Input, OptionList, Static
from textual.widgets._footer import FooterKey

from agent_tui.config import Config
from agent_tui.store import Store
from agent_tui.ui.app import AgentApp
from agent_tui.ui.screens.attachments import SaveAttachmentsScreen
from agent_tui.ui.screens.conversation import ConversationScreen
from tests.ui.conftest import PDF, PHOTO, app_with, seed_attachments, settle

MakeApp = Callable[[], AgentApp]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with a Downloads directory, so `w` offers ~/Downloads."""
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


def text_of(app: AgentApp, selector: str) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(app.screen.query_one(selector, Static).content)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def footer(app: AgentApp) -> dict[str, str]:
    return {key.description: key.key_display for key in app.screen.query(FooterKey)}


def notifications(app: AgentApp) -> list[str]:
    return [n.message for n in app._notifications if n.title == "Attachments"]


async def open_conversation(app: AgentApp, pilot: object, conversation_id: int) -> None:
    await settle(pilot)
    app.push_screen(ConversationScreen(conversation_id))
    await settle(pilot)


async def test_attachments_are_listed_under_their_message(make_app: MakeApp,
                                                          ui_store: Store) -> None:
    target = seed_attachments(ui_store)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await open_conversation(app, pilot, target)
        timeline = text_of(app, "#timeline-body")
        assert "📎 Rechnung 10234.pdf · application/pdf · 2.1 KB" in timeline
        newest = timeline[timeline.rindex("Nora Klein"):]     # the newer mail's block
        assert newest.index("📎 schaden.jpg · image/jpeg · 2.8 KB") < \
            newest.index("📎 Lieferschein.pdf · application/pdf · 2.1 KB")
        assert "📎 3 (w saves)" in text_of(app, "#conversation-header")
        assert footer(app)["Save attachments"] == "w"
        # A conversation without attachments keeps `w` out of the footer.
        rechnung = next(c.id for c in ui_store.list_conversations() if c.subject == "Rechnung")
        await pilot.press("escape")
        await open_conversation(app, pilot, rechnung)
        assert "Save attachments" not in footer(app)
        await pilot.press("w")                          # nothing to save: w does nothing
        await settle(pilot)
        assert isinstance(app.screen, ConversationScreen)


async def test_saving_twice_gives_two_files_not_an_overwrite(make_app: MakeApp, ui_store: Store,
                                                            home: Path) -> None:
    target = seed_attachments(ui_store)
    downloads = home / "Downloads"
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await open_conversation(app, pilot, target)
        await pilot.press("w")
        await settle(pilot)
        assert isinstance(app.screen, SaveAttachmentsScreen)
        assert app.screen.query_one(Input).value == "~/Downloads"
        assert app.screen.chosen.subject == "Fotos vom Schaden"      # the newest first
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConversationScreen)
        assert sorted(p.name for p in downloads.iterdir()) == ["Lieferschein.pdf", "schaden.jpg"]
        assert notifications(app)[-1] == (f"Saved 2 files to {downloads}:\n"
                                          "  schaden.jpg\n  Lieferschein.pdf")
        await pilot.press("w", "enter")                 # again, into the same directory
        await settle(pilot)
        assert sorted(p.name for p in downloads.iterdir()) == [
            "Lieferschein (1).pdf", "Lieferschein.pdf", "schaden (1).jpg", "schaden.jpg"]
        assert (downloads / "schaden (1).jpg").read_bytes() == PHOTO
        assert (downloads / "Lieferschein.pdf").read_bytes() == PDF
        assert "schaden (1).jpg" in notifications(app)[-1]


async def test_choose_an_older_message_and_another_directory(make_app: MakeApp,
                                                             ui_store: Store, home: Path,
                                                             tmp_path: Path) -> None:
    target = seed_attachments(ui_store)
    out = tmp_path / "claims" / "nora"
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await open_conversation(app, pilot, target)
        await pilot.press("w", "down")
        assert isinstance(app.screen, SaveAttachmentsScreen)
        assert app.screen.query_one(OptionList).highlighted == 1
        assert app.screen.chosen.subject == "Reklamation"
        await pilot.press("ctrl+a", "ctrl+k", *str(out), "enter")
        await settle(pilot)
        assert [p.name for p in out.iterdir()] == ["Rechnung 10234.pdf"]
        assert not any((home / "Downloads").iterdir())
        await pilot.press("w")                            # the last directory is offered again
        assert app.screen.query_one(Input).value == str(out)
        await pilot.press("escape")                       # cancels: nothing written
        await settle(pilot)
        assert isinstance(app.screen, ConversationScreen)
        assert [p.name for p in out.iterdir()] == ["Rechnung 10234.pdf"]


async def test_media_of_an_unconfigured_account_are_listed_and_reported(make_app: MakeApp,
                                                                  ui_store: Store,
                                                                  home: Path) -> None:
    seed_attachments(ui_store)
    telegram = next(c.id for c in ui_store.list_conversations() if c.channel == "telegram")
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await open_conversation(app, pilot, telegram)
        assert "📎 photo-1.jpg · image/jpeg · 48.2 KB" in text_of(app, "#timeline-body")
        await pilot.press("w", "enter")
        await settle(pilot)
        # Media are fetched from the provider with the account's credentials; this test's
        # config has no such account, and the report says so.
        assert notifications(app)[-1].startswith(
            "Not saved to ~/Downloads:\n  photo-1.jpg: no account named 'shop-telegram'")
        assert not any((home / "Downloads").iterdir())


async def test_a_remapped_save_key_is_shown_and_works(ui_config: Config, ui_store: Store,
                                                      home: Path) -> None:
    target = seed_attachments(ui_store)
    app = app_with(ui_config, ui_store, '[ui.keymap]\nconversation.save_attachments = "S"\n')
    async with app.run_test(size=(160, 40)) as pilot:
        await open_conversation(app, pilot, target)
        assert "📎 3 (S saves)" in text_of(app, "#conversation-header")
        assert footer(app)["Save attachments"] == "S"
        await pilot.press("w")
        assert isinstance(app.screen, ConversationScreen)
        await pilot.press("S")
        assert isinstance(app.screen, SaveAttachmentsScreen)
