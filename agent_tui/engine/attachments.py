"""Saving a message's attachments to a directory: names made safe, nothing ever overwritten
(DESIGN.md invariant 4, kept by agent_tui.engine.files).

The store keeps each attachment's name, type, size and `ref`, not its bytes. A mail's bytes come
from its source, which the store keeps (`get_raw`), through the MIME code that listed the parts.
SMS, WhatsApp and Telegram media live at the provider (`ref` is a Twilio media URL or a Telegram
file_id): `media_fetcher(config)` downloads them with the account's credentials.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent_tui.config import Config
from agent_tui.engine.files import write_new
from agent_tui.errors import AgentTuiError
from agent_tui.model import AttachmentInfo, Channel, Message
from agent_tui.store.base import StoreBackend
from connectors.base import ConnectorError


@dataclass(frozen=True, slots=True)
class SavedAttachment:
    attachment: AttachmentInfo
    path: Path | None           # where it was written; None if it was not
    problem: str = ""           # why not


MediaFetcher = Callable[[Message, AttachmentInfo], bytes]


def media_fetcher(config: Config) -> MediaFetcher:
    """Downloads chat media from the provider with the message's account (blocking: call it from
    a worker thread). Problems come back as LookupError with a reason for the user."""
    def fetch(message: Message, attachment: AttachmentInfo) -> bytes:
        from agent_tui.engine.runtime import connector_for

        try:
            connector = connector_for(config, message.account)
        except AgentTuiError as exc:
            raise LookupError(str(exc)) from None

        async def download() -> bytes:
            try:
                return await connector.fetch_attachment(attachment.ref)
            finally:
                await connector.close()
        try:
            return asyncio.run(download())
        except ConnectorError as exc:
            raise LookupError(str(exc)) from None
    return fetch


def attachment_bytes_of(store: StoreBackend, message: Message, attachment: AttachmentInfo,
                        fetch_media: MediaFetcher | None = None) -> bytes:
    """The attachment's decoded bytes. LookupError (with a reason for the user) if they cannot
    be had."""
    if message.channel is not Channel.EMAIL:
        if fetch_media is None:
            raise LookupError(f"{message.channel} media are kept by the provider; saving them "
                              "is not supported yet")
        return fetch_media(message, attachment)
    raw = store.get_raw(message.id)
    if raw is None:
        raise LookupError("the mail's source is not in the store")
    if not attachment.ref:
        raise LookupError("the mail lists no MIME part for it")
    from connectors.email.mime import attachment_bytes

    return attachment_bytes(raw, attachment.ref)


def save_attachments(store: StoreBackend, message: Message, directory: str | os.PathLike[str],
                     fetch_media: MediaFetcher | None = None) -> list[SavedAttachment]:
    """Save every attachment of `message` into `directory` (created if missing; `~` expands).

    Raises OSError if the directory cannot be made; a problem with one attachment is reported
    in its SavedAttachment and does not stop the others."""
    target = Path(directory).expanduser()
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not target.is_dir():
        raise NotADirectoryError(f"{target} is not a directory")
    saved: list[SavedAttachment] = []
    for attachment in message.attachments:
        try:
            data = attachment_bytes_of(store, message, attachment, fetch_media)
        except LookupError as exc:
            saved.append(SavedAttachment(attachment, None, str(exc)))
            continue
        try:
            path = write_new(target, attachment.name, data)
        except OSError as exc:
            saved.append(SavedAttachment(attachment, None, exc.strerror or str(exc)))
            continue
        saved.append(SavedAttachment(attachment, path))
    return saved
