"""Merge proposals in the conversation, the contact screen (export, erase) and the stats screen:
each action checked in the store (or on disk) afterwards."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Input, Static
from textual.widgets._footer import FooterKey

from agent_tui.errors import NotFound
from agent_tui.insight.stats import compute_stats
from agent_tui.store import Store
from agent_tui.ui.app import AgentApp
from agent_tui.ui.screens.contact import ContactScreen, EraseContactScreen
from agent_tui.ui.screens.conversation import ConversationScreen
from agent_tui.ui.screens.inbox import InboxScreen
from agent_tui.ui.screens.stats import StatsScreen
from agent_tui.ui.widgets.confirm import ConfirmScreen
from tests.ui.conftest import NOW, seed_proposal, seed_replies, settle

MakeApp = Callable[[], AgentApp]
KIM = "Wo bleibt meine Bestellung?"


def text_of(app: AgentApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def printed(app: AgentApp, selector: str, width: int = 100) -> str:
    """What a Static holding Rich renderables (tables, the chart) shows, as plain text."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(
        app.screen.query_one(selector, Static).content)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def conversation_of(store: Store, subject: str) -> int:
    return next(c.id for c in store.list_conversations() if c.subject == subject)


async def open_conversation(pilot: object, app: AgentApp, store: Store, subject: str) -> None:
    await settle(pilot)
    app.push_screen(ConversationScreen(conversation_of(store, subject)))
    await settle(pilot)


def footer(app: AgentApp) -> dict[str, str]:
    return {key.description: key.key_display or key.key for key in app.screen.query(FooterKey)}


def notes(app: AgentApp) -> list[str]:
    return [n.message for n in app._notifications]


# --- merge proposals -------------------------------------------------------------------------


async def test_proposed_merge_is_shown_and_accepted(make_app: MakeApp, ui_store: Store) -> None:
    proposal, kim, sms = seed_proposal(ui_store)
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        header = text_of(app, "#conversation-header")
        assert "same customer? phone +491701234567 in a mail signature: " \
               f"contact {sms} · phone +491701234567" in header
        assert "y merges into this contact, x rejects" in header
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        assert "Paket" not in str(screen.history)        # the SMS is not part of Kim's history
        assert {"Accept merge": "y", "Reject merge": "x"}.items() <= footer(app).items()

        await pilot.press("y")
        assert isinstance(app.screen, ConfirmScreen)
        body = text_of(app, "#confirm-body")
        assert f"contact {sms} · phone +491701234567" in body
        assert f"contact {kim} · Kim Berger · email kim@example.org" in body
        await pilot.press("y")
        await settle(pilot)

        back: object = app.screen
        assert back is screen
        assert ui_store.merge_proposals() == []
        accepted = ui_store.merge_proposals(state="accepted")
        assert [(p.id, p.contact_a, p.merged_id) for p in accepted] == [(proposal, kim, sms)]
        with pytest.raises(NotFound):
            ui_store.get_contact(sms)
        assert {c.channel for c in ui_store.contact_conversations(kim)} == {"email", "sms"}
        # The timeline now holds the merged contact's whole history, both channels.
        assert [m.text for m in screen.history if m.channel == "sms"] == [
            "Ist mein Paket schon unterwegs?"]
        assert "same customer?" not in text_of(app, "#conversation-header")
        assert "Accept merge" not in footer(app) and "Reject merge" not in footer(app)
        assert "1 other conversation of this contact shown" in text_of(app,
                                                                       "#conversation-header")
        assert f"Contact {sms} merged into contact {kim}: one customer, one history" in notes(app)


async def test_proposed_merge_rejected_and_cancel_keeps_it(make_app: MakeApp,
                                                          ui_store: Store) -> None:
    proposal, kim, sms = seed_proposal(ui_store)
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        body = text_of(app, "#confirm-body")
        assert f"contact {kim} · Kim Berger" in body and f"contact {sms} · phone" in body
        await pilot.press("escape")                   # no: nothing changes
        await settle(pilot)
        assert [p.id for p in ui_store.merge_proposals()] == [proposal]

        await pilot.press("x", "enter")
        await settle(pilot)
        assert ui_store.merge_proposals() == []
        assert [p.id for p in ui_store.merge_proposals(state="rejected")] == [proposal]
        assert ui_store.get_contact(sms).identities      # both customers still there
        assert len(ui_store.contact_conversations(kim)) == 1
        assert "same customer?" not in text_of(app, "#conversation-header")
        assert f"Contacts {kim} and {sms} stay two customers" in notes(app)
        await pilot.press("y")                        # nothing left to accept: no dialog
        assert isinstance(app.screen, ConversationScreen)


# --- the contact screen ---------------------------------------------------------------------


async def test_contact_screen_shows_identities_conversations_and_counts(
        make_app: MakeApp, ui_store: Store) -> None:
    _, kim, sms = seed_proposal(ui_store)
    ui_store.merge_contacts(kim, sms)
    ui_store.add_note(conversation_of(ui_store, KIM), "Mia", "called back")
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ContactScreen) and screen.contact_id == kim
        assert text_of(app, "#contact-title") == (
            f" Contact {kim} · Kim Berger · 2 conversations, 2 messages")
        summary = text_of(app, "#contact-summary")
        assert "email    kim@example.org" in summary and "phone    +491701234567" in summary
        assert "2 in, 0 out · 1 note · 0 attachments · email, sms" in summary
        assert screen.table.row_count == 2
        # enter opens the conversation under the cursor (the newest first)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConversationScreen)
        assert app.screen.conversation_id == screen.facts.conversations[0].id  # type: ignore[union-attr]


