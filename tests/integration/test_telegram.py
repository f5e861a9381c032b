"""The Telegram connector through the real python-telegram-bot against the local Bot API fake."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent_tui.demo.fakes.telegram_server import FakeTelegram
from agent_tui.engine.contacts import propose_merges
from agent_tui.engine.outbox import OutboxSender
from agent_tui.engine.replies import queue_reply
from agent_tui.engine.sync import sync_account
from agent_tui.loopback import free_port
from agent_tui.model import Channel, Direction, InboundMessage, OutboxState
from agent_tui.store import Store, open_store
from connectors.base import (
    AuthError,
    ConflictError,
    FetchBatch,
    OutboundMessage,
    PermanentError,
    TransientError,
    UncertainDelivery,
)
from connectors.telegram import TelegramConnector, TelegramSettings

pytestmark = pytest.mark.integration

ACCOUNT = "shop-telegram"
CURSOR_KEY = "telegram"


class FakeTime:
    """The connector's clock and sleep: waits are recorded and pass at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


ConnectorFactory = Callable[..., TelegramConnector]


@pytest.fixture
async def connector_for(fake: FakeTelegram,
                        time_: FakeTime) -> AsyncIterator[ConnectorFactory]:
    made: list[TelegramConnector] = []

    def make(**overrides: Any) -> TelegramConnector:
        values: dict[str, Any] = dict(name=ACCOUNT, token=fake.token, api_base=fake.base_url,
                                      poll_timeout=5, timeout=5.0, clock=time_.clock,
                                      sleep=time_.sleep)
        values.update(overrides)
        connector = TelegramConnector(TelegramSettings(**values))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "agent.db")
    yield opened
    opened.close()


async def fetch_all(connector: TelegramConnector, cursor: dict[str, Any] | None = None
                    ) -> list[FetchBatch]:
    return [batch async for batch in connector.fetch(cursor)]


async def sync_into(store: Store, connector: TelegramConnector) -> None:
    async for batch in connector.fetch(store.get_cursor(ACCOUNT, CURSOR_KEY)):
        store.ingest(ACCOUNT, batch.messages, cursor_key=CURSOR_KEY, cursor=batch.cursor)


def stored_texts(store: Store) -> list[str]:
    return [m.text for c in store.list_conversations() for m in store.get_messages(c.id)]


def sms_from(number: str, provider_id: str = "SM1") -> InboundMessage:
    return InboundMessage(channel=Channel.SMS, provider_id=provider_id,
                          direction=Direction.INBOUND, sender=number, sender_name="",
                          recipients=["+493012345678"], sent_at=datetime(2026, 11, 20, tzinfo=UTC),
                          subject="", text="Hallo")


def outbound(text: str, to: str = "42", in_reply_to: str = "") -> OutboundMessage:
    return OutboundMessage(channel=Channel.TELEGRAM, to=to, text=text, idempotency_key="k1",
                           in_reply_to=in_reply_to)


# -- inbound ---------------------------------------------------------------------------------


async def test_300_updates_with_a_crash_in_the_middle_none_lost_none_duplicated(
        fake: FakeTelegram, connector_for: ConnectorFactory, store: Store) -> None:
    expected = []
    for number in range(300):
        user = 1000 + number % 6
        fake.add_text(user, f"Kunde{user}", f"Nachricht {number}")
        expected.append(f"Nachricht {number}")

    first = connector_for(batch_size=40)
    batches = first.fetch(store.get_cursor(ACCOUNT, CURSOR_KEY))
    for _ in range(3):
        batch = await anext(batches)
        store.ingest(ACCOUNT, batch.messages, cursor_key=CURSOR_KEY, cursor=batch.cursor)
    fetched_not_stored = await anext(batches)       # the process dies before storing it
    assert len(fetched_not_stored.messages) == 40
    await batches.aclose()
    await first.close()
    assert len(stored_texts(store)) == 120
    # Only what was stored is confirmed: the batch fetched but not stored is still held.
    assert fake.pending_updates == 300 - 120

    second = connector_for(batch_size=40)
    await sync_into(store, second)
    texts = stored_texts(store)
    assert sorted(texts) == sorted(expected) and len(texts) == len(set(texts))
    assert len({c.contact_id for c in store.list_conversations()}) == 6
    # The last batch is confirmed only by the next call, after it was stored.
    assert fake.pending_updates == 300 % 40
    await sync_into(store, second)
    assert fake.pending_updates == 0 and len(stored_texts(store)) == 300
    offsets = [int(c["offset"]) for c in fake.calls("getUpdates") if "offset" in c]
    assert offsets == sorted(offsets)


