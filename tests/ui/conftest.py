"""A seeded store and a fixed clock, so Pilot tests and snapshots are repeatable."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import textual.constants

from agent_tui.config import Config, parse_config
from agent_tui.model import Channel, Direction
from agent_tui.store import Store, open_store
from agent_tui.ui.app import AgentApp
from connectors.base import InboundMessage

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KNOWLEDGE = Path(__file__).resolve().parent / "knowledge.de.toml"
HOSTILE = "Hallo \x1b[31mrot\x1b[0m [@click=app.quit]klick[/] \u202egnirts\u202c [bold]fett[/bold]"


@pytest.fixture(autouse=True)
def true_colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app picks its theme from the terminal's colours; pin them so snapshots match."""
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "truecolor")


@pytest.fixture(autouse=True)
def utc_local_time() -> Iterator[None]:
    """Times on screen use the local zone; pin it so snapshots match on every machine."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def _mail(i: int, subject: str, text: str, sender: str, name: str,
          minutes_ago: int) -> InboundMessage:
    return InboundMessage(channel=Channel.EMAIL, provider_id=f"m{i}@example.org",
                          direction=Direction.INBOUND, sender=sender, sender_name=name,
                          recipients=["service@shop.example"],
                          sent_at=NOW - timedelta(minutes=minutes_ago), subject=subject,
                          text=text)


def chat(channel: Channel, pid: str, sender: str, text: str, minutes_ago: int,
          name: str = "") -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=pid, direction=Direction.INBOUND,
                          sender=sender, sender_name=name, recipients=[],
                          sent_at=NOW - timedelta(minutes=minutes_ago), subject="", text=text)


def seed(store: Store) -> None:
    store.ingest("shop-mail", [
        _mail(1, "Wo bleibt meine Bestellung?", "Hallo,\nwo bleibt meine Bestellung 10234?\n"
              "> Ihre Bestellung wurde versandt\n> am Montag\n> mit DHL\n> Gruß\nDanke, Kim",
              "kim@example.org", "Kim Berger", 300),
        _mail(2, "Rücksendung", "Kann ich die Jacke zurückschicken? Sie ist zu klein.",
              "jonas@example.org", "Jonas Weber", 45),
        _mail(3, "Rechnung", "Bitte schicken Sie mir eine Kopie der Rechnung.",
              "lea@example.org", "Lea Fischer", 2000),
        _mail(4, "Achtung", HOSTILE, "evil@example.org", "Mallory [red]X[/red]", 20),
    ], cursor_key="main", cursor=None)
    store.ingest("shop-sms", [
        chat(Channel.SMS, "SM1", "+491701234567", "Ist mein Paket schon unterwegs?", 50),
        chat(Channel.WHATSAPP, "WA1", "+491709876543", "Die Tasse kam kaputt an :(", 30,
              "Mehmet"),
    ], cursor_key="main", cursor=None)
    store.ingest("shop-telegram", [
        chat(Channel.TELEGRAM, "7:1", "7", "Habt ihr am Samstag geöffnet?", 10, "Sam Telegram"),
    ], cursor_key="main", cursor=None)


@pytest.fixture
def ui_config(tmp_path: Path) -> Config:
    return parse_config(
        f'[agent]\nname = "Mia"\n[store]\npath = "{tmp_path / "agent.db"}"\n'
        f'[knowledge]\npath = "{KNOWLEDGE}"\n', tmp_path / "agent-tui.toml")


@pytest.fixture
def ui_store(ui_config: Config) -> Iterator[Store]:
    store = open_store(ui_config.store.path)
    seed(store)
    yield store
    store.close()


@pytest.fixture
def make_app(ui_config: Config, ui_store: Store) -> object:
    from agent_tui.engine.suggestions import load_suggester

    suggester = load_suggester(ui_config)

    def make() -> AgentApp:
        return AgentApp(ui_config, ui_store, None, clock=lambda: NOW, suggester=suggester)

    return make


async def settle(pilot: Any) -> None:
    """Wait until the app's workers are done. A load superseded by a newer one (exclusive
    workers) ends cancelled, which is fine; a worker that crashed fails the test."""
    import asyncio

    from textual.worker import WorkerState

    await pilot.pause()
    for _ in range(5):
        # The engine's worker runs for the app's lifetime; everything else finishes.
        workers = [w for w in pilot.app.workers if w.group != "engine"]
        if not workers:
            break
        await asyncio.gather(*(w.wait() for w in workers), return_exceptions=True)
        crashed = [w for w in workers if w.state is WorkerState.ERROR]
        assert not crashed, f"worker crashed: {crashed[0].error!r}"
    await pilot.pause()
