"""Snapshots of every screen at 80x24 (SSH default) and 160x48. Update: pytest --snapshot-update."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent_tui.config import Config
from agent_tui.store import Store
from agent_tui.ui.app import SIXTEEN_COLOUR_THEME, AgentApp
from agent_tui.ui.screens.conversation import ConversationScreen
from tests.ui.conftest import NOW, seed_attachments, seed_proposal, seed_replies, settle

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


async def _settle(pilot: Any) -> None:
    await settle(pilot)


def _open(subject: str, *keys: str) -> Callable[[Any], Any]:
    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        store: Store = pilot.app.store
        target = next(c.id for c in store.list_conversations() if c.subject == subject)
        pilot.app.push_screen(ConversationScreen(target))
        await _settle(pilot)
        if keys:
            await pilot.press(*keys)
            await _settle(pilot)
    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_inbox(snap_compare: Any, make_app: Callable[[], AgentApp], size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES)
def test_conversation(snap_compare: Any, make_app: Callable[[], AgentApp],
                      size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=_open("Wo bleibt meine Bestellung?"))


@pytest.mark.parametrize("size", SIZES)
def test_reply_with_suggestions(snap_compare: Any, make_app: Callable[[], AgentApp],
                                size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_open("Rücksendung", "1"))


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, make_app: Callable[[], AgentApp], size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await _settle(pilot)
        # The table's height is known after its first paint; the scrollbar follows on the next.
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_hostile_message(snap_compare: Any, ui_config: Config, ui_store: Store) -> None:
    # Without knowledge: the snapshot is about how the text is shown, not what it matches.
    app = AgentApp(ui_config, ui_store, None, clock=lambda: NOW, load_suggester=False)
    assert snap_compare(app, terminal_size=(100, 30), run_before=_open("Achtung"))


def test_inbox_without_colour(snap_compare: Any, make_app: Callable[[], AgentApp],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR: overdue and urgent rows still stand out (marks, bold), not by colour alone."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_settle)


def test_conversation_in_sixteen_colours(snap_compare: Any,
                                         make_app: Callable[[], AgentApp]) -> None:
    app = make_app()
    app.theme = SIXTEEN_COLOUR_THEME
    assert snap_compare(app, terminal_size=(80, 24),
                        run_before=_open("Wo bleibt meine Bestellung?"))


@pytest.mark.parametrize("size", SIZES)
def test_conversation_with_attachments(snap_compare: Any, make_app: Callable[[], AgentApp],
                                       ui_store: Store, size: tuple[int, int]) -> None:
    seed_attachments(ui_store)
    assert snap_compare(make_app(), terminal_size=size, run_before=_open("Fotos vom Schaden"))


def test_save_attachments_prompt(snap_compare: Any, make_app: Callable[[], AgentApp],
                                 ui_store: Store, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "home" / "Downloads").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))      # the default is ~/Downloads
    seed_attachments(ui_store)
    assert snap_compare(make_app(), terminal_size=(80, 24),
                        run_before=_open("Fotos vom Schaden", "w", "down"))


@pytest.mark.parametrize("size", SIZES)
def test_conversation_with_merge_proposal(snap_compare: Any, make_app: Callable[[], AgentApp],
                                          ui_store: Store, size: tuple[int, int]) -> None:
    seed_proposal(ui_store)
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=_open("Wo bleibt meine Bestellung?"))


def test_accept_merge_confirmation(snap_compare: Any, make_app: Callable[[], AgentApp],
                                   ui_store: Store) -> None:
    seed_proposal(ui_store)
    assert snap_compare(make_app(), terminal_size=(80, 24),
                        run_before=_open("Wo bleibt meine Bestellung?", "y"))


def _merged_contact(store: Store) -> None:
    _, kim, sms = seed_proposal(store)
    store.merge_contacts(kim, sms)
    store.add_note(next(c.id for c in store.list_conversations() if c.contact_id == kim),
                   "Mia", "called back")


@pytest.mark.parametrize("size", SIZES)
def test_contact(snap_compare: Any, make_app: Callable[[], AgentApp], ui_store: Store,
                 size: tuple[int, int]) -> None:
    _merged_contact(ui_store)
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=_open("Wo bleibt meine Bestellung?", "c"))


@pytest.mark.parametrize("size", SIZES)
def test_erase_confirmation(snap_compare: Any, make_app: Callable[[], AgentApp],
                            ui_store: Store, size: tuple[int, int]) -> None:
    _merged_contact(ui_store)
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=_open("Wo bleibt meine Bestellung?", "c", "E", *"era"))


@pytest.mark.parametrize("size", SIZES)
def test_stats(snap_compare: Any, make_app: Callable[[], AgentApp], ui_store: Store,
               size: tuple[int, int]) -> None:
    seed_replies(ui_store)

    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press("S")
        await _settle(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