async def test_kinds_of_messages(fake: FakeTelegram, connector_for: ConnectorFactory) -> None:
    first = fake.add_text(42, "Kim", "Hallo", username="kim_k", last_name="Kunde")
    fake.add_text(42, "Kim", "Antwort darauf", reply_to=first)
    fake.add_photo(42, "Kim", data=b"JPEG-bytes-of-the-parcel", caption="Das Paket")
    fake.add_document(42, "Kim", "../../etc/rechnung\u202e.pdf", b"%PDF-1.4", "application/pdf")
    fake.add_voice(42, "Kim", data=b"OggS-voice")
    fake.add_contact(42, "491701234567", first_name="Kim")
    connector = connector_for()
    [batch] = await fetch_all(connector)
    text, reply, photo, document, voice, contact = batch.messages
    assert (text.provider_id, text.sender, text.sender_name, text.thread_key) == (
        "42:1", "42", "Kim Kunde", "42")
    assert text.extra["username"] == "kim_k" and text.recipients == ["@shop_test_bot"]
    assert text.direction is Direction.INBOUND and text.sent_at.tzinfo is not None
    assert reply.in_reply_to == "42:1"
    assert photo.text == "Das Paket" and photo.attachments[0].content_type == "image/jpeg"
    assert await connector.fetch_attachment(photo.attachments[0].ref) == \
        b"JPEG-bytes-of-the-parcel"
    [pdf] = document.attachments
    assert pdf.name.endswith("etc_rechnung.pdf") and pdf.size == len(b"%PDF-1.4")
    assert not any(bad in pdf.name for bad in ("/", "..", "\u202e"))
    assert await connector.fetch_attachment(pdf.ref) == b"%PDF-1.4"
    assert voice.attachments[0].content_type == "audio/ogg"
    assert await connector.fetch_attachment(voice.attachments[0].ref) == b"OggS-voice"
    assert contact.extra["shared_phone"] == "+491701234567"
    assert "+491701234567" in contact.text


async def test_shared_phone_proposes_a_merge_with_the_sms_contact(
        fake: FakeTelegram, connector_for: ConnectorFactory, store: Store) -> None:
    """Through the real connector and the engine's sync: a shared own number proposes, a card of
    someone else does not, and nothing is merged."""
    store.ingest("shop-sms", [sms_from("+491701234567"), sms_from("+491709999999", "SM2")],
                 cursor_key="main", cursor=None)
    fake.add_text(42, "Kim", "Hallo, hier meine Nummer")
    fake.add_contact(42, "491701234567", first_name="Kim")
    fake.add_contact(42, "+49 170 9999999", first_name="Kim", card_name="Oma")
    result = await sync_account(store, connector_for(), ACCOUNT)
    assert result.ok and result.new == 3
    kim = store.find_contact("42")
    sms_contact = store.find_contact("+491701234567")
    assert kim is not None and sms_contact is not None and kim != sms_contact
    [proposal] = store.merge_proposals()
    assert {proposal.contact_a, proposal.contact_b} == {kim, sms_contact}
    assert proposal.reason == "Telegram user shared phone +491701234567"
    shared = store.get_message(proposal.message_id or 0)
    assert shared.sender == "42" and "+491701234567" in shared.text
    texts = stored_texts(store)
    assert any("Oma" in t and "+491709999999" in t for t in texts)
    assert [i.kind for i in store.get_contact(kim).identities] == ["telegram"]


async def test_sms_after_a_shared_phone_proposes_the_merge(
        fake: FakeTelegram, connector_for: ConnectorFactory, store: Store) -> None:
    fake.add_contact(77, "4915112345678", first_name="Jo")
    await sync_account(store, connector_for(), ACCOUNT)
    assert store.merge_proposals() == []
    later = store.ingest("shop-sms", [sms_from("+4915112345678")], cursor_key="main",
                         cursor=None)
    assert propose_merges(store, later.new_message_ids) == 1
    [proposal] = store.merge_proposals()
    assert proposal.reason.startswith("Telegram user shared phone +4915112345678")
    assert {proposal.contact_a, proposal.contact_b} == {store.find_contact("77"),
                                                        store.find_contact("+4915112345678")}


