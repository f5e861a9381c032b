"""EmailConnector.listen against a real Dovecot: IDLE wakes us, reconnects, stops promptly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from connectors.email import EmailConnector
from tests.fakes.dovecot import Dovecot, sample_message
from tests.integration.conftest import SettingsFactory, settings_for

WAIT = 10.0          # seconds a notification may take at most in these tests
NO_POLLING = 3600.0  # a poll interval no test lives long enough to see


async def wait_until_idling(connector: EmailConnector) -> None:
    watcher = connector.watch()
    assert await asyncio.to_thread(watcher.idling.wait, WAIT), watcher.last_error


async def next_news(news: AsyncIterator[None]) -> None:
    await asyncio.wait_for(anext(news), WAIT)


@pytest.fixture
async def connector(email_settings: SettingsFactory) -> AsyncIterator[EmailConnector]:
    mail = EmailConnector(email_settings(poll_interval=NO_POLLING))
    yield mail
    await mail.close()


async def test_idle_reports_a_new_message(connector: EmailConnector, dovecot: Dovecot,
                                          mail_user: tuple[str, str]) -> None:
    async for _ in connector.fetch(None):
        pass                                  # what the engine does before it listens
    news = connector.listen()
    waiting = asyncio.ensure_future(anext(news))
    await wait_until_idling(connector)
    assert not waiting.done()

    client = dovecot.client(mail_user[0])
    try:
        client.append("INBOX", sample_message(1))
    finally:
        client.logout()

    await asyncio.wait_for(waiting, WAIT)
    fetched = [m.provider_id async for b in connector.fetch(None) for m in b.messages]
    assert fetched == ["msg-1@example.org"]
    await news.aclose()


async def test_mail_that_arrived_before_idle_is_not_missed(
        connector: EmailConnector, dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    async for _ in connector.fetch(None):
        pass
    dovecot.deliver(sample_message(1), user=mail_user[0])   # between the sync and the IDLE
    news = connector.listen()
    await next_news(news)
    await news.aclose()


async def test_listen_survives_a_server_restart(private_dovecot: Dovecot) -> None:
    user = next(iter(private_dovecot.users))
    connector = EmailConnector(settings_for(private_dovecot, user, poll_interval=NO_POLLING))
    try:
        async for _ in connector.fetch(None):
            pass
        news = connector.listen()
        waiting = asyncio.ensure_future(anext(news))
        await wait_until_idling(connector)
        private_dovecot.stop()
        private_dovecot.start()
        # After reconnecting it IDLEs again (backoff: a couple of seconds at most).
        watcher = connector.watch()
        await asyncio.to_thread(private_dovecot.deliver, sample_message(7))
        await asyncio.wait_for(waiting, WAIT)
        assert watcher.last_error                # the drop was seen
        await news.aclose()
    finally:
        await connector.close()


async def test_close_ends_listen_promptly(connector: EmailConnector) -> None:
    news = connector.listen()
    waiting = asyncio.ensure_future(anext(news))
    await wait_until_idling(connector)
    await asyncio.wait_for(connector.close(), 2.0)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2.0)


async def test_cancelling_a_listener_leaves_the_next_one_working(
        connector: EmailConnector, dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    first = asyncio.ensure_future(anext(connector.listen()))
    await wait_until_idling(connector)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    dovecot.deliver(sample_message(3), user=mail_user[0])
    await next_news(connector.listen())
