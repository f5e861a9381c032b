"""Value types the store hands out, shared by every backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agent_tui.errors import UsageError
from agent_tui.model import (
    Contact,
    Conversation,
    ConversationStatus,
    Cursor,
    InboundMessage,
    Message,
    Note,
    OutboxState,
    Priority,
)


@dataclass(slots=True)
class IngestResult:
    """What one `ingest` call stored."""

    new: int = 0
    duplicates: int = 0
    skipped: int = 0                 # tombstoned: deleted or erased here, never re-imported
    updated: int = 0                 # known messages whose delivery status or text changed
    new_message_ids: list[int] = field(default_factory=list)
    conversation_ids: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    conversation_id: int
    account: str
    payload: dict[str, Any]
    idempotency_key: str
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    attempted_at: datetime | None
    last_error: str
    provider_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QueuedReply:
    """A reply to write to the outbox together with the decision that made it."""
    conversation_id: int
    account: str
    payload: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class StatsMessage:
    """One message of a conversation active in a stats period, with how its reply was made."""
    conversation_id: int
    channel: str
    direction: str                   # "in" | "out"
    sent_at: datetime
    automatic: bool = False          # sent by `run --once`
    entry_id: str | None = None      # the knowledge entry the reply came from
    edited: bool = False             # ... and whether the agent changed it
    shown: bool = False              # suggestions were on screen when it was written


@dataclass(frozen=True, slots=True)
class ClosedConversation:
    channel: str
    first_inbound_at: datetime
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class SearchHit:
    message_id: int
    conversation_id: int
    sent_at: datetime
    sender: str
    subject: str
    snippet: str


@dataclass(frozen=True, slots=True)
class MergeProposal:
    """Two contacts that may be one customer, and why; a person accepts (merge) or rejects it.

    Open and rejected proposals name two living contacts, lower id first; an accepted one names
    the surviving contact in `contact_a`, the contact merged into it in `merged_id`, and has no
    `contact_b`.
    """

    id: int
    contact_a: int
    contact_b: int | None
    reason: str                      # "phone +491701234567 in a mail signature", ...
    message_id: int | None           # the message that showed it (None once that is deleted)
    state: str                       # open | accepted | rejected
    created_at: datetime
    resolved_at: datetime | None = None
    merged_id: int | None = None


@dataclass(frozen=True, slots=True)
class ContactHint:
    """An address seen in a contact's message that no contact held at the time."""

    contact_id: int
    kind: str                        # email | phone | telegram
    address: str
    reason: str
    message_id: int | None


class IllegalTransition(UsageError):
    """An outbox row was asked to move along an edge the state machine does not have."""


