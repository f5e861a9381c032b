"""`agent-tui demo`: the whole run (headless), live customers, and the first sync into the store."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_tui.config import load_config
from agent_tui.demo import Sandbox, SandboxOptions, run_demo, scenario
from agent_tui.demo.files import write_config, write_knowledge
from agent_tui.model import Channel
from connectors.base import OutboundMessage
from connectors.email import EmailConnector, EmailSettings
from tests.fakes.ports import port_is_open

SMALL = SandboxOptions(history_conversations=12, live_interval=None, thanks_probability=0.0)


def test_headless_demo_runs_and_leaves_nothing_running(tmp_path: Path) -> None:
    out = io.StringIO()
    directory = tmp_path / "demo"

    status = run_demo(headless=True, directory=str(directory), rounds=1, options=SMALL, out=out)

    printed = out.getvalue()
    assert status == 0
    assert "sandbox ready: email, sms, whatsapp" in printed
    assert re.search(r"\$ agent-tui --config \S+agent-tui.toml (run --once|sync)", printed)
    assert f"Demo data lives in {directory}" in printed
    assert "seeded" in printed and "wrote on email (hostile)" in printed
    assert "\x1b" not in printed                  # the hostile customer reaches no terminal
    config = load_config(directory / "agent-tui.toml")
    ports = [getattr(a, "imap_port", 0) or getattr(a, "api_base", ":0").rsplit(":", 1)[1]
             for a in config.accounts]
    assert ports and not any(port_is_open(int(port)) for port in ports)


@pytest.fixture
def live_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    options = SandboxOptions(history_conversations=0, opening_wave=False,
                             live_interval=(0.01, 0.02), thanks_probability=1.0,
                             thanks_delay=0.0)
    with Sandbox(tmp_path, options) as running:
        yield running


async def test_customers_keep_writing_and_thank_for_replies(
        live_sandbox: Sandbox, tmp_path: Path) -> None:
    await asyncio.to_thread(live_sandbox.start_customers)
    written = await asyncio.to_thread(live_sandbox.wait_for_written, 6, 10.0)
    assert len(written) >= 6
    assert {m.customer.lang for m in written} <= {"de", "en"}

    account = load_config(write_config(tmp_path, live_sandbox)).account("shop-mail")
    customer = scenario.customers_on("email", "en")[0]
    connector = EmailConnector(EmailSettings(
        name=account.name, address=scenario.SHOP_MAIL, username=scenario.SHOP_MAIL,
        password=scenario.SHOP_MAIL_PASSWORD, imap_host=live_sandbox.imap.host,
        imap_port=live_sandbox.imap.port, imap_tls="none", smtp_host=live_sandbox.smtp.host,
        smtp_port=live_sandbox.smtp.port, smtp_tls="none"))
    try:
        await connector.send(OutboundMessage(
            channel=Channel.EMAIL, to=customer.address, text="Your parcel left today.",
            idempotency_key="thanks-1", subject="Re: Where is my order?",
            message_id="<thanks-1@tassenwerk.demo>"))
    finally:
        await connector.close()

    def thanked() -> bool:
        return any(m.kind == "thanks" and m.customer == customer
                   and m.in_reply_to == "<thanks-1@tassenwerk.demo>"
                   and m.subject == "Re: Where is my order?"
                   for m in live_sandbox.written())

    assert await asyncio.to_thread(live_sandbox.wait_until, thanked, 10.0)


async def test_seeded_history_reaches_the_store_through_a_sync(tmp_path: Path) -> None:
    from agent_tui.engine.runtime import sync_once
    from agent_tui.store import open_store

    with Sandbox(tmp_path, SMALL) as sandbox:
        write_knowledge(tmp_path)
        config = load_config(write_config(tmp_path, sandbox))
        await asyncio.to_thread(sandbox.start_customers)
        store = open_store(config.store.path)

        results = await sync_once(config, store, progress=False)

        assert all(not r.error for r in results), [r.summary_line() for r in results]
        mail = [m for m in sandbox.history if m.customer.channel == "email"]
        phone = [m for m in sandbox.history
                 if m.customer.channel in ("sms", "whatsapp") and not m.outbound]
        live = sandbox.written()
        by_account = {r.account: r.new for r in results}
        assert by_account["shop-mail"] == len(mail) + len(
            [m for m in live if m.customer.channel == "email"])
        assert by_account["shop-sms"] == len(phone) + len(
            [m for m in live if m.customer.channel in ("sms", "whatsapp")])
        channels = {str(c.channel) for c in store.list_conversations(limit=500)}
        assert {"email", "sms", "whatsapp"} <= channels

        again = await sync_once(config, store, progress=False)
        assert [r.new for r in again] == [0] * len(again)
