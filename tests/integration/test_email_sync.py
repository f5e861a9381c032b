"""EmailConnector.fetch against a real Dovecot: batches, cursors, UIDVALIDITY, drops, flags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_tui.engine.sync import sync_account
from agent_tui.model import Cursor, Direction
from agent_tui.store import open_store
from connectors.base import FetchBatch, TransientError
from connectors.email import EmailConnector, EmailFetchBatch, EmailSettings
from tests.fakes.dovecot import Dovecot, sample_message
from tests.integration.conftest import SettingsFactory, settings_for


async def fetch_all(connector: EmailConnector, cursor: Cursor | None) -> list[FetchBatch]:
    return [batch async for batch in connector.fetch(cursor)]


@pytest.fixture
async def connector(email_settings: SettingsFactory) -> AsyncIterator[EmailConnector]:
    # From 100 new messages on, parsing runs in worker processes: the 500 go that way.
    mail = EmailConnector(email_settings(batch_size=200, parallel_parse_min=100))
    yield mail
    await mail.close()


async def test_initial_sync_then_only_new_messages(
        connector: EmailConnector, dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    user = mail_user[0]
    for number in range(500):
        # Some already read elsewhere: \Seen must not hide them (invariant 8).
        dovecot.deliver(sample_message(number), user=user, seen=number % 3 == 0)

    first = await fetch_all(connector, None)

    ids = [m.provider_id for batch in first for m in batch.messages]
    assert len(ids) == 500
    assert set(ids) == {f"msg-{n}@example.org" for n in range(500)}
    assert [batch.done for batch in first] == [False] * (len(first) - 1) + [True]
    assert max(len(batch.messages) for batch in first) == 200
    assert all(m.raw.startswith(b"From: ") for batch in first for m in batch.messages)
    inbox = first[-1].cursor["INBOX"]
    assert inbox["last_uid"] == 500 and inbox["uidvalidity"] > 0

    for number in range(500, 505):
        dovecot.deliver(sample_message(number), user=user)
    second = await fetch_all(connector, first[-1].cursor)

    new = [m.provider_id for batch in second for m in batch.messages]
    assert new == [f"msg-{n}@example.org" for n in range(500, 505)]
    assert second[-1].cursor["INBOX"]["last_uid"] == 505

    third = await fetch_all(connector, second[-1].cursor)
    assert [m for batch in third for m in batch.messages] == []
    assert third[-1].cursor == second[-1].cursor


async def test_each_batch_cursor_covers_exactly_its_messages(
        dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    user = mail_user[0]
    for number in range(25):
        dovecot.deliver(sample_message(number), user=user)
    connector = EmailConnector(settings_for(dovecot, user, batch_size=10))
    try:
        batches = await fetch_all(connector, None)
    finally:
        await connector.close()
    with_mail = [b for b in batches if b.messages]
    assert [len(b.messages) for b in with_mail] == [10, 10, 5]
    for batch in with_mail:
        assert batch.cursor["INBOX"]["last_uid"] == max(m.extra["uid"] for m in batch.messages)


async def test_uidvalidity_change_resyncs_with_the_same_provider_ids(
        dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    user = mail_user[0]
    client = dovecot.client(user)
    try:
        client.create_folder("Support")
        for number in range(3):
            client.append("Support", sample_message(number))
        connector = EmailConnector(settings_for(dovecot, user, folders=("INBOX", "Support")))
        try:
            before = await fetch_all(connector, None)
            # Recreating the mailbox gives it a new UIDVALIDITY; the same mail is appended again.
            client.delete_folder("Support")
            client.create_folder("Support")
            for number in range(3):
                client.append("Support", sample_message(number))
            after = await fetch_all(connector, before[-1].cursor)
        finally:
            await connector.close()
    finally:
        client.logout()

    ids_before = sorted(m.provider_id for b in before for m in b.messages)
    ids_after = sorted(m.provider_id for b in after for m in b.messages)
    assert ids_before == ids_after == [f"msg-{n}@example.org" for n in range(3)]
    assert (after[-1].cursor["Support"]["uidvalidity"]
            != before[-1].cursor["Support"]["uidvalidity"])


async def test_dropped_connection_mid_fetch_loses_and_doubles_nothing(
        private_dovecot: Dovecot) -> None:
    for number in range(450):
        private_dovecot.deliver(sample_message(number))
    user = next(iter(private_dovecot.users))
    connector = EmailConnector(settings_for(private_dovecot, user, batch_size=100))
    committed: list[str] = []
    cursor: Cursor | None = None
    try:
        with pytest.raises(TransientError) as dropped:
            async for batch in connector.fetch(None):
                # What the engine does: store the messages and the cursor together.
                committed.extend(m.provider_id for m in batch.messages)
                cursor = batch.cursor
                if private_dovecot.running:
                    private_dovecot.stop()
        assert "shop-mail" in str(dropped.value)
        assert f"127.0.0.1:{private_dovecot.port}" in str(dropped.value)
        assert 0 < len(committed) < 450

        private_dovecot.start()
        async for batch in connector.fetch(cursor):
            committed.extend(m.provider_id for m in batch.messages)
    finally:
        await connector.close()

    assert len(committed) == 450
    assert set(committed) == {f"msg-{n}@example.org" for n in range(450)}


async def test_sent_folder_comes_back_outbound(
        connector: EmailConnector, dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    dovecot.deliver(sample_message(1, sender=mail_user[0], to="customer@example.org"),
                    user=mail_user[0], folder="Sent", seen=True)
    dovecot.deliver(sample_message(2), user=mail_user[0])

    batches = await fetch_all(connector, None)

    by_id = {m.provider_id: m for b in batches for m in b.messages}
    assert by_id["msg-1@example.org"].direction is Direction.OUTBOUND
    assert by_id["msg-1@example.org"].extra["folder"] == "Sent"
    assert by_id["msg-2@example.org"].direction is Direction.INBOUND
    assert "\\Seen" in by_id["msg-1@example.org"].extra["flags"]
    assert set(batches[-1].cursor) == {"INBOX", "Sent"}


async def test_flag_changes_are_reported_through_condstore(
        connector: EmailConnector, dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    user = mail_user[0]
    for number in range(3):
        dovecot.deliver(sample_message(number), user=user)
    first = await fetch_all(connector, None)
    assert first[-1].cursor["INBOX"]["highestmodseq"] > 0

    client = dovecot.client(user)
    try:
        client.select_folder("INBOX")
        client.add_flags([2], [b"\\Seen", b"\\Answered"])
    finally:
        client.logout()
    second = await fetch_all(connector, first[-1].cursor)

    assert [m for b in second for m in b.messages] == []
    changes = [c for b in second if isinstance(b, EmailFetchBatch) for c in b.flag_changes]
    assert [(c.folder, c.uid, c.message_id, c.seen, c.answered) for c in changes] == [
        ("INBOX", 2, "msg-1@example.org", True, True)]
    assert (second[-1].cursor["INBOX"]["highestmodseq"]
            > first[-1].cursor["INBOX"]["highestmodseq"])


async def test_a_configured_folder_that_does_not_exist_is_named(
        dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    settings: EmailSettings = settings_for(dovecot, mail_user[0], folders=("INBOX", "Nope"))
    connector = EmailConnector(settings)
    try:
        with pytest.raises(Exception, match="'Nope'") as failure:
            await fetch_all(connector, None)
    finally:
        await connector.close()
    assert "shop-mail" in str(failure.value)


async def test_mail_read_in_another_client_is_read_in_the_store(
        connector: EmailConnector, dovecot: Dovecot, mail_user: tuple[str, str],
        tmp_path: Path) -> None:
    user = mail_user[0]
    for number in range(3):
        dovecot.deliver(sample_message(number, sender=f"c{number}@example.org"), user=user,
                        seen=number == 0)
    store = open_store(tmp_path / "agent.db")

    def unread() -> dict[str, int]:
        return {c.contact_address: c.unread for c in store.list_conversations()}

    assert (await sync_account(store, connector, "shop-mail")).error == ""
    assert unread() == {"c0@example.org": 0, "c1@example.org": 1, "c2@example.org": 1}

    client = dovecot.client(user)
    try:
        client.select_folder("INBOX")
        client.add_flags([2], [b"\\Seen"])          # msg-1, from c1, read on the phone
    finally:
        client.logout()
    assert (await sync_account(store, connector, "shop-mail")).error == ""

    assert unread() == {"c0@example.org": 0, "c1@example.org": 0, "c2@example.org": 1}
