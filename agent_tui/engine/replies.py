"""Queuing replies: the one way a reply leaves agent-tui (the TUI, `reply` and `run --once` use it).

A reply goes out on the identity the customer wrote from (invariant 9) unless the caller names
another one, and mail carries the threading headers of the message it answers.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from agent_tui.errors import UsageError
from agent_tui.model import Channel, Direction, Message
from agent_tui.store import QueuedReply, StoreBackend


def last_inbound(messages: list[Message]) -> Message | None:
    for message in reversed(messages):
        if message.direction is Direction.INBOUND:
            return message
    return None


def automatic_reply_key(message: Message) -> str:
    """The outbox key of the automatic answer to `message`: the same on every run and host, so
    the one message can never queue two answers (and a mail answer's Message-ID is as stable)."""
    seed = f"auto-reply\0{message.account}\0{message.provider_id}".encode()
    return "auto-" + hashlib.sha256(seed).hexdigest()[:32]


def queue_reply(store: StoreBackend, conversation_id: int, text: str, *, author: str,
                to: str | None = None, entry_id: str | None = None,
                suggestion_edited: bool = False, suggestions_shown: bool = False) -> int:
    """Write a person's reply to the outbox (before any network call); returns its outbox id.

    `entry_id`, `suggestion_edited` and `suggestions_shown` record how suggestions were used
    (taken unchanged, edited, or ignored) for `agent-tui stats`.
    """
    reply = build_reply(store, conversation_id, text, author=author, to=to,
                        idempotency_key=uuid.uuid4().hex, entry_id=entry_id,
                        suggestion_edited=suggestion_edited,
                        suggestions_shown=suggestions_shown)
    return store.outbox_enqueue(reply.conversation_id, reply.account, reply.payload,
                                reply.idempotency_key)


def build_reply(store: StoreBackend, conversation_id: int, text: str, *, author: str,
                idempotency_key: str, to: str | None = None, automatic: bool = False,
                entry_id: str | None = None, suggestion_edited: bool = False,
                suggestions_shown: bool = False) -> QueuedReply:
    """The outbox row of a reply: recipient, threading and how suggestions were used."""
    text = text.strip()
    if not text:
        raise UsageError("the reply is empty")
    conversation = store.get_conversation(conversation_id)
    messages = store.get_messages(conversation_id)
    parent = last_inbound(messages)
    recipient = to or (parent.sender if parent else conversation.contact_address)
    if not recipient:
        raise UsageError(f"conversation {conversation_id} has no address to reply to")
    payload: dict[str, Any] = {
        "channel": str(conversation.channel),
        "to": recipient,
        "text": text,
        "author": author,
        "contact_id": conversation.contact_id,
        "automatic": automatic,
        "entry_id": entry_id,
        "suggestion_edited": suggestion_edited,
        "suggestions_shown": suggestions_shown,
    }
    if conversation.channel is Channel.EMAIL:
        payload["subject"] = conversation.subject
        if parent is not None:
            payload["in_reply_to"] = parent.provider_id
            payload["references"] = [*parent.references, parent.provider_id]
    elif parent is not None:
        payload["last_inbound_at"] = parent.sent_at.isoformat()
        if conversation.channel is Channel.TELEGRAM and to is None:
            # The chat the customer wrote in ("<chat>:<message>"): a group answers in the group,
            # quoting the message it answers; a private chat's id is the user's.
            chat_id, _, _ = parent.provider_id.partition(":")
            payload["chat_id"] = chat_id
            if chat_id.startswith("-"):
                payload["in_reply_to"] = parent.provider_id
    return QueuedReply(conversation_id, conversation.account, payload, idempotency_key)


@dataclass(slots=True)
class ReplyResult:
    outbox_id: int
    conversation_id: int
    state: str
    detail: str = ""
    provider_id: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("queued", "sent", "reconciled", "retry", "cancelled")

    def summary_line(self) -> str:
        text = f"reply {self.outbox_id} to conversation {self.conversation_id}: {self.state}"
        return f"{text} ({self.detail})" if self.detail else text

    def as_json(self) -> dict[str, Any]:
        return {"outbox_id": self.outbox_id, "conversation_id": self.conversation_id,
                "state": self.state, "detail": self.detail or None,
                "provider_id": self.provider_id or None}
