"""A PostgreSQL restart under a running `sync --watch` (issue 19): it carries on once the server
is back, nothing lost, no reply sent twice. The private cluster of the suite is restarted."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_tui.store import StoreBackend, open_store
from tests.fakes.dovecot import Dovecot
from tests.fakes.smtp_sink import SmtpSink
from tests.integration.cli_harness import MAIL_PASSWORD_ENV, Shop

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def shop(tmp_path: Path, dovecot: Dovecot, mail_user: tuple[str, str], smtp_sink: SmtpSink,
         monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> Iterator[Shop]:
    user, password = mail_user
    monkeypatch.setenv(MAIL_PASSWORD_ENV, password)
    installed = Shop(tmp_path / "shop", user, password, dovecot, smtp_sink)
    config = installed.write_config().read_text()
    installed.config_path.write_text(config.replace('path = "data/agent.db"',
                                                    f'path = "{postgres_url}"'))
    yield installed


def until(store: StoreBackend, condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition`, woken by each change anyone commits to the store."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        store.wait_for_change(1.0)  # type: ignore[attr-defined]


def directions(store: StoreBackend) -> list[str]:
    return sorted(m.direction.value for c in store.list_conversations()
                  for m in store.get_messages(c.id))


def test_sync_watch_carries_on_after_the_server_restarts(shop: Shop, postgres_server: Any,
                                                          postgres_url: str,
                                                          tmp_path: Path) -> None:
    shop.mail_from_customer(1, "Wo bleibt mein Paket?", subject="Paket")
    log = (tmp_path / "watch.log").open("w")
    watch = subprocess.Popen(
        [str(Path(sys.executable).with_name("agent-tui")), "--config", str(shop.config_path),
         "sync", "--watch"], stdout=log, stderr=log)
    store = open_store(postgres_url)
    try:
        until(store, lambda: directions(store) == ["in"], "the first mail stored")
        [conversation] = store.list_conversations()

        postgres_server.restart()
        # A colleague queues a reply while the customer writes again.
        queued = shop.cli("reply", str(conversation.id), "--text", "Ist unterwegs.",
                          "--no-send")
        assert queued.code == 0, queued.err
        shop.mail_from_customer(2, "Und die Rechnung?", subject="Paket")

        until(store, lambda: directions(store) == ["in", "in", "out"],
              "the second mail stored and the reply sent")
        assert store.outbox_counts() == {"sent": 1}
        assert watch.poll() is None, (tmp_path / "watch.log").read_text()
    finally:
        store.close()
        watch.terminate()
        watch.wait(10)
        log.close()
    assert len(shop.sent_to("erika@example.org")) == 1
