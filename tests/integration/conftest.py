"""Real servers for the integration tests: Dovecot (IMAP) and an aiosmtpd sink (SMTP)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.email import EmailSettings
from tests.conftest import missing
from tests.fakes.dovecot import Dovecot
from tests.fakes.smtp_sink import SmtpSink

# Fresh accounts are the cheap way to isolate tests on one Dovecot. They are all created at start:
# Dovecot looks at a changed passwd-file at most once a second.
POOL_SIZE = 100
_accounts = itertools.count(1)


def pool_user(number: int) -> str:
    return f"user{number}@shop.test"


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """One Dovecot for the session; tests isolate themselves with their own mail user."""
    if not Dovecot.available():
        missing("dovecot not installed (Debian: apt-get install dovecot-imapd)")
    users = {pool_user(n): f"pw-{n}" for n in range(1, POOL_SIZE + 1)}
    server = Dovecot(tmp_path_factory.mktemp("dovecot"), users=users)
    server.start()
    yield server
    server.close()


@pytest.fixture
def private_dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A Dovecot of this test's own, for tests that stop and start the server."""
    if not Dovecot.available():
        missing("dovecot not installed (Debian: apt-get install dovecot-imapd)")
    server = Dovecot(tmp_path / "dovecot")
    server.start()
    yield server
    server.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def mail_user(dovecot: Dovecot) -> tuple[str, str]:
    """A fresh mail account (empty INBOX and Sent) on the session's Dovecot."""
    number = next(_accounts)
    if number > POOL_SIZE:
        pytest.fail(f"more than {POOL_SIZE} mail accounts used: raise POOL_SIZE")
    user = pool_user(number)
    return user, dovecot.users[user]


SettingsFactory = Callable[..., EmailSettings]


def settings_for(server: Dovecot, user: str, sink: SmtpSink | None = None,
                 **overrides: Any) -> EmailSettings:
    values: dict[str, Any] = dict(
        name="shop-mail", address=user, username=user, password=server.users[user],
        imap_host=server.host, imap_port=server.port, imap_tls="none",
        smtp_host=sink.host if sink else "127.0.0.1", smtp_port=sink.port if sink else 1,
        smtp_tls="none", folders=("INBOX",), sent_folder="Sent", timeout=10.0)
    values.update(overrides)
    return EmailSettings(**values)


@pytest.fixture
def email_settings(dovecot: Dovecot, mail_user: tuple[str, str],
                   smtp_sink: SmtpSink) -> SettingsFactory:
    """Settings of the fresh account against the session Dovecot and this test's SMTP sink."""
    def make(**overrides: Any) -> EmailSettings:
        return settings_for(dovecot, mail_user[0], smtp_sink, **overrides)
    return make


@pytest.fixture
def shop(tmp_path: Path, dovecot: Dovecot, mail_user: tuple[str, str], smtp_sink: SmtpSink,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An installation with one mail account on the session's Dovecot and the SMTP sink (a
    `tests.integration.cli_harness.Shop`); modules that need chat channels define their own."""
    from tests.integration.cli_harness import MAIL_PASSWORD_ENV, Shop

    user, password = mail_user
    monkeypatch.setenv(MAIL_PASSWORD_ENV, password)
    installed = Shop(tmp_path / "shop", user, password, dovecot, smtp_sink)
    installed.write_config()
    yield installed
