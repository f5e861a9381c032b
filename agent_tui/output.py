"""What the CLI prints of model objects: their JSON objects and their plain-text lines.

JSON objects are stable for scripts (the CLI wraps them in `{"format": 1, ...}`); text views pass
customer text through the sanitiser again, so nothing from outside reaches the terminal as control.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from agent_tui.model import Contact, Conversation, Message, Note
from agent_tui.sanitize import clean_line, clean_text
from agent_tui.store.base import MergeProposal, OutboxRow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "channel": str(c.channel),
        "account": c.account,
        "subject": c.subject,
        "status": str(c.status),
        "assignee": c.assignee,
        "tags": list(c.tags),
        "priority": str(c.priority),
        "contact": {"id": c.contact_id, "name": c.contact_name, "address": c.contact_address},
        "first_inbound_at": _iso(c.first_inbound_at),
        "last_inbound_at": _iso(c.last_inbound_at),
        "last_activity_at": _iso(c.last_activity_at),
        "due_at": _iso(c.due_at),
        "unread": c.unread,
        "preview": c.preview,
        "waiting_since": _iso(c.waiting_since),
        "enrichment": dict(c.enrichment),
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "message_id": m.provider_id,
        "conversation_id": m.conversation_id,
        "account": m.account,
        "channel": str(m.channel),
        "direction": str(m.direction),
        "sender": m.sender,
        "sender_name": m.sender_name,
        "recipients": list(m.recipients),
        "sent_at": _iso(m.sent_at),
        "subject": m.subject,
        "text": m.text,
        "attachments": [dataclasses.asdict(a) for a in m.attachments],
        "auto": dataclasses.asdict(m.auto),
        "in_reply_to": m.in_reply_to,
        "references": list(m.references),
        "delivery_status": m.delivery_status,
        "edited": m.edited,
        "defects": list(m.defects),
    }


def contact_json(c: Contact) -> dict[str, Any]:
    return {"id": c.id, "name": c.display_name,
            "identities": [{"kind": i.kind, "address": i.address} for i in c.identities]}


def note_json(n: Note) -> dict[str, Any]:
    return {"id": n.id, "author": n.author, "text": n.text, "created_at": _iso(n.created_at)}


def hit_json(hit: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(hit) and not isinstance(hit, type):
        return {k: (_iso(v) if isinstance(v, datetime) else v)
                for k, v in dataclasses.asdict(hit).items()}
    return dict(hit)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def conversation_line(c: Conversation) -> str:
    who = clean_line(c.contact_name or c.contact_address)
    subject = clean_line(c.subject or c.preview)
    return (f"{c.id:>6}  {c.channel!s:<8} {c.status!s:<7} {_when(c.last_activity_at)}  "
            f"{who[:28]:<28}  {subject[:60]}")


def conversation_text(c: Conversation, messages: list[Message]) -> str:
    lines = [f"Conversation {c.id} · {c.channel} · {c.status} · "
             f"{clean_line(c.contact_name)} <{clean_line(c.contact_address)}>",
             f"Subject: {clean_line(c.subject)}", ""]
    for m in messages:
        arrow = "<-" if str(m.direction) == "in" else "->"
        lines.append(f"{arrow} {_when(m.sent_at)}  {clean_line(m.sender_name or m.sender)}"
                     + (f"  [{m.delivery_status}]" if m.delivery_status else ""))
        lines.extend("   " + line for line in clean_text(m.text).splitlines())
        for a in m.attachments:
            lines.append(f"   [attachment] {clean_line(a.name)} ({a.content_type}, {a.size} bytes)")
        lines.append("")
    return "\n".join(lines) + "\n"


def hit_line(hit: Any) -> str:
    data = hit_json(hit)
    snippet = clean_line(str(data.get("snippet", "")))
    return f"{data.get('conversation_id', '?'):>6}  {snippet[:100]}"


def outbox_json(row: OutboxRow) -> dict[str, Any]:
    return {"id": row.id, "conversation_id": row.conversation_id, "account": row.account,
            "channel": row.payload.get("channel"), "to": row.payload.get("to"),
            "text": row.payload.get("text"), "state": str(row.state), "attempts": row.attempts,
            "next_attempt_at": _iso(row.next_attempt_at), "last_error": row.last_error or None,
            "provider_id": row.provider_id or None, "created_at": _iso(row.created_at)}


def outbox_line(row: OutboxRow) -> str:
    to = clean_line(str(row.payload.get("to", "")))
    text = clean_line(str(row.payload.get("text", "")))[:40]
    line = f"{row.id:>5}  {row.state:<9} #{row.conversation_id} {row.account} -> {to}: {text}"
    return f"{line}  ({clean_line(row.last_error)})" if row.last_error else line


def proposal_json(p: MergeProposal, contacts: list[Contact],
                  conversation_id: int | None = None) -> dict[str, Any]:
    """A proposed merge with both contacts (`contacts`: the ones it names, lower id first) and
    the conversation of the message that showed it, when that still exists."""
    return {"id": p.id, "state": p.state, "reason": p.reason,
            "contacts": [contact_json(c) for c in contacts],
            "message_id": p.message_id, "conversation_id": conversation_id,
            "created_at": _iso(p.created_at), "resolved_at": _iso(p.resolved_at)}


def _contact_label(c: Contact) -> str:
    addresses = ", ".join(f"{i.kind} {i.address}" for i in c.identities)
    name = c.display_name.strip()
    return clean_line(f"{name} · {addresses}" if name else addresses)


def proposal_text(p: MergeProposal, contacts: list[Contact],
                  conversation_id: int | None = None) -> str:
    """A few lines for a terminal: the reason, both contacts, and the two commands."""
    lines = [f"#{p.id}  {_when(p.created_at)}  {clean_line(p.reason)}"
             + (f"  (conversation {conversation_id})" if conversation_id else "")]
    lines.extend(f"   {c.id:>6}  {_contact_label(c)}" for c in contacts)
    if len(contacts) == 2:
        a, b = contacts[0].id, contacts[1].id
        lines.append(f"   accept: agent-tui contact merge {a} {b}    "
                     f"reject: agent-tui contact reject {a} {b}")
    return "\n".join(lines)
