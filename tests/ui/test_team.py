"""Team mode under Pilot: two agents' TUIs on one SQLite file, each with its own store object
(as two processes have), see each other's changes at their next store poll, and the reply lease
of one makes the other warn before sending. No sleeps: the test drives `poll_store()`."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import Static, TextArea

from agent_tui.config import AgentConfig, Config
from agent_tui.model import ConversationStatus
from agent_tui.store import Store, open_store
from agent_tui.ui.app import AgentApp
from agent_tui.ui.screens.conversation import ConversationScreen
from agent_tui.ui.screens.inbox import InboxScreen
from tests.ui.conftest import NOW, settle


@pytest.fixture
def jonas_store(ui_config: Config, ui_store: Store) -> Iterator[Store]:
    """Jonas's own connection to the seeded file (ui_store is Mia's)."""
    store = open_store(ui_config.store.path)
    yield store
    store.close()


def agent_app(config: Config, store: Store, name: str) -> AgentApp:
    config = dataclasses.replace(config, agent=AgentConfig(name=name))
    return AgentApp(config, store, None, clock=lambda: NOW, load_suggester=False)


def inbox(app: AgentApp) -> InboxScreen:
    screen = app.screen
    assert isinstance(screen, InboxScreen)
    return screen


def row_of(app: AgentApp, conversation_id: int) -> list[str]:
    """The cells of a conversation's row as the inbox table shows them."""
    return [str(cell) for cell in inbox(app).table.get_row(str(conversation_id))]


async def in_own_loop(app: AgentApp, pilot: Pilot[int], action: Callable[[], object]) -> None:
    """Run `action` in the app's own loop (where its screens find their app: with two apps in
    one test, the test's context names only the last one started), await what it returns (a
    pushed screen's mount), then settle: the screen on top mounted, its workers done."""
    done = asyncio.Event()

    async def run() -> None:
        result = action()
        if inspect.isawaitable(result):
            await result
        done.set()

    app.call_later(run)
    await done.wait()
    await settle(pilot)


async def poll(app: AgentApp, pilot: Pilot[int]) -> None:
    """One tick of the app's store poll, then the reload it starts."""
    await in_own_loop(app, pilot, app.poll_store)


def status_line(app: AgentApp) -> str:
    return str(app.screen.query_one("#status", Static).content)


async def test_two_tuis_see_each_others_close_assign_and_tag(
        ui_config: Config, ui_store: Store, jonas_store: Store) -> None:
    mia, jonas = agent_app(ui_config, ui_store, "Mia"), agent_app(ui_config, jonas_store, "Jonas")
    async with mia.run_test(size=(160, 30)) as mia_pilot, \
            jonas.run_test(size=(160, 30)) as jonas_pilot:
        await settle(mia_pilot)
        await settle(jonas_pilot)
        first, second = (c.id for c in inbox(mia).rows[:2])
        assert {first, second} <= {c.id for c in inbox(jonas).rows}
        assert row_of(jonas, first)[6:8] == ["", ""]               # nobody's, no tags

        await mia_pilot.press("a")                                 # Mia takes the first
        await mia_pilot.press("t", *"vip", "enter")                # ... tags it
        await settle(mia_pilot)
        await mia_pilot.press("j", "e")                            # ... and closes the second
        assert ui_store.get_conversation(second).status is ConversationStatus.CLOSED

        await poll(jonas, jonas_pilot)                             # Jonas's next poll tick
        shown = {c.id: c for c in inbox(jonas).rows}
        assert second not in shown                                 # closed: out of his queue
        assert (shown[first].assignee, shown[first].tags) == ("Mia", ["vip"])
        assert row_of(jonas, first)[6:8] == ["Mia", "vip"]

        # And the other way round: Jonas's change reaches Mia's TUI the same way.
        picked = inbox(jonas).selected_id()
        assert picked is not None
        await jonas_pilot.press("t", *"callback", "enter")
        assert "callback" in jonas_store.get_conversation(picked).tags
        await poll(mia, mia_pilot)
        assert "callback" in row_of(mia, picked)[7]


async def test_the_reply_lease_of_one_tui_makes_the_other_warn_before_sending(
        ui_config: Config, ui_store: Store, jonas_store: Store) -> None:
    mia, jonas = agent_app(ui_config, ui_store, "Mia"), agent_app(ui_config, jonas_store, "Jonas")
    target = next(c.id for c in ui_store.list_conversations() if c.subject == "Rücksendung")
    async with mia.run_test(size=(120, 40)) as mia_pilot, \
            jonas.run_test(size=(120, 40)) as jonas_pilot:
        await in_own_loop(mia, mia_pilot, lambda: mia.push_screen(ConversationScreen(target)))
        await in_own_loop(jonas, jonas_pilot,
                          lambda: jonas.push_screen(ConversationScreen(target)))
        await mia_pilot.press("r", *"Hallo Jonas, die Jacke")      # Mia starts a reply: lease
        assert jonas_store.lease_holder(f"reply:{target}") is not None

        await poll(jonas, jonas_pilot)                             # Jonas's next poll tick
        assert "Mia is replying" in status_line(jonas)
        await jonas_pilot.press("r", *"Hallo!", "ctrl+s")
        assert ui_store.outbox_rows(conversation_id=target) == []  # the first ctrl+s only warns
        assert jonas.screen.query_one("#composer", TextArea).text == "Hallo!"
        await jonas_pilot.press("escape")                          # Jonas leaves it to Mia

        await mia_pilot.press("ctrl+s")                            # Mia is not warned
        rows = ui_store.outbox_rows(conversation_id=target)
        assert [(r.payload["author"], r.payload["text"]) for r in rows] == \
            [("Mia", "Hallo Jonas, die Jacke")]
        assert jonas_store.lease_holder(f"reply:{target}") is None    # released on send
        await poll(jonas, jonas_pilot)
        assert "is replying" not in status_line(jonas)