async def test_edited_message_updates_the_stored_text(
        fake: FakeTelegram, connector_for: ConnectorFactory, store: Store) -> None:
    connector = connector_for()
    message_id = fake.add_text(42, "Kim", "Wo ist mein Paket?")
    await sync_into(store, connector)
    fake.add_edit(42, message_id, "Wo ist mein Paket TW-12345?")
    [batch] = await fetch_all(connector, store.get_cursor(ACCOUNT, CURSOR_KEY))
    [edit] = batch.messages
    assert edit.provider_id == f"42:{message_id}" and edit.extra["edited"] is True
    result = store.ingest(ACCOUNT, batch.messages, cursor_key=CURSOR_KEY, cursor=batch.cursor)
    assert result.updated == 1 and result.new == 0
    [stored] = store.get_messages(store.list_conversations()[0].id)
    assert stored.edited and stored.text == "Wo ist mein Paket TW-12345?"


async def test_listen_wakes_on_a_new_update_without_confirming_it(
        fake: FakeTelegram, connector_for: ConnectorFactory, store: Store) -> None:
    connector = connector_for(poll_timeout=30)
    fake.add_text(42, "Kim", "eins")
    await sync_into(store, connector)
    news = connector.listen()
    woken = asyncio.ensure_future(anext(news))
    await fake.wait_until_polling()
    assert not woken.done()
    fake.add_text(42, "Kim", "zwei")
    await asyncio.wait_for(woken, 5)
    await news.aclose()
    await sync_into(store, connector)
    assert sorted(stored_texts(store)) == ["eins", "zwei"]


async def test_a_second_poller_gets_a_conflict_naming_the_bot(
        fake: FakeTelegram, connector_for: ConnectorFactory) -> None:
    fake.conflict_next()
    with pytest.raises(ConflictError) as caught:
        await fetch_all(connector_for())
    message = str(caught.value)
    assert ACCOUNT in message and "@shop_test_bot" in message
    assert "stop the other poller" in message and "\n" not in message

    fake.conflict_next(webhook=True)
    with pytest.raises(ConflictError, match="deleteWebhook"):
        await fetch_all(connector_for())

    # Two real pollers: the newer getUpdates ends the waiting one with 409.
    waiting = connector_for(poll_timeout=30).listen()
    first = asyncio.ensure_future(anext(waiting))
    await fake.wait_until_polling()
    assert await fetch_all(connector_for()) == []
    with pytest.raises(ConflictError, match="@shop_test_bot"):
        await asyncio.wait_for(first, 5)


async def test_refused_token_is_an_auth_error_naming_the_account(
        fake: FakeTelegram, connector_for: ConnectorFactory) -> None:
    connector = connector_for(token="999:wrong")
    with pytest.raises(AuthError, match=f"'{ACCOUNT}'.*token was refused") as caught:
        await connector.check()
    assert "999:wrong" not in "".join(traceback.format_exception(caught.value))
    with pytest.raises(AuthError):
        await fetch_all(connector)


async def test_check_is_one_line(connector_for: ConnectorFactory) -> None:
    line = await connector_for().check()
    assert "@shop_test_bot" in line and "\n" not in line


# -- outbound --------------------------------------------------------------------------------


async def test_customer_markup_is_sent_literally(fake: FakeTelegram,
                                                 connector_for: ConnectorFactory) -> None:
    text = "<b>Hallo</b> *fett* _kursiv_ [Link](http://evil.example) `code`"
    provider_id = await connector_for().send(outbound(text))
    [sent] = fake.sent
    assert sent.text == text and "parse_mode" not in sent.params
    assert provider_id == f"42:{sent.message_id}"


async def test_long_reply_is_split_on_paragraphs_and_paced_per_chat(
        fake: FakeTelegram, connector_for: ConnectorFactory, time_: FakeTime) -> None:
    first, second, third = "A" * 3000, "B " * 1000, "C" * 100
    text = f"{first}\n\n{second.strip()}\n\n{third}"
    provider_id = await connector_for().send(outbound(text, in_reply_to="42:7"))
    assert [s.text for s in fake.sent] == [first, f"{second.strip()}\n\n{third}"]
    assert [s.reply_to_message_id for s in fake.sent] == [7, None]
    assert provider_id == f"42:{fake.sent[-1].message_id}"
    assert time_.waits == [pytest.approx(1.0)]          # one message per second per chat


async def test_retry_after_is_obeyed(fake: FakeTelegram, connector_for: ConnectorFactory,
                                     time_: FakeTime) -> None:
    connector = connector_for()
    fake.retry_after_next(7, method="sendMessage")
    await connector.send(outbound("Danke!"))
    assert time_.waits == [7.0] and [s.text for s in fake.sent] == ["Danke!"]
    assert len(fake.calls("sendMessage")) == 2

    fake.retry_after_next(3, method="getUpdates")
    fake.add_text(42, "Kim", "Hallo")
    [batch] = await fetch_all(connector)
    assert time_.waits[-1] == 3.0 and [m.text for m in batch.messages] == ["Hallo"]

    # A wait longer than the connector will block goes back to the outbox with the delay.
    fake.retry_after_next(600, method="sendMessage")
    with pytest.raises(TransientError) as caught:
        await connector.send(outbound("Später"))
    assert caught.value.retry_after == 600 and len(fake.sent) == 1


