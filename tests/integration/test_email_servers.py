"""Smoke tests of the real-server fixtures themselves: Dovecot and the SMTP sink."""

from __future__ import annotations

import aiosmtplib
import pytest
from aiosmtplib import SMTPDataError, SMTPServerDisconnected

from tests.fakes.dovecot import Dovecot, sample_message
from tests.fakes.smtp_sink import SmtpSink


def test_append_then_read_back(dovecot: Dovecot, mail_user: tuple[str, str]) -> None:
    user, _ = mail_user
    client = dovecot.client(user)
    try:
        client.append("INBOX", sample_message(1, subject="Smoke"))
        dovecot.deliver(sample_message(2), user=user)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        bodies = client.fetch(uids, [b"BODY.PEEK[]"])
        assert [b"Subject: Smoke" in bodies[uid][b"BODY[]"] for uid in uids] == [True, False]
        assert b"msg-2@example.org" in bodies[uids[1]][b"BODY[]"]
        assert any(b"\\Sent" in flags for flags, _, _ in client.list_folders())
    finally:
        client.logout()


def test_stop_and_start_keep_port_and_mail(private_dovecot: Dovecot) -> None:
    private_dovecot.deliver(sample_message(1))
    private_dovecot.stop()
    with pytest.raises(OSError):
        private_dovecot.client()
    private_dovecot.start()
    client = private_dovecot.client()
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
    finally:
        client.logout()


async def test_sink_records_and_misbehaves_on_request() -> None:
    message = sample_message(1).decode()
    with SmtpSink() as sink:
        await aiosmtplib.send(message, sender="us@shop.test", recipients=["c@example.org"],
                              hostname=sink.host, port=sink.port, start_tls=False)
        sink.fail_next(1, 451, "greylisted")
        with pytest.raises(SMTPDataError) as failure:
            await aiosmtplib.send(message, sender="us@shop.test", recipients=["c@example.org"],
                                  hostname=sink.host, port=sink.port, start_tls=False)
        assert (failure.value.code, failure.value.message) == (451, "greylisted")
        sink.drop_after_data_next()
        with pytest.raises(SMTPServerDisconnected):
            await aiosmtplib.send(message, sender="us@shop.test", recipients=["c@example.org"],
                                  hostname=sink.host, port=sink.port, start_tls=False)
        received = sink.received
    # The dropped one arrived (only its answer was lost); the refused one did not.
    assert len(received) == 2
    assert received[0].recipients == ["c@example.org"]
    assert received[0].message["Message-ID"] == "<msg-1@example.org>"
