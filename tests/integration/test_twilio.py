"""The Twilio connector through the real `twilio` library against the local look-alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_tui.demo.fakes.twilio_server import FakeMessage, FakeTwilio
from agent_tui.model import Channel, Direction
from connectors.base import (
    AuthError,
    Cursor,
    FetchBatch,
    InboundMessage,
    OutboundMessage,
    PermanentError,
    TransientError,
)
from connectors.twilio import TwilioConnector, TwilioSettings

pytestmark = pytest.mark.integration

SHOP = "+493012345678"
SHOP_WHATSAPP = "whatsapp:+493012345678"
CUSTOMER = "+491701234567"
SECRET_REF = "env:TWILIO_AUTH_TOKEN"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    server = FakeTwilio()
    await server.start()
    yield server
    await server.stop()


def settings_for(fake: FakeTwilio, **overrides: Any) -> TwilioSettings:
    base = TwilioSettings(
        name="shop-sms", account_sid=fake.account_sid, auth_token=fake.auth_token,
        sms_from=SHOP, whatsapp_from=SHOP_WHATSAPP, api_base=fake.base_url,
        secret_ref=SECRET_REF, page_size=100, timeout=5.0, retry_base_delay=0.01)
    return replace(base, **overrides)


@pytest.fixture
async def connector(fake: FakeTwilio) -> AsyncIterator[TwilioConnector]:
    made = TwilioConnector(settings_for(fake))
    yield made
    await made.close()


async def fetch_all(connector: TwilioConnector,
                    cursor: Cursor | None) -> tuple[list[InboundMessage], Cursor, list[FetchBatch]]:
    batches = [batch async for batch in connector.fetch(cursor)]
    assert batches[-1].done and not any(b.done for b in batches[:-1])
    messages = [m for b in batches for m in b.messages]
    return messages, batches[-1].cursor, batches


def inbound(messages: list[InboundMessage]) -> list[InboundMessage]:
    return [m for m in messages if m.direction is Direction.INBOUND and "event" not in m.extra]


def reply(text: str, channel: Channel = Channel.SMS, **extra: Any) -> OutboundMessage:
    return OutboundMessage(channel=channel, to=CUSTOMER, text=text, idempotency_key="k1",
                           extra=extra)


def posts(fake: FakeTwilio) -> int:
    return sum(1 for method, path in fake.requests if method == "POST")


# -- inbound sync ---------------------------------------------------------------------------------


async def test_sync_1000_messages_across_pages_then_3_new(fake: FakeTwilio,
                                                          connector: TwilioConnector) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    for i in range(1000):
        # Pairs share a second, as bursts do; spread over three days of date filters.
        fake.add_inbound(CUSTOMER, SHOP, f"message {i}", start + timedelta(minutes=4 * (i // 2)))

    messages, cursor, batches = await fetch_all(connector, None)

    got = inbound(messages)
    assert len(got) == 1000
    assert {m.text for m in got} == {f"message {i}" for i in range(1000)}
    assert len(batches) >= 10                      # page_size 100
    # Only the last batch moves the cursor: a crash part-way refetches instead of skipping.
    assert all(b.cursor == {} for b in batches[:-1])
    assert cursor["messages"][SHOP]["at"] is not None

    for i in range(3):
        fake.add_inbound(CUSTOMER, SHOP, f"new {i}")
    messages, cursor, _ = await fetch_all(connector, cursor)
    assert sorted(m.text for m in inbound(messages)) == ["new 0", "new 1", "new 2"]
    # The cursor query used a date filter, not a full listing.
    assert any("DateSent%3E=" in path for _, path in fake.requests[-8:])

    messages, _, _ = await fetch_all(connector, cursor)
    assert inbound(messages) == []


async def test_messages_arriving_during_paging_are_neither_duplicated_nor_lost(
        fake: FakeTwilio, connector: TwilioConnector) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    for i in range(250):
        fake.add_inbound(CUSTOMER, SHOP, f"old {i}", start + timedelta(seconds=i))

    batches: list[FetchBatch] = []
    async for batch in connector.fetch(None):
        if not batches:
            # Newer messages shift Twilio's offset paging: the next pages repeat 7 SIDs.
            for i in range(7):
                fake.add_inbound(CUSTOMER, SHOP, f"during {i}")
        batches.append(batch)
    first = inbound([m for b in batches for m in b.messages])
    sids = [m.provider_id for m in first]
    assert len(sids) == len(set(sids)) == 250

    messages, _, _ = await fetch_all(connector, batches[-1].cursor)
    assert sorted(m.text for m in inbound(messages)) == [f"during {i}" for i in range(7)]


async def test_new_message_in_the_cursors_own_second_is_found(
        fake: FakeTwilio, connector: TwilioConnector) -> None:
    second = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    fake.add_inbound(CUSTOMER, SHOP, "a", second)
    fake.add_inbound(CUSTOMER, SHOP, "b", second)
    messages, cursor, _ = await fetch_all(connector, None)
    assert sorted(m.text for m in inbound(messages)) == ["a", "b"]
    assert len(cursor["messages"][SHOP]["sids"]) == 2

    fake.add_inbound(CUSTOMER, SHOP, "c", second)
    messages, _, _ = await fetch_all(connector, cursor)
    assert [m.text for m in inbound(messages)] == ["c"]


async def test_sms_and_whatsapp_from_one_number_share_the_sender(
        fake: FakeTwilio, connector: TwilioConnector) -> None:
    fake.add_inbound("0170 1234567", SHOP, "per SMS")
    fake.add_inbound("whatsapp:+491701234567", SHOP_WHATSAPP, "per WhatsApp")

    messages, _, _ = await fetch_all(connector, None)

    by_text = {m.text: m for m in inbound(messages)}
    sms, whatsapp = by_text["per SMS"], by_text["per WhatsApp"]
    assert sms.sender == whatsapp.sender == CUSTOMER
    assert (sms.channel, whatsapp.channel) == (Channel.SMS, Channel.WHATSAPP)
    assert sms.thread_key == f"sms:{CUSTOMER}"
    assert whatsapp.thread_key == f"whatsapp:{CUSTOMER}"
    assert sms.recipients == whatsapp.recipients == [SHOP]
    assert sms.defects == [] and whatsapp.defects == []


async def test_unparsable_sender_is_kept_with_a_note(fake: FakeTwilio,
                                                     connector: TwilioConnector) -> None:
    fake.add_inbound("PAKETDIENST", SHOP, "Ihr Paket kommt \x1b[31mheute")
    messages, _, _ = await fetch_all(connector, None)
    [message] = inbound(messages)
    assert message.sender == "PAKETDIENST"
    assert "PAKETDIENST" in message.defects[0]
    assert message.text == "Ihr Paket kommt heute"           # terminal control removed


async def test_media_become_attachments_fetched_on_demand(fake: FakeTwilio,
                                                          connector: TwilioConnector) -> None:
    fake.add_inbound("whatsapp:" + CUSTOMER, SHOP_WHATSAPP, "Foto vom Schaden",
                     media=[("image/jpeg", b"\xff\xd8jpeg bytes")])
    messages, _, _ = await fetch_all(connector, None)
    [message] = inbound(messages)
    [attachment] = message.attachments
    assert attachment.content_type == "image/jpeg"
    assert attachment.name.endswith(".jpg") and "/" not in attachment.name
    assert attachment.ref.startswith(fake.base_url)
    assert await connector.fetch_attachment(attachment.ref) == b"\xff\xd8jpeg bytes"
    with pytest.raises(PermanentError):
        await connector.fetch_attachment("http://127.0.0.2/elsewhere")


async def test_missed_calls_and_voicemail_become_events(fake: FakeTwilio,
                                                        connector: TwilioConnector) -> None:
    fake.add_call("0170 1234567", SHOP, "no-answer")
    fake.add_call("+491709999999", SHOP, "busy")
    fake.add_call("+491708888888", SHOP, "completed", duration=120)       # answered: no event
    fake.add_call("+491707777777", SHOP, "completed", voicemail_text="Bitte rufen Sie zurück")

    messages, cursor, _ = await fetch_all(connector, None)

    events = {m.sender: m for m in messages if m.extra.get("event") == "missed_call"}
    assert set(events) == {CUSTOMER, "+491709999999", "+491707777777"}
    assert events[CUSTOMER].text == "Missed call"
    assert events[CUSTOMER].channel is Channel.SMS
    assert events[CUSTOMER].thread_key == f"sms:{CUSTOMER}"
    voicemail = events["+491707777777"]
    assert voicemail.text == "Voicemail: Bitte rufen Sie zurück"
    assert voicemail.attachments[0].content_type == "audio/x-wav"

    messages, _, _ = await fetch_all(connector, cursor)
    assert [m for m in messages if "event" in m.extra] == []


async def test_voicemail_waits_for_its_transcription(fake: FakeTwilio,
                                                     connector: TwilioConnector) -> None:
    call = fake.add_call(CUSTOMER, SHOP, "completed", voicemail_text="",
                         transcription_status="in-progress")
    messages, cursor, _ = await fetch_all(connector, None)
    assert [m for m in messages if "event" in m.extra] == []
    assert call.sid in cursor["voicemail_pending"]

    transcription = fake.recordings[0].transcriptions[0]
    transcription.status, transcription.text = "completed", "Rückruf bitte"
    messages, cursor, _ = await fetch_all(connector, cursor)
    assert [m.text for m in messages if "event" in m.extra] == ["Voicemail: Rückruf bitte"]
    assert cursor["voicemail_pending"] == {}


# -- delivery status ------------------------------------------------------------------------------


async def test_delivery_status_of_our_messages(fake: FakeTwilio,
                                               connector: TwilioConnector) -> None:
    sid = await connector.send(reply("Ihr Paket ist unterwegs"))
    # Queued at Twilio it has no date_sent yet, so the DateSent-filtered list cannot show it.
    messages, cursor, _ = await fetch_all(connector, None)
    assert [m for m in messages if m.direction is Direction.OUTBOUND] == []

    fake.set_status(sid, "sent")
    messages, cursor, _ = await fetch_all(connector, cursor)
    [update] = [m for m in messages if m.direction is Direction.OUTBOUND]
    assert (update.provider_id, update.delivery_status) == (sid, "sent")
    assert update.recipients == [CUSTOMER] and update.sender == SHOP
    assert update.extra["status_update"] is True

    messages, cursor, _ = await fetch_all(connector, cursor)
    assert [m for m in messages if m.direction is Direction.OUTBOUND] == []

    fake.set_status(sid, "undelivered", 30003, "Unreachable destination handset")
    messages, cursor, _ = await fetch_all(connector, cursor)
    [update] = [m for m in messages if m.direction is Direction.OUTBOUND]
    assert update.delivery_status == "undelivered"
    assert update.extra["error_code"] == 30003
    assert update.extra["delivery_error"] == "Twilio error 30003: unreachable handset"


# -- sending --------------------------------------------------------------------------------------


async def test_send_sms_and_whatsapp(fake: FakeTwilio, connector: TwilioConnector) -> None:
    fake.add_inbound("whatsapp:" + CUSTOMER, SHOP_WHATSAPP, "Hallo?")
    sms_sid = await connector.send(reply("Per SMS"))
    whatsapp_sid = await connector.send(reply(
        "Per WhatsApp", Channel.WHATSAPP,
        last_inbound_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat()))
    sms, whatsapp = fake.created
    assert (sms.sid, sms.from_, sms.to, sms.body) == (sms_sid, SHOP, CUSTOMER, "Per SMS")
    assert (whatsapp.sid, whatsapp.from_, whatsapp.to) == (
        whatsapp_sid, SHOP_WHATSAPP, "whatsapp:" + CUSTOMER)


async def test_429_then_success(fake: FakeTwilio, connector: TwilioConnector) -> None:
    fake.fail_next(429, count=2, method="POST")
    sid = await connector.send(reply("Danke!"))
    assert [m.sid for m in fake.created] == [sid]
    assert posts(fake) == 3

    fake.fail_next(429, count=2, method="GET")
    fake.add_inbound(CUSTOMER, SHOP, "Noch eine Frage")
    messages, _, _ = await fetch_all(connector, None)
    assert [m.text for m in inbound(messages)] == ["Noch eine Frage"]


async def test_429_for_too_long_is_a_transient_error(fake: FakeTwilio,
                                                     connector: TwilioConnector) -> None:
    fake.fail_next(429, count=10, method="POST")
    with pytest.raises(TransientError, match="429"):
        await connector.send(reply("Danke!"))
    assert fake.created == []
    assert posts(fake) == connector.settings.max_attempts


async def test_dropped_connection_after_create_is_reconciled_not_resent(
        fake: FakeTwilio, connector: TwilioConnector) -> None:
    fake.drop_next(method="POST")
    sid = await connector.send(reply("Ihre Rücksendung ist angekommen"))
    assert [m.sid for m in fake.created] == [sid]
    # Found although Twilio still holds it queued, with no date_sent (as the real API has it).
    assert fake.created[0].status == "queued" and fake.created[0].date_sent is None
    assert posts(fake) == 1


async def test_reconcile_finds_a_queued_message_among_many_pages_of_older_ones(
        fake: FakeTwilio, connector: TwilioConnector) -> None:
    # Two pages of our older replies to the same customer, all delivered long ago.
    text = "Neu und noch in der Warteschlange"
    for number in range(150):
        sent = datetime.now(UTC) - timedelta(days=2, minutes=number)
        fake.messages.append(FakeMessage(
            sid=fake.new_sid("SM"), from_=SHOP, to=CUSTOMER, body=text,
            direction="outbound-api", status="delivered", date_created=sent, date_sent=sent))
    fake.drop_next(method="POST")
    sid = await connector.send(reply(text))
    [new] = [m for m in fake.created if m.status == "queued"]
    assert sid == new.sid and posts(fake) == 1


async def test_500_without_a_message_is_a_transient_error(fake: FakeTwilio,
                                                          connector: TwilioConnector) -> None:
    fake.fail_next(500, method="POST")
    with pytest.raises(TransientError, match="safe to retry"):
        await connector.send(reply("Hallo"))
    assert fake.created == []
    assert fake.requests[-1][0] == "GET"             # it looked before giving up


async def test_reconcile_after_a_crash_in_sending(fake: FakeTwilio,
                                                  connector: TwilioConnector) -> None:
    attempted_at = datetime.now(UTC)
    out = reply("Die Rechnung kommt per Post")
    assert await connector.reconcile(out, attempted_at) is None

    # The process that crashed had sent it; a new process reconciles before any retry.
    sent_sid = await connector.send(out)
    restarted = TwilioConnector(settings_for(fake))
    try:
        assert await restarted.reconcile(out, attempted_at) == sent_sid
        assert await restarted.reconcile(reply("anderer Text"), attempted_at) is None
        later = attempted_at + timedelta(minutes=10)
        assert await restarted.reconcile(out, later) is None
    finally:
        await restarted.close()
    assert len(fake.created) == 1


async def test_whatsapp_outside_the_window_is_refused(fake: FakeTwilio,
                                                      connector: TwilioConnector) -> None:
    stale = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    with pytest.raises(PermanentError, match="template"):
        await connector.send(reply("Hallo", Channel.WHATSAPP, last_inbound_at=stale))
    assert posts(fake) == 0

    # Without a known last message Twilio decides: error 63016.
    with pytest.raises(PermanentError, match="63016"):
        await connector.send(reply("Hallo", Channel.WHATSAPP))

    sid = await connector.send(reply("", Channel.WHATSAPP, last_inbound_at=stale,
                                     template={"sid": "HX" + "1" * 32,
                                               "variables": {"1": "Mia"}}))
    assert fake.created[-1].sid == sid
    assert fake.created[-1].content_sid == "HX" + "1" * 32


async def test_wrong_token_names_account_and_reference_never_the_token(
        fake: FakeTwilio) -> None:
    token = "wrong-token-very-secret"
    bad = TwilioConnector(settings_for(fake, auth_token=token))
    try:
        for attempt in (bad.check(), bad.send(reply("x")), fetch_all(bad, None)):
            with pytest.raises(AuthError) as caught:
                await attempt
            message = str(caught.value)
            assert "shop-sms" in message and SECRET_REF in message
            assert token not in message
    finally:
        await bad.close()
    assert fake.created == []


async def test_timeout_is_a_transient_error(fake: FakeTwilio) -> None:
    slow = TwilioConnector(settings_for(fake, timeout=0.1, max_attempts=1))
    fake.slow_next(0.5, method="GET")
    try:
        with pytest.raises(TransientError, match="timed out"):
            await slow.check()
    finally:
        await slow.close()


async def test_check(connector: TwilioConnector) -> None:
    line = await connector.check()
    assert "Fake shop account" in line and SHOP in line and "\n" not in line