async def test_blocked_bot_is_a_permanent_error(fake: FakeTelegram,
                                                connector_for: ConnectorFactory) -> None:
    fake.block_chat(42)
    with pytest.raises(PermanentError, match="blocked"):
        await connector_for().send(outbound("Hallo"))


async def test_failure_after_a_part_went_out_is_uncertain(
        fake: FakeTelegram, connector_for: ConnectorFactory, time_: FakeTime) -> None:
    wait = time_.sleep

    async def blocked_while_pacing(seconds: float) -> None:
        fake.block_chat(42)              # the customer blocks the bot between two parts
        await wait(seconds)

    connector = connector_for(sleep=blocked_while_pacing)
    with pytest.raises(UncertainDelivery, match="parts 1-1 of 2 were sent") as caught:
        await connector.send(outbound("A" * 4000 + "\n\n" + "B" * 200))
    assert "blocked" in str(caught.value) and [s.text for s in fake.sent] == ["A" * 4000]


async def test_unreachable_api_is_retried_with_backoff_then_transient(
        connector_for: ConnectorFactory, time_: FakeTime) -> None:
    connector = connector_for(api_base=f"http://127.0.0.1:{free_port()}", max_attempts=3)
    with pytest.raises(TransientError, match="after 3 attempts"):
        await connector.send(outbound("Hallo"))
    assert time_.waits == [1.0, 2.0]


async def test_timeout_after_the_request_went_out_is_uncertain(
        fake: FakeTelegram, connector_for: ConnectorFactory) -> None:
    connector = connector_for(timeout=0.3)
    await connector.check()
    fake.slow_next(1.0, method="sendMessage")
    with pytest.raises(UncertainDelivery, match="cannot tell"):
        await connector.send(outbound("Ihre Bestellung ist unterwegs"))
    # It did reach Telegram: sending it again would have sent it twice.
    assert [s.text for s in fake.sent] == ["Ihre Bestellung ist unterwegs"]
    assert len(fake.calls("sendMessage")) == 1


async def test_crash_in_sending_is_marked_uncertain_not_resent(
        fake: FakeTelegram, connector_for: ConnectorFactory, store: Store) -> None:
    connector = connector_for()
    fake.add_text(42, "Kim", "Wann kommt mein Paket?")
    await sync_into(store, connector)
    conversation = store.list_conversations()[0]
    assert conversation.channel is Channel.TELEGRAM
    queue_reply(store, conversation.id, "Morgen.", author="Mia")
    claimed = store.outbox_claim_next(datetime.now(UTC), holder="host-gone:1")
    assert claimed is not None                    # ...and the process dies in `sending`
    store._db.execute("UPDATE outbox SET attempted_at='2000-01-01T00:00:00.000000Z'")

    sender = OutboxSender(store, {ACCOUNT: connector}, {ACCOUNT: "@shop_test_bot"})
    result = await sender.flush()
    assert [o.state for o in result.outcomes] == ["uncertain"]
    [row] = store.outbox_rows()
    assert row.state is OutboxState.UNCERTAIN and "Telegram cannot tell" in row.last_error
    assert fake.sent == []
    assert (await sender.flush()).outcomes == []


async def test_reply_from_the_outbox_reaches_the_customer(
        fake: FakeTelegram, connector_for: ConnectorFactory, store: Store) -> None:
    connector = connector_for()
    fake.add_text(42, "Kim", "Habt ihr samstags geöffnet?")
    await sync_into(store, connector)
    conversation = store.list_conversations()[0]
    queue_reply(store, conversation.id, "Ja, 10-14 Uhr.", author="Mia")
    result = await OutboxSender(store, {ACCOUNT: connector}, {}).flush()
    assert [o.state for o in result.outcomes] == ["sent"]
    [sent] = fake.sent
    assert (sent.chat_id, sent.text) == (42, "Ja, 10-14 Uhr.")
    assert result.outcomes[0].provider_id == f"42:{sent.message_id}"


def test_settings_never_show_the_token() -> None:
    settings = TelegramSettings(name=ACCOUNT, token="123:SECRET")
    assert "SECRET" not in repr(settings) and "SECRET" not in repr(replace(settings))
