"""The outbox sender's decisions with a scripted connector (real servers: tests/integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from agent_tui.engine.outbox import OutboxSender, message_id_for
from agent_tui.engine.replies import queue_reply
from agent_tui.model import Channel, Cursor, Direction, InboundMessage, OutboxState
from agent_tui.store import Store
from connectors.base import (
    Connector,
    FetchBatch,
    OutboundMessage,
    PermanentError,
    TransientError,
    UncertainDelivery,
)
from tests.conftest import store_sql


def later() -> datetime:
    """The sender's clock: after the store's own (real) enqueue time, so queued rows are due."""
    return datetime.now(UTC) + timedelta(minutes=1)


class ScriptedConnector(Connector):
    """Answers send() from a script of results; records what it was asked to send."""

    name = "shop"

    def __init__(self, results: list[object], delivered: set[str] | None = None) -> None:
        self.results = results
        self.sent: list[OutboundMessage] = []
        self.delivered = delivered or set()     # idempotency keys the provider already has

    async def fetch(self, cursor: Cursor | None) -> AsyncIterator[FetchBatch]:
        if False:
            yield FetchBatch([], {}, True)

    async def send(self, message: OutboundMessage) -> str:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        self.sent.append(message)
        return str(result)

    async def reconcile(self, message: OutboundMessage, attempted_at: datetime) -> str | None:
        if message.idempotency_key in self.delivered:
            return message.message_id or "SM-found"
        return None

    async def check(self) -> str:
        return "ok"


@pytest.fixture
def store(any_store: Store) -> Store:
    s = any_store                               # SQLite, then PostgreSQL (tests/conftest.py)
    s.ingest("shop", [InboundMessage(
        channel=Channel.EMAIL, provider_id="q1@example.org", direction=Direction.INBOUND,
        sender="kim@example.org", sender_name="Kim", recipients=["service@shop.example"],
        sent_at=datetime.now(UTC) - timedelta(hours=1), subject="Wo ist mein Paket?", text="Hallo",
        references=["older@example.org"])], cursor_key="main", cursor=None)
    return s


def sender_for(store: Store, connector: Connector) -> OutboxSender:
    return OutboxSender(store, {"shop": connector}, {"shop": "service@shop.example"},
                        clock=later)


async def test_reply_goes_to_the_customer_with_threading(store: Store) -> None:
    conv = store.list_conversations()[0].id
    oid = queue_reply(store, conv, "Ihr Paket ist unterwegs.", author="Mia")
    connector = ScriptedConnector(["msg-1"])
    result = await sender_for(store, connector).flush()
    assert [o.state for o in result.outcomes] == ["sent"]
    out = connector.sent[0]
    assert (out.to, out.in_reply_to) == ("kim@example.org", "q1@example.org")
    assert out.references == ["older@example.org", "q1@example.org"]
    row = store.outbox_rows()[0]
    assert out.message_id == message_id_for(row.idempotency_key, "service@shop.example")
    assert store.outbox_rows()[0].state is OutboxState.SENT and row.id == oid
    assert [m.direction for m in store.get_messages(conv)] == [Direction.INBOUND,
                                                               Direction.OUTBOUND]


async def test_telegram_replies_go_to_the_chat_and_quote_in_groups(store: Store) -> None:
    def telegram(chat: str, message: int, user: str) -> InboundMessage:
        return InboundMessage(
            channel=Channel.TELEGRAM, provider_id=f"{chat}:{message}",
            direction=Direction.INBOUND, sender=user, sender_name="Sam", recipients=[],
            sent_at=datetime.now(UTC), subject="", text="Habt ihr offen?", thread_key=chat)

    store.ingest("shop", [telegram("-1001234", 55, "4242"), telegram("4243", 7, "4243")],
                 cursor_key="telegram", cursor=None)
    by_chat = {c.contact_address: c.id for c in store.list_conversations()
               if c.channel is Channel.TELEGRAM}
    queue_reply(store, by_chat["4242"], "Ja, bis 18 Uhr.", author="Mia")
    queue_reply(store, by_chat["4243"], "Ja.", author="Mia")
    connector = ScriptedConnector(["-1001234:56", "4243:8"])

    await sender_for(store, connector).flush()

    group, private = connector.sent
    assert (group.to, group.extra["chat_id"], group.in_reply_to) == ("4242", "-1001234",
                                                                     "-1001234:55")
    assert (private.extra["chat_id"], private.in_reply_to) == ("4243", "")


async def test_transient_error_retries_later_permanent_fails(store: Store) -> None:
    conv = store.list_conversations()[0].id
    queue_reply(store, conv, "one", author="Mia")
    connector = ScriptedConnector([TransientError("421 busy")])
    result = await sender_for(store, connector).flush()
    assert [o.state for o in result.outcomes] == ["retry"]
    row = store.outbox_rows()[0]
    assert row.state is OutboxState.QUEUED and row.next_attempt_at > later()
    # Not due yet: a second flush sends nothing.
    assert (await sender_for(store, ScriptedConnector([])).flush()).outcomes == []
    store_sql(store, "UPDATE outbox SET next_attempt_at='2000-01-01T00:00:00.000000Z'")
    connector = ScriptedConnector([PermanentError("550 no such user")])
    await sender_for(store, connector).flush()
    row = store.outbox_rows()[0]
    assert row.state is OutboxState.FAILED and "550" in row.last_error


async def test_crash_in_sending_is_reconciled_not_resent(store: Store) -> None:
    conv = store.list_conversations()[0].id
    queue_reply(store, conv, "sent before the crash", author="Mia")
    queue_reply(store, conv, "not sent before the crash", author="Mia")
    rows = store.outbox_rows()
    for _ in rows:
        store.outbox_claim_next(later(), holder="host-gone:1")
    store_sql(store, "UPDATE outbox SET attempted_at='2000-01-01T00:00:00.000000Z'")
    connector = ScriptedConnector(["msg-2"], delivered={rows[0].idempotency_key})
    result = await sender_for(store, connector).flush()
    states = {o.outbox_id: o.state for o in result.outcomes}
    assert states[rows[0].id] == "reconciled"
    assert [m.text for m in connector.sent] == ["not sent before the crash"]
    assert {r.state for r in store.outbox_rows()} == {OutboxState.SENT}


async def test_uncertain_delivery_waits_for_a_person(store: Store) -> None:
    conv = store.list_conversations()[0].id
    queue_reply(store, conv, "?", author="Mia")
    connector = ScriptedConnector([UncertainDelivery("connection lost after DATA")])
    await sender_for(store, connector).flush()
    assert store.outbox_rows()[0].state is OutboxState.UNCERTAIN
    assert (await sender_for(store, ScriptedConnector([])).flush()).outcomes == []
