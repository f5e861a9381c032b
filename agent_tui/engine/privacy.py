"""Data-protection requests: everything held about one person (Art. 15) and erasure (Art. 17)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_tui import views
from agent_tui.config import Config
from agent_tui.engine.files import write_new
from agent_tui.errors import AgentTuiError, UsageError
from agent_tui.model import Channel
from agent_tui.store import StoreBackend
from connectors.base import ConnectorError


class RemoteEraseError(AgentTuiError):
    """The mail server could not delete a person's mail (exit 1; the store is left as it was)."""


def export_contact(store: StoreBackend, contact_id: int, out: Path) -> dict[str, Any]:
    """Write contact.json, summary.txt and the original mail attachments into `out`."""
    from connectors.email.mime import attachment_bytes

    contact = store.get_contact(contact_id)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out}: exists and is not empty; choose a new directory")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = out / "attachments"
    conversations: list[dict[str, Any]] = []
    attachment_count = 0
    for conversation in store.contact_conversations(contact_id):
        messages = store.get_messages(conversation.id)
        saved: list[dict[str, Any]] = []
        for message in messages:
            raw = (store.get_raw(message.id) if message.channel is Channel.EMAIL
                   else None)
            for attachment in message.attachments:
                entry = {"message_id": message.provider_id, **asdict(attachment)}
                if raw is not None and attachment.ref:
                    try:
                        data = attachment_bytes(raw, attachment.ref)
                    except LookupError:
                        data = None
                    if data is not None:
                        files.mkdir(exist_ok=True, mode=0o700)
                        path = write_new(files, attachment.name, data)
                        entry["file"] = str(path.relative_to(out))
                        attachment_count += 1
                saved.append(entry)
        conversations.append({
            "conversation": views.conversation_json(conversation),
            "messages": [views.message_json(m) for m in messages],
            "notes": [views.note_json(n) for n in store.get_notes(conversation.id)],
            "automatic_decisions": store.automation_decisions(conversation.id),
            "attachments": saved,
        })
    document = {"format": 1, "exported_at": datetime.now(UTC).isoformat(),
                "contact": views.contact_json(contact), "conversations": conversations}
    (out / "contact.json").write_text(json.dumps(document, ensure_ascii=False, indent=2,
                                                 default=str))
    message_count = sum(len(c["messages"]) for c in conversations)
    channels = sorted({c["conversation"]["channel"] for c in conversations})
    summary = [
        f"Data held about {contact.display_name or 'contact'} (contact {contact.id})",
        f"Exported {document['exported_at']}",
        "Identities: " + ", ".join(f"{i.kind} {i.address}" for i in contact.identities),
        f"Conversations: {len(conversations)} ({', '.join(channels) or 'none'})",
        f"Messages: {message_count}; attachments saved: {attachment_count}",
        "Also in contact.json: internal notes, enrichment fields (order data) and every",
        "automatic decision taken on this person's messages.",
    ]
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    return {"contact": contact.id, "directory": str(out), "conversations": len(conversations),
            "messages": message_count, "attachments": attachment_count}


async def delete_contact_remotely(config: Config, store: StoreBackend, contact_id: int, *,
                                  dry_run: bool = False) -> dict[str, int]:
    """`contact erase --also-remote`: delete the person's mail on each account's IMAP server
    before the store forgets which messages were theirs. Returns the copies found per account;
    a failing account raises (and the caller erases nothing, so it can be run again)."""
    from agent_tui.engine.runtime import connector_for

    by_account: dict[str, list[str]] = {}
    for conversation in store.contact_conversations(contact_id):
        for message in store.get_messages(conversation.id):
            if message.channel is Channel.EMAIL and message.provider_id:
                by_account.setdefault(message.account, []).append(message.provider_id)
    found: dict[str, int] = {}
    for account_name, provider_ids in by_account.items():
        connector = connector_for(config, account_name)
        try:
            found[account_name] = await connector.delete_remote(provider_ids, dry_run=dry_run)
        except ConnectorError as exc:
            raise RemoteEraseError(f"{exc}; nothing was erased") from None
        finally:
            await connector.close()
    return found