class StoreBackend(Protocol):
    """What the engine, CLI and UI need from a store, whatever the database behind it.

    `agent_tui.store.sql.SqlStore` implements it once for both dialects (`SqliteStore`,
    `PostgresStore`). Timestamps in and out are
    timezone-aware UTC datetimes. Missing rows raise agent_tui.errors.NotFound; outbox moves
    the state machine does not have raise IllegalTransition.
    """

    # --- lifecycle and change detection
    def close(self) -> None: ...
    def reader(self) -> StoreBackend: ...
    def data_version(self) -> int: ...

    # --- sync: messages and cursor in one transaction (invariant 1)
    def ingest(self, account: str, messages: Sequence[InboundMessage], *, cursor_key: str,
               cursor: Cursor | None) -> IngestResult: ...
    def get_cursor(self, account: str, key: str) -> Cursor | None: ...
    def record_outbound(self, account: str, message: InboundMessage, *,
                        conversation_id: int) -> int | None: ...

    # --- reads (lists never read message bodies)
    def list_conversations(self, *, status: str | None = None, channel: str | None = None,
                           assignee: str | None = None, tag: str | None = None,
                           limit: int = 50, offset: int = 0) -> list[Conversation]: ...
    def count_conversations(self, *, status: str | None = None, channel: str | None = None,
                            assignee: str | None = None, tag: str | None = None) -> int: ...
    def waiting_conversations(self, *, limit: int = 500) -> list[Conversation]: ...
    def get_conversation(self, conversation_id: int) -> Conversation: ...
    def get_messages(self, conversation_id: int) -> list[Message]: ...
    def get_message(self, message_id: int) -> Message: ...
    def get_raw(self, message_id: int) -> bytes | None: ...
    def get_contact(self, contact_id: int) -> Contact: ...
    def contact_conversations(self, contact_id: int) -> list[Conversation]: ...
    def find_contact(self, address: str) -> int | None: ...
    def search(self, query: str, limit: int = 50) -> list[SearchHit]: ...
    def iter_export(self, contact_id: int | None = None
                    ) -> Iterator[tuple[Message, Conversation, Contact]]: ...
    def get_notes(self, conversation_id: int) -> list[Note]: ...
    def inbound_hour_counts(self, since: datetime) -> dict[tuple[str, datetime], int]: ...

    # --- changes by people
    def set_status(self, conversation_id: int, status: ConversationStatus | str,
                   snoozed_until: datetime | None = None) -> None: ...
    def wake_snoozed(self, now: datetime | None = None) -> int: ...
    def assign(self, conversation_id: int, agent: str | None) -> None: ...
    def set_priority(self, conversation_id: int, priority: Priority | str) -> None: ...
    def add_tag(self, conversation_id: int, tag: str) -> None: ...
    def remove_tag(self, conversation_id: int, tag: str) -> None: ...
    def mark_read(self, conversation_id: int) -> None: ...
    def mark_read_elsewhere(self, account: str, provider_ids: Sequence[str]) -> int: ...
    def set_enrichment(self, conversation_id: int, fields: dict[str, str]) -> None: ...
    def set_due(self, conversation_id: int, due_at: datetime | None) -> None: ...
    def add_note(self, conversation_id: int, author: str, text: str) -> Note: ...
    def delete_message(self, message_id: int) -> None: ...

    # --- contacts and data protection
    def merge_contacts(self, keep: int, other: int) -> None: ...
    def split_contact(self, contact_id: int, kind: str, address: str) -> int: ...
    def erase_contact(self, contact_id: int) -> dict[str, int]: ...
    def purge_closed(self, before: datetime) -> int: ...
    def identity_owner(self, kind: str, address: str) -> int | None: ...
    def get_message_extra(self, message_id: int) -> dict[str, Any]: ...
    def propose_merge(self, contact_a: int, contact_b: int, reason: str, *,
                      message_id: int | None = None) -> int | None: ...
    def merge_proposals(self, *, state: str | None = "open",
                        contact_id: int | None = None) -> list[MergeProposal]: ...
    def reject_merge(self, contact_a: int, contact_b: int, reason: str = "") -> None: ...
    def add_contact_hint(self, contact_id: int, kind: str, address: str, reason: str, *,
                         message_id: int | None = None) -> bool: ...
    def contact_hints(self, kind: str, address: str) -> list[ContactHint]: ...

    # --- outbox (invariant 2)
    def outbox_enqueue(self, conversation_id: int, account: str, payload: dict[str, Any],
                       idempotency_key: str) -> int: ...
    def outbox_claim_next(self, now: datetime, *, accounts: set[str] | None = None,
                          holder: str | None = None) -> OutboxRow | None: ...
    def outbox_mark_sent(self, outbox_id: int, provider_id: str) -> None: ...
    def outbox_retry_later(self, outbox_id: int, error: str,
                           next_attempt_at: datetime) -> None: ...
    def outbox_mark_failed(self, outbox_id: int, error: str) -> None: ...
    def outbox_mark_uncertain(self, outbox_id: int, error: str) -> None: ...
    def outbox_requeue(self, outbox_id: int) -> None: ...
    def outbox_cancel(self, outbox_id: int, reason: str) -> None: ...
    def outbox_stuck_sending(self, now: datetime | None = None) -> list[OutboxRow]: ...
    def outbox_get(self, outbox_id: int) -> OutboxRow: ...

    # --- stats (agent_tui.insight.stats)
    def stats_messages(self, since: datetime) -> list[StatsMessage]: ...
    def closed_since(self, since: datetime) -> list[ClosedConversation]: ...
    def outbox_rows(self, *, state: str | None = None,
                    conversation_id: int | None = None) -> list[OutboxRow]: ...
    def outbox_counts(self) -> dict[str, int]: ...

    # --- leases (invariant 10, "Mia is replying")
    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool: ...
    def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool: ...
    def release_lease(self, name: str, holder: str) -> None: ...
    def lease_holder(self, name: str) -> str | None: ...
    def lease_holders(self, prefix: str) -> dict[str, str]: ...

    # --- assignment at ingest (agent_tui.engine.assignment)
    def conversations_started_by(self, message_ids: Sequence[int]) -> list[int]: ...
    def assign_unassigned(self, conversation_ids: Sequence[int],
                          agents: Sequence[str]) -> dict[int, str]: ...

    # --- automation
    def record_auto_reply(self, contact_id: int, at: datetime) -> None: ...
    def last_auto_reply(self, contact_id: int) -> datetime | None: ...
    def automation_pending(self, since: datetime) -> list[Message]: ...
    def record_decision(self, message_id: int, decision: str, why: str, *,
                        entry_id: str | None, score: float | None, at: datetime,
                        reply: QueuedReply | None = None) -> int | None: ...
    def automation_decisions(self, conversation_id: int) -> list[dict[str, Any]]: ...
