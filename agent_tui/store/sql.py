"""One SQL store for every database: each query written once, with `?` placeholders.

`SqlStore` holds every method of the StoreBackend protocol that is the same SQL on SQLite and
PostgreSQL (ingest and threading, contacts and proposals, the outbox state machine, leases,
reads, stats, privacy) and the row mappers. What really differs is the dialect, a subclass
each, short enough to read in one sitting: `agent_tui.store.sqlite.SqliteStore` and
`agent_tui.store.postgres.PostgresStore` supply the connection and transactions (BEGIN
IMMEDIATE; advisory locks), parameter and type conversion (timestamps, JSON, NUL), a few SQL
fragments (greatest/least, the clock, row locks, JSON access), full-text search, change
detection and the scrub after an erasure. Forms used here run on both (SQLite >= 3.35):
`INSERT ... ON CONFLICT ... DO UPDATE/NOTHING ... RETURNING`, `UPDATE ... RETURNING`.

Orders always end with `id`, so ties come out alike on both.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from agent_tui.errors import NotFound, UsageError
from agent_tui.model import (
    AttachmentInfo,
    AutoFlags,
    Channel,
    Contact,
    Conversation,
    ConversationStatus,
    Cursor,
    Direction,
    Identity,
    InboundMessage,
    Message,
    Note,
    OutboxState,
    Priority,
)
from agent_tui.store.base import (
    ClosedConversation,
    ContactHint,
    IllegalTransition,
    IngestResult,
    MergeProposal,
    OutboxRow,
    QueuedReply,
    StatsMessage,
)
from agent_tui.subjects import normalise_subject

SUBJECT_WINDOW = timedelta(days=14)      # mail: same contact + subject within this joins a thread
CHAT_REOPEN_WINDOW = timedelta(days=7)   # chat: a closed conversation younger than this reopens
STUCK_AFTER = timedelta(minutes=10)      # an outbox row in `sending` this long was left by a crash
PREVIEW_CHARS = 120

# Transaction locks: PostgreSQL takes an advisory lock by this name, SQLite has one writer anyway.
WRITE_LOCK = "write"       # ingest, contacts, erase: serialised as SQLite's one writer does
ASSIGN_LOCK = "assign"     # assignment at ingest: one rotation at a time

CONVERSATION_COLUMNS = (
    "c.id, c.contact_id, c.channel, c.account, c.subject, c.status, c.assignee, c.tags, "
    "c.priority, c.first_inbound_at, c.last_inbound_at, c.last_activity_at, c.due_at, c.unread, "
    "k.display_name, c.contact_address, c.preview, c.enrichment, c.waiting_since")
_CONVERSATIONS = f"SELECT {CONVERSATION_COLUMNS} FROM conversations c " \
    "JOIN contacts k ON k.id=c.contact_id"
MESSAGE_COLUMNS = (
    "id, conversation_id, account, channel, direction, provider_id, sender, sender_name, "
    "recipients, sent_at, subject, text, attachments, auto_flags, delivery_status, defects, "
    "in_reply_to, refs, edited")
_OUTBOX_COLUMNS = ("id, conversation_id, account, payload, idempotency_key, state, attempts, "
                   "next_attempt_at, attempted_at, last_error, provider_id, created_at, "
                   "claimed_by")
_PROPOSAL_COLUMNS = ("id, contact_a, contact_b, reason, message_id, state, created_at, "
                     "resolved_at, merged_id")

# Allowed outbox moves; anything else raises IllegalTransition.
TRANSITIONS: dict[OutboxState, set[OutboxState]] = {
    OutboxState.QUEUED: {OutboxState.SENDING, OutboxState.FAILED, OutboxState.CANCELLED},
    OutboxState.SENDING: {OutboxState.SENT, OutboxState.QUEUED, OutboxState.FAILED,
                          OutboxState.UNCERTAIN},
    OutboxState.UNCERTAIN: {OutboxState.QUEUED, OutboxState.SENT, OutboxState.FAILED,
                            OutboxState.CANCELLED},
    OutboxState.FAILED: {OutboxState.QUEUED, OutboxState.CANCELLED},
    OutboxState.SENT: set(),
    OutboxState.CANCELLED: set(),
}


def iso(value: datetime) -> str:
    """A fixed-width UTC timestamp that sorts as text (SQLite's timestamp columns)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # isoformat is several times faster than strftime and writes the same text.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def utcnow() -> datetime:
    return datetime.now(UTC)


def identity_kind(channel: Channel) -> str:
    if channel is Channel.EMAIL:
        return "email"
    if channel is Channel.TELEGRAM:
        return "telegram"
    return "phone"


def normalise_address(channel: Channel, address: str) -> str:
    address = address.strip()
    return address.lower() if channel is Channel.EMAIL else address


def tombstone_key(account: str, provider_id: str) -> str:
    return hashlib.sha256(f"{account}\0{provider_id}".encode()).hexdigest()


def _preview(text: str) -> str:
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and not line.startswith(">"):
            return line[:PREVIEW_CHARS]
    return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _attachment_json(a: AttachmentInfo) -> dict[str, Any]:
    return {"name": a.name, "content_type": a.content_type, "size": a.size, "ref": a.ref}


def _flags_json(f: AutoFlags) -> dict[str, bool]:
    return {"auto_submitted": f.auto_submitted, "bulk": f.bulk, "list_mail": f.list_mail,
            "bounce": f.bounce, "null_sender": f.null_sender}


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


# Listing and opening map every row in Python, so the hot paths avoid Enum(value) calls and
# decoding the common empty values; AutoFlags is frozen, so one instance serves every message
# from a person.
_CHANNELS = {str(c): c for c in Channel}
_STATUSES = {str(s): s for s in ConversationStatus}
_PRIORITIES = {str(p): p for p in Priority}
_DIRECTIONS = {str(d): d for d in Direction}
_NO_AUTO_FLAGS = AutoFlags()
NO_AUTO_FLAGS_JSON = json.dumps(_flags_json(_NO_AUTO_FLAGS))


Row = Sequence[Any]


def _conversation_mapper(t: Callable[[Any], datetime],
                         j: Callable[[Any], Any]) -> Callable[[Row], Conversation]:
    def conversation(r: Row) -> Conversation:
        (id_, contact_id, channel, account, subject, status, assignee, tags, priority,
         first_in, last_in, last_activity, due, unread, name, address, preview, enrichment,
         waiting) = r
        return Conversation(
            id_, contact_id, _CHANNELS[channel], account, subject, _STATUSES[status], assignee,
            j(tags), _PRIORITIES[priority], first_in and t(first_in), last_in and t(last_in),
            t(last_activity), due and t(due), unread, name, address, preview, j(enrichment),
            waiting and t(waiting))
    return conversation


def _message_mapper(t: Callable[[Any], datetime],
                    j: Callable[[Any], Any]) -> Callable[[Row], Message]:
    def message(r: Row) -> Message:
        (id_, conversation_id, account, channel, direction, provider_id, sender, sender_name,
         recipients, sent_at, subject, text, attachments, auto_flags, delivery_status, defects,
         in_reply_to, refs, edited) = r
        if auto_flags == NO_AUTO_FLAGS_JSON:
            flags = _NO_AUTO_FLAGS
        else:
            values = j(auto_flags)
            flags = AutoFlags(**values) if any(values.values()) else _NO_AUTO_FLAGS
        # "[]": SQLite's text of the common empty list, decoded without a call.
        return Message(
            id_, conversation_id, account, _CHANNELS[channel], _DIRECTIONS[direction],
            provider_id, sender, sender_name, j(recipients), t(sent_at), subject, text,
            [] if attachments == "[]" else [AttachmentInfo(**a) for a in j(attachments)],
            flags, delivery_status, [] if defects == "[]" else j(defects), in_reply_to,
            [] if refs == "[]" else j(refs), bool(edited))
    return message


class SqlStore:
    """The store's queries over a database connection; a dialect subclass supplies the rest."""

    # --- the dialect: set by each subclass -------------------------------------------------
    GREATEST: ClassVar[str]          # scalar max of two values ("max" on SQLite)
    LEAST: ClassVar[str]
    NOW: ClassVar[str]               # the database's clock, as its timestamp columns hold it
    LATER: ClassVar[str]             # the clock plus `?` seconds
    FOR_UPDATE: ClassVar[str]        # row lock of a SELECT in a write transaction ("" on SQLite)
    SKIP_LOCKED: ClassVar[str]       # ... that skips rows other writers hold
    TAG_FILTER: ClassVar[str]        # c.tags holds the tag given as `tag_param(tag)`
    HOUR: ClassVar[str]              # sent_at's UTC hour as text "YYYY-MM-DDTHH"
    ts: Callable[[datetime], Any]           # a timestamp as the database stores it
    ts_out: Callable[[Any], datetime]       # ... and back (never called with NULL)
    json: Callable[[Any], Any]              # a list or dict as the database stores it
    json_out: Callable[[Any], Any]          # ... and back
    storable: Callable[[str], str]          # text as the database can store it (NUL)

    _conversation: Callable[[Sequence[Any]], Conversation]     # made for each dialect
    _message: Callable[[Sequence[Any]], Message]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._conversation = staticmethod(_conversation_mapper(cls.ts_out, cls.json_out))
        cls._message = staticmethod(_message_mapper(cls.ts_out, cls.json_out))

    def transaction(self, lock: str | None = None, *,
                    durable: bool = False) -> AbstractContextManager[Any]:
        """One write transaction (its connection-like object has execute/executemany);
        `durable`: on disk when it returns, power loss included."""
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read, as tuples."""
        raise NotImplementedError

    def tag_param(self, tag: str) -> Any:
        raise NotImplementedError

    def id_list(self, column: str, ids: Sequence[int]) -> tuple[str, Any]:
        """`column` is one of `ids` (any number of them), as SQL and its one parameter."""
        raise NotImplementedError

    def json_int(self, expression: str, key: str) -> str:
        """A JSON column's integer at `key`; NULL when absent, never an error."""
        raise NotImplementedError

    def _scrub(self) -> None:
        """After an erasure: leave no deleted text in the database's files."""
        raise NotImplementedError

    # --- ingest ---------------------------------------------------------------------------

    def get_cursor(self, account: str, key: str) -> Cursor | None:
        rows = self._query("SELECT value FROM cursors WHERE account=? AND key=?", (account, key))
        return self.json_out(rows[0][0]) if rows else None

    def ingest(self, account: str, messages: Sequence[InboundMessage], *, cursor_key: str,
               cursor: Cursor | None) -> IngestResult:
        """Store messages and move the cursor in one transaction (invariant 1)."""
        result = IngestResult()
        with self.transaction(WRITE_LOCK) as db:
            for message in messages:
                self._ingest_one(db, account, message, result)
            if cursor is not None:
                db.execute(
                    "INSERT INTO cursors(account, key, value, updated_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(account, key) DO UPDATE SET value=excluded.value, "
                    "updated_at=excluded.updated_at",
                    (account, cursor_key, self.json(cursor), self.ts(utcnow())))
        return result

    def record_outbound(self, account: str, message: InboundMessage, *,
                        conversation_id: int) -> int | None:
        """Store a reply we just sent in its conversation (no cursor involved)."""
        result = IngestResult()
        with self.transaction(WRITE_LOCK) as db:
            self._ingest_one(db, account, message, result, conversation_id=conversation_id)
        return result.new_message_ids[0] if result.new_message_ids else None

    def _ingest_one(self, db: Any, account: str, m: InboundMessage, result: IngestResult,
                    conversation_id: int | None = None) -> None:
        existing = db.execute(
            "SELECT id, conversation_id, delivery_status, text FROM messages "
            "WHERE account=? AND provider_id=?", (account, m.provider_id)).fetchone()
        if existing is not None:
            self._update_known(db, existing, m, result)
            return
        if db.execute("SELECT 1 FROM tombstones WHERE key_hash=?",
                      (tombstone_key(account, m.provider_id),)).fetchone():
            result.skipped += 1
            return
        inbound = m.direction is Direction.INBOUND
        address = m.sender if inbound else (m.recipients[0] if m.recipients else "")
        name = m.sender_name if inbound else ""
        contact_id = self._contact_for(db, m.channel, address, name)
        extra = m.extra
        if m.reply_to:
            # Kept for the merge proposals (a Reply-To that another contact writes from).
            extra = {**extra, "reply_to": m.reply_to.strip().lower()}
        if conversation_id is None:
            conversation_id = self._thread(db, account, m, contact_id,
                                           normalise_address(m.channel, address))
        j = self.json
        row = db.execute(
            "INSERT INTO messages(conversation_id, account, channel, direction, provider_id, "
            "sender, sender_name, recipients, sent_at, subject, text, html, attachments, "
            "auto_flags, in_reply_to, refs, delivery_status, defects, content_hash, extra, raw) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (conversation_id, account, str(m.channel), str(m.direction), m.provider_id,
             m.sender, m.sender_name, j(m.recipients), self.ts(m.sent_at), m.subject,
             m.text, m.html, j([_attachment_json(a) for a in m.attachments]),
             j(_flags_json(m.auto)), m.in_reply_to, j(m.references), m.delivery_status,
             j(m.defects), m.content_hash, j(extra), m.raw or None)).fetchone()
        self._touch_conversation(db, conversation_id, m)
        result.new += 1
        result.new_message_ids.append(row[0])
        result.conversation_ids.add(conversation_id)

    def _update_known(self, db: Any, row: Sequence[Any], m: InboundMessage,
                      result: IngestResult) -> None:
        """A message we have: a delivery status update or an edit, else a plain duplicate."""
        message_id, conversation_id, delivery_status, text = row
        changed = False
        if m.delivery_status and m.delivery_status != delivery_status:
            db.execute("UPDATE messages SET delivery_status=? WHERE id=?",
                       (m.delivery_status, message_id))
            changed = True
        if m.extra.get("edited") and self.storable(m.text) != text:
            db.execute("UPDATE messages SET text=?, edited=1 WHERE id=?", (m.text, message_id))
            changed = True
        if changed:
            result.updated += 1
            result.conversation_ids.add(conversation_id)
        else:
            result.duplicates += 1

    def _contact_for(self, db: Any, channel: Channel, address: str, name: str) -> int:
        kind = identity_kind(channel)
        address = normalise_address(channel, address)
        row = db.execute("SELECT i.contact_id, k.display_name FROM identities i "
                         "JOIN contacts k ON k.id=i.contact_id WHERE i.kind=? AND i.address=?",
                         (kind, address)).fetchone()
        if row is not None:
            contact_id = int(row[0])
            if name and not row[1]:
                db.execute("UPDATE contacts SET display_name=? WHERE id=?", (name, contact_id))
            return contact_id
        new_id = int(db.execute("INSERT INTO contacts(display_name, created_at) VALUES (?,?) "
                                "RETURNING id", (name, self.ts(utcnow()))).fetchone()[0])
        db.execute("INSERT INTO identities(contact_id, kind, address) VALUES (?,?,?)",
                   (new_id, kind, address))
        return new_id

    def _thread(self, db: Any, account: str, m: InboundMessage, contact_id: int,
                address: str) -> int:
        if m.channel is Channel.EMAIL:
            found = self._mail_thread(db, account, m, contact_id)
        else:
            found = self._chat_thread(db, account, m, contact_id)
        if found is not None:
            return found
        return int(db.execute(
            "INSERT INTO conversations(contact_id, contact_address, channel, account, subject, "
            "norm_subject, last_activity_at) VALUES (?,?,?,?,?,?,?) RETURNING id",
            (contact_id, address, str(m.channel), account, m.subject,
             normalise_subject(m.subject) if m.channel is Channel.EMAIL else "",
             self.ts(m.sent_at))).fetchone()[0])

    def _mail_thread(self, db: Any, account: str, m: InboundMessage,
                     contact_id: int) -> int | None:
        ids = [i for i in [m.in_reply_to, *m.references] if i]
        if ids:
            row = db.execute(
                f"SELECT conversation_id FROM messages WHERE account=? AND provider_id IN "
                f"({_marks(ids)}) ORDER BY sent_at DESC, id DESC LIMIT 1",
                (account, *ids)).fetchone()
            if row is not None:
                # A real reply reopens even a closed conversation.
                return int(row[0])
        subject = normalise_subject(m.subject)
        if not subject:
            return None
        row = db.execute(
            "SELECT id FROM conversations WHERE contact_id=? AND norm_subject=? AND account=? "
            "AND channel='email' AND status!='closed' AND last_activity_at>=? "
            "ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            (contact_id, subject, account, self.ts(m.sent_at - SUBJECT_WINDOW))).fetchone()
        return int(row[0]) if row else None

    def _chat_thread(self, db: Any, account: str, m: InboundMessage,
                     contact_id: int) -> int | None:
        row = db.execute(
            "SELECT id, status, closed_at FROM conversations WHERE account=? AND channel=? "
            "AND contact_id=? ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            (account, str(m.channel), contact_id)).fetchone()
        if row is None:
            return None
        conversation_id, status, closed_at = row
        if status != ConversationStatus.CLOSED:
            return int(conversation_id)
        sent_at = m.sent_at if m.sent_at.tzinfo else m.sent_at.replace(tzinfo=UTC)
        if closed_at is not None and sent_at - self.ts_out(closed_at) <= CHAT_REOPEN_WINDOW:
            return int(conversation_id)
        return None

    def _touch_conversation(self, db: Any, conversation_id: int, m: InboundMessage) -> None:
        at = self.ts(m.sent_at)
        if m.direction is Direction.INBOUND:
            # A new customer message wakes a snoozed, pending or closed conversation.
            db.execute(
                f"UPDATE conversations SET last_activity_at={self.GREATEST}(last_activity_at, ?), "
                f"first_inbound_at=coalesce({self.LEAST}(first_inbound_at, ?), ?), "
                f"last_inbound_at=coalesce({self.GREATEST}(last_inbound_at, ?), ?), "
                "waiting_since=coalesce(waiting_since, ?), unread=unread+?, "
                "preview=CASE WHEN last_inbound_at IS NULL OR ?>=last_inbound_at THEN ? "
                "ELSE preview END, "
                "status='open', snoozed_until=NULL, closed_at=NULL WHERE id=?",
                (at, at, at, at, at, at, 0 if m.read else 1, at,
                 _preview(m.text) or m.subject[:PREVIEW_CHARS], conversation_id))
        else:
            db.execute(
                f"UPDATE conversations SET last_activity_at={self.GREATEST}(last_activity_at, ?), "
                "waiting_since=CASE WHEN waiting_since IS NOT NULL AND waiting_since<=? "
                "THEN NULL ELSE waiting_since END WHERE id=?", (at, at, conversation_id))

    # --- reads ----------------------------------------------------------------------------

    def _filters(self, status: str | None, channel: str | None, assignee: str | None,
                 tag: str | None) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if status:
            where.append("c.status=?")
            params.append(status)
        if channel:
            where.append("c.channel=?")
            params.append(channel)
        if assignee is not None:
            if assignee == "":
                where.append("c.assignee IS NULL")
            else:
                where.append("c.assignee=?")
                params.append(assignee)
        if tag:
            where.append(self.TAG_FILTER)
            params.append(self.tag_param(tag))
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def list_conversations(self, *, status: str | None = None, channel: str | None = None,
                           assignee: str | None = None, tag: str | None = None,
                           limit: int = 50, offset: int = 0) -> list[Conversation]:
        """Newest activity first. `assignee=""` lists the unassigned ones."""
        where, params = self._filters(status, channel, assignee, tag)
        rows = self._query(f"{_CONVERSATIONS}{where} "
                           "ORDER BY c.last_activity_at DESC, c.id LIMIT ? OFFSET ?",
                           (*params, limit, offset))
        return list(map(self._conversation, rows))

    def count_conversations(self, *, status: str | None = None, channel: str | None = None,
                            assignee: str | None = None, tag: str | None = None) -> int:
        where, params = self._filters(status, channel, assignee, tag)
        return int(self._query(f"SELECT count(*) FROM conversations c{where}", params)[0][0])

    def waiting_conversations(self, *, limit: int = 500) -> list[Conversation]:
        """Open conversations with an unanswered customer message, longest waiting first."""
        rows = self._query(f"{_CONVERSATIONS} WHERE c.status='open' AND c.waiting_since IS NOT "
                           "NULL ORDER BY c.waiting_since, c.id LIMIT ?", (limit,))
        return [self._conversation(r) for r in rows]

    def _one(self, sql: str, key: int, missing: str) -> Any:
        """The one row `sql` finds for `key`; NotFound("no <missing> <key>") without it."""
        rows = self._query(sql, (key,))
        if not rows:
            raise NotFound(f"no {missing} {key}")
        return rows[0]

    def get_conversation(self, conversation_id: int) -> Conversation:
        return self._conversation(self._one(f"{_CONVERSATIONS} WHERE c.id=?", conversation_id,
                                            "conversation"))

    def get_messages(self, conversation_id: int) -> list[Message]:
        rows = self._query(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id=? "
                           "ORDER BY sent_at, id", (conversation_id,))
        return list(map(self._message, rows))

    def get_message(self, message_id: int) -> Message:
        return self._message(self._one(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id=?",
                                       message_id, "message"))

    def get_raw(self, message_id: int) -> bytes | None:
        rows = self._query("SELECT raw FROM messages WHERE id=?", (message_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def get_contact(self, contact_id: int) -> Contact:
        row = self._one("SELECT id, display_name FROM contacts WHERE id=?", contact_id,
                        "contact")
        identities = [Identity(kind, address) for kind, address in self._query(
            "SELECT kind, address FROM identities WHERE contact_id=? ORDER BY id", (contact_id,))]
        return Contact(row[0], row[1], identities)

    def contact_conversations(self, contact_id: int) -> list[Conversation]:
        rows = self._query(f"{_CONVERSATIONS} WHERE c.contact_id=? "
                           "ORDER BY c.last_activity_at DESC, c.id", (contact_id,))
        return [self._conversation(r) for r in rows]

    def iter_export(self, contact_id: int | None = None
                    ) -> Iterator[tuple[Message, Conversation, Contact]]:
        """Every message with its conversation and contact, oldest first."""
        where, params = ("WHERE c.contact_id=?", (contact_id,)) if contact_id else ("", ())
        ids = self._query(f"SELECT c.id FROM conversations c {where} ORDER BY c.id", params)
        contacts: dict[int, Contact] = {}
        for (conversation_id,) in ids:
            conversation = self.get_conversation(conversation_id)
            if conversation.contact_id not in contacts:
                contacts[conversation.contact_id] = self.get_contact(conversation.contact_id)
            for message in self.get_messages(conversation.id):
                yield message, conversation, contacts[conversation.contact_id]

    def get_notes(self, conversation_id: int) -> list[Note]:
        return [Note(r[0], r[1], r[2], r[3], self.ts_out(r[4])) for r in self._query(
            "SELECT id, conversation_id, author, text, created_at FROM notes "
            "WHERE conversation_id=? ORDER BY id", (conversation_id,))]

    def inbound_hour_counts(self, since: datetime) -> dict[tuple[str, datetime], int]:
        """Customer messages per channel and UTC hour since `since` (for the early warning)."""
        rows = self._query(
            f"SELECT channel, {self.HOUR} AS hour, count(*) FROM messages "
            "WHERE direction='in' AND sent_at>=? GROUP BY channel, hour", (self.ts(since),))
        return {(r[0], datetime.strptime(r[1], "%Y-%m-%dT%H").replace(tzinfo=UTC)): int(r[2])
                for r in rows}

    # --- changes by people ----------------------------------------------------------------

    def _update_conversation(self, conversation_id: int, sql: str, params: Sequence[Any]) -> None:
        with self.transaction() as db:
            cur = db.execute(f"UPDATE conversations SET {sql} WHERE id=?",
                             (*params, conversation_id))
            if cur.rowcount == 0:
                raise NotFound(f"no conversation {conversation_id}")

    def set_status(self, conversation_id: int, status: ConversationStatus | str,
                   snoozed_until: datetime | None = None) -> None:
        status = ConversationStatus(status)
        closed_at = self.ts(utcnow()) if status is ConversationStatus.CLOSED else None
        self._update_conversation(
            conversation_id, "status=?, snoozed_until=?, closed_at=?",
            (str(status), self.ts(snoozed_until) if snoozed_until else None, closed_at))

    def wake_snoozed(self, now: datetime | None = None) -> int:
        """Snoozed conversations whose time has come are open again."""
        with self.transaction() as db:
            cur = db.execute("UPDATE conversations SET status='open', snoozed_until=NULL "
                             "WHERE status='snoozed' AND snoozed_until<=?",
                             (self.ts(now or utcnow()),))
            return int(cur.rowcount)

    def assign(self, conversation_id: int, agent: str | None) -> None:
        self._update_conversation(conversation_id, "assignee=?", (agent or None,))

    def set_priority(self, conversation_id: int, priority: Priority | str) -> None:
        self._update_conversation(conversation_id, "priority=?", (str(Priority(priority)),))

    def _change_json(self, conversation_id: int, column: str,
                     change: Callable[[Any], Any]) -> None:
        """Read, change and write a JSON column in one transaction, the row locked: two agents
        tagging at once both keep their tag."""
        with self.transaction() as db:
            row = db.execute(f"SELECT {column} FROM conversations WHERE id=?{self.FOR_UPDATE}",
                             (conversation_id,)).fetchone()
            if row is None:
                raise NotFound(f"no conversation {conversation_id}")
            db.execute(f"UPDATE conversations SET {column}=? WHERE id=?",
                       (self.json(change(self.json_out(row[0]))), conversation_id))

    def add_tag(self, conversation_id: int, tag: str) -> None:
        self._change_json(conversation_id, "tags",
                          lambda tags: tags if tag in tags else [*tags, tag])

    def remove_tag(self, conversation_id: int, tag: str) -> None:
        self._change_json(conversation_id, "tags", lambda tags: [t for t in tags if t != tag])

    def set_enrichment(self, conversation_id: int, fields: dict[str, str]) -> None:
        self._change_json(conversation_id, "enrichment", lambda old: {**old, **fields})

    def mark_read(self, conversation_id: int) -> None:
        self._update_conversation(conversation_id, "unread=0", ())

    def mark_read_elsewhere(self, account: str, provider_ids: Sequence[str]) -> int:
        """Another client read these messages: a conversation whose newest customer message is
        among them counts as read. Returns how many conversations changed."""
        changed = 0
        with self.transaction() as db:
            for provider_id in provider_ids:
                changed += db.execute(
                    "UPDATE conversations SET unread=0 WHERE unread>0 AND id=("
                    "SELECT m.conversation_id "
                    "FROM messages m WHERE m.account=? AND m.provider_id=? AND m.direction='in' "
                    "AND m.sent_at>=(SELECT max(n.sent_at) FROM messages n WHERE "
                    "n.conversation_id=m.conversation_id AND n.direction='in'))",
                    (account, provider_id)).rowcount
        return changed

    def set_due(self, conversation_id: int, due_at: datetime | None) -> None:
        self._update_conversation(conversation_id, "due_at=?",
                                  (self.ts(due_at) if due_at else None,))

    def add_note(self, conversation_id: int, author: str, text: str) -> Note:
        at = utcnow()
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM conversations WHERE id=?",
                              (conversation_id,)).fetchone():
                raise NotFound(f"no conversation {conversation_id}")
            row = db.execute("INSERT INTO notes(conversation_id, author, text, created_at) "
                             "VALUES (?,?,?,?) RETURNING id",
                             (conversation_id, author, text, self.ts(at))).fetchone()
        return Note(int(row[0]), conversation_id, author, text, at)

    def delete_message(self, message_id: int) -> None:
        """Delete a message; its provider id is remembered (hashed) so no sync brings it back."""
        with self.transaction(WRITE_LOCK) as db:
            row = db.execute("SELECT account, provider_id FROM messages WHERE id=?",
                             (message_id,)).fetchone()
            if row is None:
                raise NotFound(f"no message {message_id}")
            db.execute("INSERT INTO tombstones(key_hash, created_at) VALUES (?,?) "
                       "ON CONFLICT DO NOTHING",
                       (tombstone_key(row[0], row[1]), self.ts(utcnow())))
            db.execute("DELETE FROM messages WHERE id=?", (message_id,))

    # --- contacts and data protection -----------------------------------------------------

    def find_contact(self, address: str) -> int | None:
        """The contact holding this address (email, E.164 phone or Telegram id), if any."""
        rows = self._query("SELECT contact_id FROM identities WHERE address=? OR address=? "
                           "ORDER BY id LIMIT 1", (address.strip(), address.strip().lower()))
        return int(rows[0][0]) if rows else None

    def _require_contacts(self, db: Any, *contact_ids: int) -> None:
        for contact_id in contact_ids:
            if not db.execute("SELECT 1 FROM contacts WHERE id=?", (contact_id,)).fetchone():
                raise NotFound(f"no contact {contact_id}")

    def merge_contacts(self, keep: int, other: int) -> None:
        """One customer: `other`'s identities and conversations move to `keep` (explicit only)."""
        if keep == other:
            raise UsageError("cannot merge a contact with itself")
        with self.transaction(WRITE_LOCK) as db:
            self._require_contacts(db, keep, other)
            for table in ("identities", "conversations", "auto_replies"):
                db.execute(f"UPDATE {table} SET contact_id=? WHERE contact_id=?", (keep, other))
            self._move_proposals(db, keep, other)
            db.execute("UPDATE contact_hints SET contact_id=? WHERE contact_id=? AND NOT EXISTS "
                       "(SELECT 1 FROM contact_hints k WHERE k.contact_id=? AND "
                       "k.kind=contact_hints.kind AND k.address=contact_hints.address)",
                       (keep, other, keep))
            db.execute("DELETE FROM contact_hints WHERE contact_id=?", (other,))
            db.execute("UPDATE contacts SET display_name=(SELECT display_name FROM contacts "
                       "WHERE id=?) WHERE id=? AND display_name=''", (other, keep))
            db.execute("DELETE FROM contacts WHERE id=?", (other,))

    def split_contact(self, contact_id: int, kind: str, address: str) -> int:
        """Move one identity, and the conversations held through it, to a new contact."""
        with self.transaction(WRITE_LOCK) as db:
            row = db.execute("SELECT id FROM identities WHERE contact_id=? AND kind=? AND "
                             "address=?", (contact_id, kind, address)).fetchone()
            if row is None:
                raise NotFound(f"contact {contact_id} has no {kind} identity {address!r}")
            if db.execute("SELECT count(*) FROM identities WHERE contact_id=?",
                          (contact_id,)).fetchone()[0] < 2:
                raise UsageError(f"{address} is the only identity of contact {contact_id}")
            at = self.ts(utcnow())
            new_id = int(db.execute("INSERT INTO contacts(display_name, created_at) "
                                    "VALUES ('', ?) RETURNING id", (at,)).fetchone()[0])
            db.execute("UPDATE identities SET contact_id=? WHERE id=?", (new_id, row[0]))
            db.execute("UPDATE conversations SET contact_id=? WHERE contact_id=? AND "
                       "contact_address=?", (new_id, contact_id, address))
            # A person split them: never propose this pair again (ids may be reused or copied,
            # so the pair is sorted rather than assumed).
            low, high = sorted((contact_id, new_id))
            db.execute("INSERT INTO merge_proposals(contact_a, contact_b, reason, state, "
                       "created_at, resolved_at) VALUES (?,?,?,'rejected',?,?)",
                       (low, high, f"split by a person ({kind} {address})", at, at))
            return new_id

    def _delete_conversations(self, db: Any, where: str,
                              params: Sequence[Any]) -> tuple[int, int]:
        """Delete conversations and their messages; their provider ids become tombstones."""
        chosen = f"IN (SELECT id FROM conversations WHERE {where})"
        keys = db.execute(f"SELECT account, provider_id FROM messages WHERE conversation_id "
                          f"{chosen}", params).fetchall()
        at = self.ts(utcnow())
        if keys:
            db.executemany("INSERT INTO tombstones(key_hash, created_at) VALUES (?,?) "
                           "ON CONFLICT DO NOTHING", [(tombstone_key(a, p), at) for a, p in keys])
        for table in ("messages", "notes", "outbox"):
            db.execute(f"DELETE FROM {table} WHERE conversation_id {chosen}", params)
        count = db.execute(f"DELETE FROM conversations WHERE {where}", params).rowcount
        return int(count), len(keys)

    def erase_contact(self, contact_id: int) -> dict[str, int]:
        """Remove a person entirely (Art. 17); later syncs skip their messages (hashes only)."""
        self.get_contact(contact_id)
        with self.transaction(WRITE_LOCK) as db:
            conversations, messages = self._delete_conversations(db, "contact_id=?",
                                                                 (contact_id,))
            # Hints other contacts' messages gave about this person's addresses go too.
            db.execute("DELETE FROM contact_hints WHERE contact_id=? OR EXISTS (SELECT 1 FROM "
                       "identities i WHERE i.contact_id=? AND i.kind=contact_hints.kind AND "
                       "i.address=contact_hints.address)", (contact_id, contact_id))
            db.execute("DELETE FROM merge_proposals WHERE contact_a=? OR contact_b=?",
                       (contact_id, contact_id))
            identities = int(db.execute("DELETE FROM identities WHERE contact_id=?",
                                        (contact_id,)).rowcount)
            db.execute("DELETE FROM auto_replies WHERE contact_id=?", (contact_id,))
            db.execute("DELETE FROM contacts WHERE id=?", (contact_id,))
        self._scrub()
        return {"conversations": conversations, "messages": messages, "identities": identities}

    def purge_closed(self, before: datetime) -> int:
        """Retention: delete conversations closed before `before`; returns how many."""
        with self.transaction(WRITE_LOCK) as db:
            count, _ = self._delete_conversations(
                db, "status='closed' AND closed_at IS NOT NULL AND closed_at<?",
                (self.ts(before),))
        if count:
            self._after_purge()
        return count

    def _after_purge(self) -> None:
        """After retention deleted conversations (a cron run): the scrub, unless the dialect
        has a lighter way that does not lock other users out."""
        self._scrub()

    # --- proposed merges (never silent) ----------------------------------------------------

    def identity_owner(self, kind: str, address: str) -> int | None:
        """The contact holding exactly this identity (address already normalised)."""
        rows = self._query("SELECT contact_id FROM identities WHERE kind=? AND address=?",
                           (kind, address))
        return int(rows[0][0]) if rows else None

    def get_message_extra(self, message_id: int) -> dict[str, Any]:
        """What the connector kept beside the text (Telegram shared_phone, mail reply_to...)."""
        value = self.json_out(self._one("SELECT extra FROM messages WHERE id=?", message_id,
                                        "message")[0] or "{}")
        return value if isinstance(value, dict) else {}

    def propose_merge(self, contact_a: int, contact_b: int, reason: str, *,
                      message_id: int | None = None) -> int | None:
        """Propose that two contacts are one customer; returns the new proposal's id, or None
        when the pair was proposed before (open, accepted or rejected), is one contact, or
        either contact no longer exists. Never merges anything."""
        if contact_a == contact_b:
            return None
        low, high = sorted((contact_a, contact_b))
        with self.transaction(WRITE_LOCK) as db:
            alive = db.execute("SELECT count(*) FROM contacts WHERE id IN (?,?)",
                               (low, high)).fetchone()[0]
            if alive != 2:
                return None
            row = db.execute(
                "INSERT INTO merge_proposals(contact_a, contact_b, reason, message_id, state, "
                "created_at) VALUES (?,?,?,?,'open',?) "
                "ON CONFLICT (contact_a, contact_b) DO NOTHING RETURNING id",
                (low, high, reason, message_id, self.ts(utcnow()))).fetchone()
            return int(row[0]) if row else None

    def merge_proposals(self, *, state: str | None = "open",
                        contact_id: int | None = None) -> list[MergeProposal]:
        """Proposals, oldest first; `state=None` lists every state."""
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            where.append("state=?")
            params.append(state)
        if contact_id is not None:
            where.append("(contact_a=? OR contact_b=?)")
            params.extend([contact_id, contact_id])
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return [self._proposal(r) for r in self._query(
            f"SELECT {_PROPOSAL_COLUMNS} FROM merge_proposals{clause} ORDER BY created_at, id",
            params)]

    def reject_merge(self, contact_a: int, contact_b: int, reason: str = "") -> None:
        """A person says these are two customers: the pair is never proposed again."""
        if contact_a == contact_b:
            raise UsageError("a contact cannot be rejected as its own duplicate")
        low, high = sorted((contact_a, contact_b))
        at = self.ts(utcnow())
        with self.transaction(WRITE_LOCK) as db:
            self._require_contacts(db, contact_a, contact_b)
            cur = db.execute("UPDATE merge_proposals SET state='rejected', resolved_at=? "
                             "WHERE contact_a=? AND contact_b=?", (at, low, high))
            if cur.rowcount == 0:
                db.execute("INSERT INTO merge_proposals(contact_a, contact_b, reason, state, "
                           "created_at, resolved_at) VALUES (?,?,?,'rejected',?,?)",
                           (low, high, reason or "rejected by a person", at, at))

    def _move_proposals(self, db: Any, keep: int, other: int) -> None:
        """A merge: `other`'s proposals move to `keep`; theirs together becomes accepted (a
        person merged them, even after rejecting it once: open and rejected proposals name two
        living contacts). Where `keep` already has a proposal with the same third contact, a
        rejection wins."""
        at = self.ts(utcnow())
        db.execute("UPDATE merge_proposals SET contact_a=? WHERE contact_a=? AND contact_b IS NULL",
                   (keep, other))
        rows = db.execute("SELECT id, contact_a, contact_b, state FROM merge_proposals "
                          "WHERE contact_b IS NOT NULL AND (contact_a=? OR contact_b=?)",
                          (other, other)).fetchall()
        for proposal_id, a, b, state in rows:
            third = b if a == other else a
            if third == keep:
                db.execute("UPDATE merge_proposals SET contact_a=?, contact_b=NULL, merged_id=?, "
                           "state='accepted', resolved_at=? WHERE id=?",
                           (keep, other, at, proposal_id))
                continue
            low, high = sorted((keep, third))
            existing = db.execute("SELECT id, state FROM merge_proposals WHERE contact_a=? AND "
                                  "contact_b=?", (low, high)).fetchone()
            if existing is None:
                db.execute("UPDATE merge_proposals SET contact_a=?, contact_b=? WHERE id=?",
                           (low, high, proposal_id))
                continue
            if state == "rejected" and existing[1] == "open":
                db.execute("UPDATE merge_proposals SET state='rejected', resolved_at=? "
                           "WHERE id=?", (at, existing[0]))
            db.execute("DELETE FROM merge_proposals WHERE id=?", (proposal_id,))

    def add_contact_hint(self, contact_id: int, kind: str, address: str, reason: str, *,
                         message_id: int | None = None) -> bool:
        """Remember an address seen in this contact's message; False when already known."""
        with self.transaction(WRITE_LOCK) as db:
            if not db.execute("SELECT 1 FROM contacts WHERE id=?", (contact_id,)).fetchone():
                return False
            cur = db.execute(
                "INSERT INTO contact_hints(contact_id, kind, address, reason, message_id, "
                "created_at) VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (contact_id, kind, address, reason, message_id, self.ts(utcnow())))
            return bool(cur.rowcount == 1)

    def contact_hints(self, kind: str, address: str) -> list[ContactHint]:
        """Contacts whose messages named this address, oldest first."""
        return [ContactHint(*r) for r in self._query(
            "SELECT contact_id, kind, address, reason, message_id FROM contact_hints "
            "WHERE kind=? AND address=? ORDER BY id", (kind, address))]

    # --- outbox ---------------------------------------------------------------------------

    def outbox_enqueue(self, conversation_id: int, account: str, payload: dict[str, Any],
                       idempotency_key: str) -> int:
        """Queue a reply; enqueuing the same key twice returns the first row's id."""
        with self.transaction() as db:
            return self._enqueue(db, QueuedReply(conversation_id, account, payload,
                                                 idempotency_key))

    def _enqueue(self, db: Any, reply: QueuedReply) -> int:
        """The outbox row of `reply.idempotency_key` (UNIQUE): inserted, or the one there."""
        at = self.ts(utcnow())
        row = db.execute(
            "INSERT INTO outbox(conversation_id, account, payload, idempotency_key, state, "
            "next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,'queued',?,?,?) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            (reply.conversation_id, reply.account, self.json(reply.payload),
             reply.idempotency_key, at, at, at)).fetchone()
        if row is None:
            row = db.execute("SELECT id FROM outbox WHERE idempotency_key=?",
                             (reply.idempotency_key,)).fetchone()
        return int(row[0])

    def outbox_claim_next(self, now: datetime, *, accounts: set[str] | None = None,
                          holder: str | None = None) -> OutboxRow | None:
        """Atomically move the next due row from queued to sending (attempts + 1); rows
        another sender is claiming right now are skipped, never waited for."""
        holder = holder or f"{os.uname().nodename}:{os.getpid()}"
        extra, params = "", []
        if accounts is not None:
            if not accounts:
                return None
            params = sorted(accounts)
            extra = f" AND account IN ({_marks(params)})"
        at = self.ts(now)
        # Durable before the network send it precedes: a claim lost to power loss would put a
        # reply that went out back in `queued`, and it would go out again.
        with self.transaction(durable=True) as db:
            row = db.execute(
                "UPDATE outbox SET state='sending', attempts=attempts+1, attempted_at=?, "
                "claimed_by=?, updated_at=? WHERE id=(SELECT id FROM outbox WHERE "
                f"state='queued' AND next_attempt_at<=?{extra} ORDER BY next_attempt_at, id "
                f"LIMIT 1{self.SKIP_LOCKED}) RETURNING {_OUTBOX_COLUMNS}",
                (at, holder, at, at, *params)).fetchone()
        return self._outbox_row(row) if row is not None else None

    def _outbox_move(self, outbox_id: int, to: OutboxState, sql: str = "",
                     params: Sequence[Any] = ()) -> None:
        with self.transaction() as db:
            row = db.execute(f"SELECT state FROM outbox WHERE id=?{self.FOR_UPDATE}",
                             (outbox_id,)).fetchone()
            if row is None:
                raise NotFound(f"no outbox row {outbox_id}")
            current = OutboxState(row[0])
            if to not in TRANSITIONS[current]:
                raise IllegalTransition(f"outbox row {outbox_id}: cannot go from {current} "
                                        f"to {to}")
            db.execute(f"UPDATE outbox SET state=?, updated_at=?{sql} WHERE id=?",
                       (str(to), self.ts(utcnow()), *params, outbox_id))

    def outbox_mark_sent(self, outbox_id: int, provider_id: str) -> None:
        self._outbox_move(outbox_id, OutboxState.SENT, ", provider_id=?, last_error=''",
                          (provider_id,))

    def outbox_retry_later(self, outbox_id: int, error: str, next_attempt_at: datetime) -> None:
        self._outbox_move(outbox_id, OutboxState.QUEUED, ", last_error=?, next_attempt_at=?",
                          (error, self.ts(next_attempt_at)))

    def outbox_mark_failed(self, outbox_id: int, error: str) -> None:
        self._outbox_move(outbox_id, OutboxState.FAILED, ", last_error=?", (error,))

    def outbox_mark_uncertain(self, outbox_id: int, error: str) -> None:
        self._outbox_move(outbox_id, OutboxState.UNCERTAIN, ", last_error=?", (error,))

    def outbox_cancel(self, outbox_id: int, reason: str) -> None:
        self._outbox_move(outbox_id, OutboxState.CANCELLED, ", last_error=?", (reason,))

    def outbox_requeue(self, outbox_id: int) -> None:
        """A person decided: send an uncertain or failed reply again."""
        self._outbox_move(outbox_id, OutboxState.QUEUED, ", next_attempt_at=?",
                          (self.ts(utcnow()),))

    def outbox_stuck_sending(self, now: datetime | None = None) -> list[OutboxRow]:
        """Rows left in `sending` by a process that died (this host) or long ago (any host)."""
        at = now or utcnow()
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        me = os.uname().nodename
        stuck = []
        for row in self._query(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE state='sending' "
                               "ORDER BY id"):
            outbox = self._outbox_row(row)
            host, _, pid = str(row[12]).rpartition(":")
            attempted = outbox.attempted_at or at
            dead = host == me and pid.isdigit() and not _pid_alive(int(pid))
            if dead or at - attempted > STUCK_AFTER:
                stuck.append(outbox)
        return stuck

    def outbox_get(self, outbox_id: int) -> OutboxRow:
        return self._outbox_row(self._one(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id=?",
                                          outbox_id, "outbox row"))

    def outbox_rows(self, *, state: str | None = None,
                    conversation_id: int | None = None) -> list[OutboxRow]:
        where: list[str] = []
        params: list[Any] = []
        if state:
            where.append("state=?")
            params.append(state)
        if conversation_id is not None:
            where.append("conversation_id=?")
            params.append(conversation_id)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return [self._outbox_row(r) for r in self._query(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox{clause} ORDER BY id", params)]

    def outbox_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._query(
            "SELECT state, count(*) FROM outbox GROUP BY state")}

    # --- stats ----------------------------------------------------------------------------

    def stats_messages(self, since: datetime) -> list[StatsMessage]:
        """Every message of the conversations active since `since`, in order, each reply with
        how it was made (from its outbox row; an outbox id that is not a number names none)."""
        rows = self._query(
            "SELECT m.conversation_id, m.channel, m.direction, m.sent_at, o.payload "
            "FROM messages m LEFT JOIN outbox o ON m.direction='out' "
            f"AND o.id={self.json_int('m.extra', 'outbox_id')} "
            "WHERE m.conversation_id IN (SELECT conversation_id FROM messages WHERE sent_at>=?) "
            "ORDER BY m.conversation_id, m.sent_at, m.id", (self.ts(since),))
        out = []
        for conversation_id, channel, direction, sent_at, payload in rows:
            p = self.json_out(payload) if payload is not None else {}
            out.append(StatsMessage(conversation_id, channel, direction, self.ts_out(sent_at),
                                    bool(p.get("automatic")), p.get("entry_id") or None,
                                    bool(p.get("suggestion_edited")),
                                    bool(p.get("suggestions_shown"))))
        return out

    def closed_since(self, since: datetime) -> list[ClosedConversation]:
        rows = self._query(
            "SELECT channel, first_inbound_at, closed_at FROM conversations WHERE "
            "status='closed' AND closed_at>=? AND first_inbound_at IS NOT NULL",
            (self.ts(since),))
        return [ClosedConversation(r[0], self.ts_out(r[1]), self.ts_out(r[2])) for r in rows]

    # --- leases (timed by the database's clock: on PostgreSQL the one all hosts share) -------

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take the lease when it is free, expired or ours already (then it is renewed)."""
        with self.transaction() as db:
            row = db.execute(
                f"INSERT INTO leases(name, holder, expires_at) VALUES (?, ?, {self.LATER}) "
                "ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, "
                "expires_at=excluded.expires_at "
                f"WHERE leases.holder=excluded.holder OR leases.expires_at<={self.NOW} "
                "RETURNING holder", (name, holder, float(ttl_seconds))).fetchone()
            return row is not None

    def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        with self.transaction() as db:
            cur = db.execute(f"UPDATE leases SET expires_at={self.LATER} "
                             "WHERE name=? AND holder=?", (float(ttl_seconds), name, holder))
            return bool(cur.rowcount == 1)

    def release_lease(self, name: str, holder: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE name=? AND holder=?", (name, holder))

    def lease_holder(self, name: str) -> str | None:
        rows = self._query(f"SELECT holder FROM leases WHERE name=? AND expires_at>{self.NOW}",
                           (name,))
        return str(rows[0][0]) if rows else None

    def lease_holders(self, prefix: str) -> dict[str, str]:
        """Every unexpired lease whose name starts with `prefix`: name -> holder."""
        rows = self._query("SELECT name, holder FROM leases WHERE substr(name, 1, ?)=? "
                           f"AND expires_at>{self.NOW}", (len(prefix), prefix))
        return {str(r[0]): str(r[1]) for r in rows}

    # --- assignment at ingest ---------------------------------------------------------------

    def conversations_started_by(self, message_ids: Sequence[int]) -> list[int]:
        """The conversations all of whose messages are among `message_ids` (new ones), by id."""
        ids = [int(i) for i in message_ids]
        among, param = self.id_list("m.id", ids)
        also, _ = self.id_list("o.id", ids)
        rows = self._query(
            f"SELECT DISTINCT m.conversation_id FROM messages m WHERE {among} AND NOT EXISTS ("
            " SELECT 1 FROM messages o WHERE o.conversation_id=m.conversation_id"
            f" AND NOT {also}) ORDER BY 1", (param, param))
        return [int(r[0]) for r in rows]

    def assign_unassigned(self, conversation_ids: Sequence[int],
                          agents: Sequence[str]) -> dict[int, str]:
        """Give each conversation that has no assignee yet to one of `agents`, in turn: the
        agent whose newest conversation is oldest first (ties in the order given). One write
        transaction, and `WHERE assignee IS NULL`: several processes never assign one twice.
        Returns conversation id -> agent for those assigned here."""
        assigned: dict[int, str] = {}
        if not agents:
            return assigned
        with self.transaction(ASSIGN_LOCK) as db:
            last: dict[str, int] = {}
            for agent in agents:
                row = db.execute("SELECT id FROM conversations WHERE assignee=? "
                                 "ORDER BY id DESC LIMIT 1", (agent,)).fetchone()
                last[agent] = int(row[0]) if row is not None else -1   # -1: never assigned
            for conversation_id in conversation_ids:
                agent = min(agents, key=lambda a: (last[a], agents.index(a)))
                cur = db.execute("UPDATE conversations SET assignee=? "
                                 "WHERE id=? AND assignee IS NULL", (agent, conversation_id))
                if cur.rowcount:
                    assigned[conversation_id] = agent
                    last[agent] = max(max(last.values()) + 1, conversation_id)
        return assigned

    # --- automation -----------------------------------------------------------------------

    def record_auto_reply(self, contact_id: int, at: datetime) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO auto_replies(contact_id, at) VALUES (?,?)",
                       (contact_id, self.ts(at)))

    def last_auto_reply(self, contact_id: int) -> datetime | None:
        rows = self._query("SELECT max(at) FROM auto_replies WHERE contact_id=?", (contact_id,))
        return self.ts_out(rows[0][0]) if rows and rows[0][0] else None

    def automation_pending(self, since: datetime) -> list[Message]:
        """Inbound messages since `since` that `run --once` has not decided on yet."""
        rows = self._query(
            f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE direction='in' AND sent_at>=? "
            "AND NOT EXISTS (SELECT 1 FROM automation a WHERE a.message_id=m.id) "
            "ORDER BY sent_at, id", (self.ts(since),))
        return [self._message(r) for r in rows]

    def record_decision(self, message_id: int, decision: str, why: str, *,
                        entry_id: str | None, score: float | None, at: datetime,
                        reply: QueuedReply | None = None) -> int | None:
        """Record what automation decided on a message, and queue its `reply` in the same
        transaction: a crash leaves both or neither, so a rerun never answers it again.
        Returns the reply's outbox id."""
        with self.transaction() as db:
            db.execute("INSERT INTO automation(message_id, decision, why, entry_id, score, at) "
                       "VALUES (?,?,?,?,?,?) ON CONFLICT (message_id) DO UPDATE SET "
                       "decision=excluded.decision, why=excluded.why, "
                       "entry_id=excluded.entry_id, score=excluded.score, at=excluded.at",
                       (message_id, decision, why, entry_id, score, self.ts(at)))
            return self._enqueue(db, reply) if reply is not None else None

    def automation_decisions(self, conversation_id: int) -> list[dict[str, Any]]:
        """The decisions on a conversation's messages; `at` as fixed-width ISO text."""
        rows = self._query(
            "SELECT a.message_id, a.decision, a.why, a.entry_id, a.score, a.at FROM automation a "
            "JOIN messages m ON m.id=a.message_id WHERE m.conversation_id=? ORDER BY a.at, "
            "a.message_id", (conversation_id,))
        return [{"message_id": r[0], "decision": r[1], "why": r[2], "entry_id": r[3],
                 "score": r[4], "at": iso(self.ts_out(r[5]))} for r in rows]

    # --- row mapping ----------------------------------------------------------------------

    def _proposal(self, r: Row) -> MergeProposal:
        return MergeProposal(id=r[0], contact_a=r[1], contact_b=r[2], reason=r[3],
                             message_id=r[4], state=r[5], created_at=self.ts_out(r[6]),
                             resolved_at=r[7] and self.ts_out(r[7]), merged_id=r[8])

    def _outbox_row(self, r: Row) -> OutboxRow:
        t = self.ts_out
        return OutboxRow(
            id=r[0], conversation_id=r[1], account=r[2], payload=self.json_out(r[3]),
            idempotency_key=r[4], state=OutboxState(r[5]), attempts=r[6],
            next_attempt_at=t(r[7]), attempted_at=r[8] and t(r[8]), last_error=r[9],
            provider_id=r[10], created_at=t(r[11]))