async def test_export_writes_contact_json(make_app: MakeApp, ui_store: Store,
                                          tmp_path: Path) -> None:
    _, kim, sms = seed_proposal(ui_store)
    ui_store.merge_contacts(kim, sms)
    out = tmp_path / "requests" / "kim"
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("x")
        answer = app.screen.query_one(Input)
        assert answer.value.endswith(f"contact-{kim}-export")     # a default to start from
        answer.value = str(out)
        await pilot.press("enter")
        await settle(pilot)
        document = json.loads((out / "contact.json").read_text())
        assert document["contact"]["id"] == kim
        texts = [m["text"] for c in document["conversations"] for m in c["messages"]]
        assert "Ist mein Paket schon unterwegs?" in texts and len(texts) == 2
        assert (out / "summary.txt").is_file()
        assert isinstance(app.screen, ContactScreen) and app.screen.exported_to == out.resolve()
        assert any(str(out.resolve()) in n and "Exported 2 messages in 2 conversations" in n
                   for n in notes(app))

        # Exporting again into the same (now full) directory is refused, nothing overwritten.
        await pilot.press("x")
        app.screen.query_one(Input).value = str(out)
        await pilot.press("enter")
        await settle(pilot)
        assert any("exists and is not empty" in n for n in notes(app))


async def test_erase_names_what_goes_needs_the_word_and_returns_to_the_inbox(
        make_app: MakeApp, ui_store: Store) -> None:
    _, kim, sms = seed_proposal(ui_store)
    ui_store.merge_contacts(kim, sms)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("E")
        assert isinstance(app.screen, EraseContactScreen)
        what = str(app.screen.query_one("#erase-what Static", Static).render())
        assert "2 identities:" in what
        assert "email kim@example.org" in what and "phone +491701234567" in what
        assert "2 conversations, 2 messages:" in what
        assert "· Wo bleibt meine Bestellung? · open · 1 message" in what
        assert "· Ist mein Paket schon unterwegs? · open · 1 message" in what

        await pilot.press(*"erse", "enter")            # not the word: nothing happens
        await settle(pilot)
        assert isinstance(app.screen, EraseContactScreen)
        assert ui_store.get_contact(kim).identities
        await pilot.press(*"erase", "enter")
        await settle(pilot)

        assert isinstance(app.screen, InboxScreen)
        with pytest.raises(NotFound):
            ui_store.get_contact(kim)
        assert ui_store.find_contact("kim@example.org") is None
        assert ui_store.search("Paket") == [] and ui_store.search("Bestellung") == []
        assert KIM not in [c.subject for c in app.screen.rows]
        assert len(app.screen.rows) == 5
        assert any(n.startswith(f"Erased contact {kim} · Kim Berger") and
                   "2 identities, 2 conversations, 2 messages" in n for n in notes(app))


async def test_erase_server_that_cannot_be_reached_erases_nothing(
        make_app: MakeApp, ui_store: Store) -> None:
    kim = ui_store.get_conversation(
        next(c.id for c in ui_store.list_conversations() if c.subject == KIM)).contact_id
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("E")
        assert "erase server" in str(app.screen.query_one("#erase-what Static",
                                                          Static).render())
        await pilot.press(*"erase server", "enter")
        await settle(pilot)

        # This config has no mail account to delete the mail with: the store keeps everything.
        assert any("no account named 'shop-mail'" in n for n in notes(app))
        assert ui_store.get_contact(kim).identities
        assert ui_store.search("Bestellung")


async def test_erase_cancelled_keeps_everything(make_app: MakeApp, ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("E", *"erase", "escape")
        await settle(pilot)
        assert isinstance(app.screen, ContactScreen)
        assert ui_store.find_contact("kim@example.org") is not None


# --- stats ------------------------------------------------------------------------------------


async def test_stats_screen_shows_the_seeded_figures(make_app: MakeApp, ui_store: Store) -> None:
    seed_replies(ui_store)
    app = make_app()
    async with app.run_test(size=(120, 50)) as pilot:
        await settle(pilot)
        await pilot.press("S")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, StatsScreen) and screen.stats is not None
        expected = compute_stats(app.store, screen.stats.since, NOW, app.config.sla,
                                 app.business_hours)
        assert screen.stats.as_json() == expected.as_json()      # the CLI's figures
        body = printed(app, "#stats-body")
        assert "Sun 11-22 " in body and "Mon 11-23 " in body
        lines = body.splitlines()
        email = next(line for line in lines if line.startswith("email "))
        assert email.split()[1:4] == ["1", "30", "min"]            # answered, median
        assert "2 of 4 (50%)" in email
        assert "3 of 7 (43%)" in next(line for line in lines if line.startswith("all "))
        assert "Replies 2, answered automatically 1 (50%)" in body
        assert "Suggestions 1 taken unchanged, 0 edited, 0 ignored; 0 replies written " \
               "without one" in body
        assert text_of(app, "#stats-title").startswith(
            " Stats · 2026-10-24 10:00 – 2026-11-23 10:00 UTC (30d)")

        await pilot.press("p")                                     # a shorter period
        app.screen.query_one(Input).value = "12h"
        await pilot.press("enter")
        await settle(pilot)
        assert "Sun 11-22" not in printed(app, "#stats-body")
        assert "(12h)" in text_of(app, "#stats-title")
        await pilot.press("escape")
        assert isinstance(app.screen, InboxScreen)


async def test_stats_from_the_command_palette_on_any_screen(make_app: MakeApp,
                                                            ui_store: Store) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_conversation(pilot, app, ui_store, KIM)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Stats" in titles
        await pilot.press("ctrl+p", *"Stats")
        await settle(pilot)         # the palette searches in a worker of its own
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, StatsScreen)
        assert "3 of 7 (43%)" in printed(app, "#stats-body")
