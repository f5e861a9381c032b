"""The data model shared by every layer: contacts, conversations, messages, notes, and the
inbound messages and cursors connectors hand to the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"


class Direction(enum.StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class ConversationStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    CLOSED = "closed"


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"   # crashed in `sending`, the provider cannot tell: a person decides
    CANCELLED = "cancelled"   # a person decided it is never to be sent


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Identity:
    """One way to reach a contact: an email address, an E.164 phone, a Telegram user id."""

    kind: str          # "email" | "phone" | "telegram"
    address: str


@dataclass(slots=True)
class Contact:
    id: int
    display_name: str
    identities: list[Identity] = field(default_factory=list)

    @property
    def first_name(self) -> str:
        name = self.display_name.strip()
        return name.split()[0] if name and "@" not in name else ""


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    name: str          # sanitised (invariant 4) before it is stored
    content_type: str
    size: int
    ref: str = ""      # fetch bytes on demand: IMAP part, Twilio media URL, Telegram file_id


@dataclass(frozen=True, slots=True)
class AutoFlags:
    """Why a message must never get an automatic answer (RFC 3834); all False from a person."""

    auto_submitted: bool = False
    bulk: bool = False
    list_mail: bool = False
    bounce: bool = False
    null_sender: bool = False

    @property
    def any(self) -> bool:
        return (self.auto_submitted or self.bulk or self.list_mail or self.bounce
                or self.null_sender)


# A cursor is a small JSON-serialisable mapping whose meaning belongs to the connector
# (IMAP: per-folder UIDVALIDITY, last UID, HIGHESTMODSEQ; Twilio: last date_sent + SIDs seen at that
# second; Telegram: next update offset). The store keeps it opaque.
Cursor = dict[str, Any]


@dataclass(slots=True)
class InboundMessage:
    """A message as a connector read it, already parsed and sanitised (invariants 3 and 4)."""

    channel: Channel
    provider_id: str                 # Message-ID, Twilio SID, Telegram "chat:message"
    direction: Direction
    sender: str                      # address: email, E.164 phone, Telegram user id
    sender_name: str
    recipients: list[str]
    sent_at: datetime                # timezone-aware, UTC
    subject: str
    text: str
    html: str = ""                   # kept only as source, never rendered
    attachments: list[AttachmentInfo] = field(default_factory=list)
    auto: AutoFlags = field(default_factory=AutoFlags)
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    thread_key: str = ""             # chat channels: the chat/number the conversation belongs to
    reply_to: str = ""               # mail: Reply-To address, when it differs from the sender
    delivery_status: str = ""        # outbound messages read back: sent, delivered, failed...
    read: bool = False               # already read in another client (mail: \\Seen)
    defects: list[str] = field(default_factory=list)
    content_hash: str = ""           # dedupe fallback for mail without a Message-ID
    raw: bytes = b""                 # the original bytes, when the channel has them (mail source)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Conversation:
    id: int
    contact_id: int
    channel: Channel
    account: str
    subject: str
    status: ConversationStatus
    assignee: str | None
    tags: list[str]
    priority: Priority
    first_inbound_at: datetime | None
    last_inbound_at: datetime | None
    last_activity_at: datetime | None
    due_at: datetime | None
    unread: int
    contact_name: str = ""
    contact_address: str = ""
    preview: str = ""
    enrichment: dict[str, str] = field(default_factory=dict)   # "order.number" -> "12345"
    waiting_since: datetime | None = None    # first customer message not yet answered


@dataclass(slots=True)
class Message:
    id: int
    conversation_id: int
    account: str
    channel: Channel
    direction: Direction
    provider_id: str
    sender: str
    sender_name: str
    recipients: list[str]
    sent_at: datetime
    subject: str
    text: str
    attachments: list[AttachmentInfo]
    auto: AutoFlags
    delivery_status: str = ""
    defects: list[str] = field(default_factory=list)
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    edited: bool = False                     # chat message changed by the customer after sending


@dataclass(slots=True)
class Note:
    id: int
    conversation_id: int
    author: str
    text: str
    created_at: datetime
