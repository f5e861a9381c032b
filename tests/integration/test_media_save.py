"""Saving SMS/WhatsApp media: the bytes come from the provider with the account's credentials."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent_tui.config import parse_config
from agent_tui.demo.fakes.twilio_server import FakeTwilio
from agent_tui.engine.attachments import media_fetcher, save_attachments
from agent_tui.engine.runtime import build_connector
from agent_tui.engine.sync import sync_account
from agent_tui.secrets import resolve_account_secret
from agent_tui.store import open_store

pytestmark = pytest.mark.integration

PHOTO = b"\xff\xd8\xff\xe0 a photo of a broken cup"


async def test_whatsapp_media_are_saved_from_the_provider(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    twilio = FakeTwilio()
    base = await twilio.start()
    monkeypatch.setenv("AGENT_TUI_MEDIA_TEST_TOKEN", twilio.auth_token)
    config = parse_config(f"""\
[store]
path = "agent.db"

[[account]]
name = "shop-sms"
type = "twilio"
account_sid = "{twilio.account_sid}"
auth_token = "env:AGENT_TUI_MEDIA_TEST_TOKEN"
whatsapp_from = "whatsapp:+493012345678"
api_base = "{base}"
""", tmp_path / "agent-tui.toml")
    store = open_store(config.store.path)
    account = config.account("shop-sms")
    connector = build_connector(account, resolve_account_secret(account))
    try:
        twilio.add_inbound("whatsapp:+4915112345678", "whatsapp:+493012345678",
                           "Die Tasse kam so an", media=[("image/jpeg", PHOTO)])
        assert (await sync_account(store, connector, "shop-sms")).error == ""
        [conversation] = store.list_conversations()
        [message] = store.get_messages(conversation.id)
        without = await asyncio.to_thread(save_attachments, store, message, tmp_path / "a")
        saved = await asyncio.to_thread(save_attachments, store, message, tmp_path / "b",
                                        media_fetcher(config))
    finally:
        await connector.close()
        await twilio.stop()

    [not_saved] = without
    assert not_saved.path is None and "kept by the provider" in not_saved.problem
    [photo] = saved
    assert photo.problem == "" and photo.path is not None
    assert photo.path.read_bytes() == PHOTO and photo.path.suffix in (".jpg", ".jpeg")
