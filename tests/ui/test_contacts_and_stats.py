"""Merge proposals in the conversation:
each action checked in the store (or on disk) afterwards."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from agent_tui.errors import NotFound
from agent_tui.store import Store
from agent_tui.ui.app import AgentApp
from agent_tui.ui.screens.conversation import ConversationScreen
from agent_tui.ui.widgets.confirm import ConfirmScreen
from tests.ui.conftest import seed_proposal, settle

MakeApp = Callable[[], AgentApp]
KIM = "Wo bleibt meine Bestellung?"


def text_of(app: AgentApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


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
