"""The embedded store: one SQLite file in WAL mode.

One connection per Store object, guarded by a lock, so a Textual worker thread and the event loop
can share it; other processes (a second agent's TUI, cron's `run --once`) open their own Store on
the same file, and WAL lets them read while one writes. List queries read only the conversations
table, never a message body.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent_tui.errors import NotFound, StoreError, UsageError
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
    SearchHit,
    StatsMessage,
)
from agent_tui.store.encryption import connect, db_errors
from agent_tui.store.schema import MIGRATIONS
from agent_tui.subjects import normalise_subject as _normalise_subject

SUBJECT_WINDOW = timedelta(days=14)      # mail: same contact + subject within this joins a thread
CHAT_REOPEN_WINDOW = timedelta(days=7)   # chat: a closed conversation younger than this reopens
STUCK_AFTER = timedelta(minutes=10)      # an outbox row in `sending` this long was left by a crash
PREVIEW_CHARS = 120

_CONVERSATION_COLUMNS = (
    "c.id, c.contact_id, c.channel, c.account, c.subject, c.status, c.assignee, c.tags, "
    "c.priority, c.first_inbound_at, c.last_inbound_at, c.last_activity_at, c.due_at, c.unread, "
    "k.display_name, c.contact_address, c.preview, c.enrichment, c.waiting_since")

_MESSAGE_COLUMNS = (
    "id, conversation_id, account, channel, direction, provider_id, sender, sender_name, "
    "recipients, sent_at, subject, text, attachments, auto_flags, delivery_status, defects, "
    "in_reply_to, refs, edited")

# Allowed outbox moves; anything else raises IllegalTransition.
_TRANSITIONS: dict[OutboxState, set[OutboxState]] = {
    OutboxState.QUEUED: {OutboxState.SENDING, OutboxState.FAILED, OutboxState.CANCELLED},
    OutboxState.SENDING: {OutboxState.SENT, OutboxState.QUEUED, OutboxState.FAILED,
                          OutboxState.UNCERTAIN},
    OutboxState.UNCERTAIN: {OutboxState.QUEUED, OutboxState.SENT, OutboxState.FAILED,
                            OutboxState.CANCELLED},
    OutboxState.FAILED: {OutboxState.QUEUED, OutboxState.CANCELLED},
    OutboxState.SENT: set(),
    OutboxState.CANCELLED: set(),
}


def ts(value: datetime) -> str:
    """A fixed-width UTC timestamp that sorts as text."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # isoformat is several times faster than strftime and writes the same text.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_ts(value: str | None) -> datetime | None:
    # fromisoformat reads the "Z" of `ts` (Python 3.11+) and is ~50x faster than strptime,
    # which dominated listing conversations.
    return datetime.fromisoformat(value) if value else None


_from_iso = datetime.fromisoformat   # for hot loops over columns that are never NULL or empty


def _now() -> datetime:
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


def _create_private_file(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)


class SqliteStore:
    """The store on one SQLite file. See the package docstring for the API."""

    def __init__(self, path: str | Path, *, key: str | None = None) -> None:
        """`key`: the resolved `[store] encryption_key` (SQLCipher), None for a plain file."""
        self.path = Path(path).expanduser()
        self._key = key
        try:
            _create_private_file(self.path)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        self._db = connect(self.path, key, check_same_thread=False, isolation_level=None,
                           timeout=10.0)
        self._lock = threading.RLock()
        self._writes = 0
        db = self._db
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA secure_delete=ON")   # erased text leaves no trace in free pages
            db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except db_errors() as exc:
            db.close()
            raise StoreError(f"{self.path}: not a usable agent-tui store: {exc}") from None

    # --- plumbing -------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path}: written by a newer agent-tui (schema {version}, "
                             f"this version knows {len(MIGRATIONS)}); upgrade agent-tui")
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as db:
                for statement in _split_sql(step):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._writes += 1

    def _query(self, sql: str, params: Sequence[Any] = (), *,
               tuples: bool = False) -> list[Any]:
        """Rows of a read; `tuples` skips sqlite3.Row for hot paths that index by position."""
        with self._lock:
            cursor = self._db.cursor()
            if tuples:
                cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reader(self) -> SqliteStore:
        """Another store on the same file with its own connection, for a thread that must not
        wait behind this one's writes (the UI while a sync ingests): WAL readers never block
        and are never blocked. The caller closes it."""
        return SqliteStore(self.path, key=self._key)

    def data_version(self) -> int:
        """Changes whenever anyone (this process or another) committed: cheap to poll."""
        with self._lock:
            other = self._db.execute("PRAGMA data_version").fetchone()[0]
        return int(other) * 1_000_000 + self._writes

    # --- ingest ---------------------------------------------------------------------------

    def get_cursor(self, account: str, key: str) -> Cursor | None:
        rows = self._query("SELECT value FROM cursors WHERE account=? AND key=?", (account, key))
        return json.loads(rows[0]["value"]) if rows else None

    def ingest(self, account: str, messages: Sequence[InboundMessage], *, cursor_key: str,
               cursor: Cursor | None) -> IngestResult:
        """Store messages and move the cursor in one transaction (invariant 1)."""
        result = IngestResult()
        with self.transaction() as db:
            for message in messages:
                self._ingest_one(db, account, message, result)
            if cursor is not None:
                db.execute(
                    "INSERT INTO cursors(account, key, value, updated_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(account, key) DO UPDATE SET value=excluded.value, "
                    "updated_at=excluded.updated_at",
                    (account, cursor_key, json.dumps(cursor, sort_keys=True), ts(_now())))
        return result

    def record_outbound(self, account: str, message: InboundMessage, *,
                        conversation_id: int) -> int | None:
        """Store a reply we just sent in its conversation (no cursor involved)."""
        result = IngestResult()
        with self.transaction() as db:
            self._ingest_one(db, account, message, result, conversation_id=conversation_id)
        return result.new_message_ids[0] if result.new_message_ids else None

    def _ingest_one(self, db: sqlite3.Connection, account: str, m: InboundMessage,
                    result: IngestResult, conversation_id: int | None = None) -> None:
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
        cur = db.execute(
            "INSERT INTO messages(conversation_id, account, channel, direction, provider_id, "
            "sender, sender_name, recipients, sent_at, subject, text, html, attachments, "
            "auto_flags, in_reply_to, refs, delivery_status, defects, content_hash, extra, raw) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (conversation_id, account, str(m.channel), str(m.direction), m.provider_id,
             m.sender, m.sender_name, _json(m.recipients), ts(m.sent_at), m.subject,
             m.text, m.html, _json([_attachment_json(a) for a in m.attachments]),
             _json(_flags_json(m.auto)), m.in_reply_to, _json(m.references),
             m.delivery_status, _json(m.defects), m.content_hash, _json(extra),
             m.raw or None))
        assert cur.lastrowid is not None
        self._touch_conversation(db, conversation_id, m)
        result.new += 1
        result.new_message_ids.append(cur.lastrowid)
        result.conversation_ids.add(conversation_id)

    def _update_known(self, db: sqlite3.Connection, row: sqlite3.Row, m: InboundMessage,
                      result: IngestResult) -> None:
        """A message we have: a delivery status update or an edit, else a plain duplicate."""
        changed = False
        if m.delivery_status and m.delivery_status != row["delivery_status"]:
            db.execute("UPDATE messages SET delivery_status=? WHERE id=?",
                       (m.delivery_status, row["id"]))
            changed = True
        if m.extra.get("edited") and m.text != row["text"]:
            db.execute("UPDATE messages SET text=?, edited=1 WHERE id=?", (m.text, row["id"]))
            changed = True
        if changed:
            result.updated += 1
            result.conversation_ids.add(row["conversation_id"])
        else:
            result.duplicates += 1

    def _contact_for(self, db: sqlite3.Connection, channel: Channel, address: str,
                     name: str) -> int:
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
        cur = db.execute("INSERT INTO contacts(display_name, created_at) VALUES (?,?)",
                         (name, ts(_now())))
        assert cur.lastrowid is not None
        db.execute("INSERT INTO identities(contact_id, kind, address) VALUES (?,?,?)",
                   (cur.lastrowid, kind, address))
        return cur.lastrowid

    def _thread(self, db: sqlite3.Connection, account: str, m: InboundMessage,
                contact_id: int, address: str) -> int:
        if m.channel is Channel.EMAIL:
            found = self._mail_thread(db, account, m, contact_id)
        else:
            found = self._chat_thread(db, account, m, contact_id)
        if found is not None:
            return found
        cur = db.execute(
            "INSERT INTO conversations(contact_id, contact_address, channel, account, subject, "
            "norm_subject, last_activity_at) VALUES (?,?,?,?,?,?,?)",
            (contact_id, address, str(m.channel), account, m.subject,
             _normalise_subject(m.subject) if m.channel is Channel.EMAIL else "",
             ts(m.sent_at)))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _mail_thread(self, db: sqlite3.Connection, account: str, m: InboundMessage,
                     contact_id: int) -> int | None:
        ids = [i for i in [m.in_reply_to, *m.references] if i]
        if ids:
            marks = ",".join("?" * len(ids))
            row = db.execute(
                f"SELECT conversation_id FROM messages WHERE account=? AND provider_id IN "
                f"({marks}) ORDER BY sent_at DESC LIMIT 1", (account, *ids)).fetchone()
            if row is not None:
                # A real reply reopens even a closed conversation.
                return int(row[0])
        subject = _normalise_subject(m.subject)
        if not subject:
            return None
        row = db.execute(
            "SELECT id FROM conversations WHERE contact_id=? AND norm_subject=? AND account=? "
            "AND channel='email' AND status!='closed' AND last_activity_at>=? "
            "ORDER BY last_activity_at DESC LIMIT 1",
            (contact_id, subject, account, ts(m.sent_at - SUBJECT_WINDOW))).fetchone()
        return int(row[0]) if row else None

    def _chat_thread(self, db: sqlite3.Connection, account: str, m: InboundMessage,
                     contact_id: int) -> int | None:
        row = db.execute(
            "SELECT id, status, closed_at FROM conversations WHERE account=? AND channel=? "
            "AND contact_id=? ORDER BY last_activity_at DESC LIMIT 1",
            (account, str(m.channel), contact_id)).fetchone()
        if row is None:
            return None
        if row["status"] != ConversationStatus.CLOSED:
            return int(row["id"])
        closed_at = parse_ts(row["closed_at"])
        if closed_at is not None and m.sent_at - closed_at <= CHAT_REOPEN_WINDOW:
            return int(row["id"])
        return None

    def _touch_conversation(self, db: sqlite3.Connection, conversation_id: int,
                            m: InboundMessage) -> None:
        at = ts(m.sent_at)
        if m.direction is Direction.INBOUND:
            # A new customer message wakes a snoozed, pending or closed conversation.
            db.execute(
                "UPDATE conversations SET "
                "last_activity_at=max(last_activity_at, ?), "
                "first_inbound_at=coalesce(min(first_inbound_at, ?), ?), "
                "last_inbound_at=coalesce(max(last_inbound_at, ?), ?), "
                "waiting_since=coalesce(waiting_since, ?), unread=unread+?, "
                "preview=CASE WHEN last_inbound_at IS NULL OR ?>=last_inbound_at THEN ? "
                "ELSE preview END, "
                "status='open', snoozed_until=NULL, closed_at=NULL WHERE id=?",
                (at, at, at, at, at, at, 0 if m.read else 1, at,
                 _preview(m.text) or m.subject[:PREVIEW_CHARS], conversation_id))
        else:
            db.execute(
                "UPDATE conversations SET last_activity_at=max(last_activity_at, ?), "
                "waiting_since=CASE WHEN waiting_since IS NOT NULL AND waiting_since<=? "
                "THEN NULL ELSE waiting_since END WHERE id=?", (at, at, conversation_id))

    # --- reads ----------------------------------------------------------------------------

    def _filters(self, status: str | None, channel: str | None, assignee: str | None,
                 tag: str | None) -> tuple[str, list[Any]]:
        where, params = [], []
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
            where.append("EXISTS (SELECT 1 FROM json_each(c.tags) WHERE value=?)")
            params.append(tag)
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def list_conversations(self, *, status: str | None = None, channel: str | None = None,
                           assignee: str | None = None, tag: str | None = None,
                           limit: int = 50, offset: int = 0) -> list[Conversation]:
        """Newest activity first. `assignee=""` lists the unassigned ones."""
        where, params = self._filters(status, channel, assignee, tag)
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            f"JOIN contacts k ON k.id=c.contact_id{where} "
            # The tie-break follows the index's implicit rowid order: no sort step.
            "ORDER BY c.last_activity_at DESC, c.id LIMIT ? OFFSET ?",
            (*params, limit, offset), tuples=True)
        return [_conversation(r) for r in rows]

    def count_conversations(self, *, status: str | None = None, channel: str | None = None,
                            assignee: str | None = None, tag: str | None = None) -> int:
        where, params = self._filters(status, channel, assignee, tag)
        return int(self._query(f"SELECT count(*) FROM conversations c{where}", params)[0][0])

    def waiting_conversations(self, *, limit: int = 500) -> list[Conversation]:
        """Open conversations with an unanswered customer message, longest waiting first."""
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            "JOIN contacts k ON k.id=c.contact_id "
            "WHERE c.status='open' AND c.waiting_since IS NOT NULL "
            "ORDER BY c.waiting_since LIMIT ?", (limit,))
        return [_conversation(r) for r in rows]

    def get_conversation(self, conversation_id: int) -> Conversation:
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            "JOIN contacts k ON k.id=c.contact_id WHERE c.id=?", (conversation_id,))
        if not rows:
            raise NotFound(f"no conversation {conversation_id}")
        return _conversation(rows[0])

    def get_messages(self, conversation_id: int) -> list[Message]:
        rows = self._query(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id=? "
                           "ORDER BY sent_at, id", (conversation_id,), tuples=True)
        return [_message(r) for r in rows]

    def get_message(self, message_id: int) -> Message:
        rows = self._query(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id=?", (message_id,))
        if not rows:
            raise NotFound(f"no message {message_id}")
        return _message(rows[0])

    def get_raw(self, message_id: int) -> bytes | None:
        rows = self._query("SELECT raw FROM messages WHERE id=?", (message_id,))
        return bytes(rows[0]["raw"]) if rows and rows[0]["raw"] is not None else None

    def get_contact(self, contact_id: int) -> Contact:
        rows = self._query("SELECT id, display_name FROM contacts WHERE id=?", (contact_id,))
        if not rows:
            raise NotFound(f"no contact {contact_id}")
        identities = [Identity(r["kind"], r["address"]) for r in self._query(
            "SELECT kind, address FROM identities WHERE contact_id=? ORDER BY id", (contact_id,))]
        return Contact(rows[0]["id"], rows[0]["display_name"], identities)

    def contact_conversations(self, contact_id: int) -> list[Conversation]:
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            "JOIN contacts k ON k.id=c.contact_id WHERE c.contact_id=? "
            "ORDER BY c.last_activity_at DESC", (contact_id,))
        return [_conversation(r) for r in rows]

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search, every word as a prefix (German compounds: `liefer` finds
        `Lieferzeit`); any user text is safe, since every word is quoted."""
        words = [w.replace('"', '""') for w in query.split()]
        if not words:
            return []
        match = " ".join(f'"{w}"*' for w in words)
        rows = self._query(
            "SELECT m.id, m.conversation_id, m.sent_at, m.sender, m.subject, "
            "snippet(messages_fts, 3, '«', '»', '…', 12) "
            "FROM messages_fts JOIN messages m ON m.id=messages_fts.rowid "
            "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?", (match, limit), tuples=True)
        return [SearchHit(r[0], r[1], _from_iso(r[2]), r[3], r[4], r[5]) for r in rows]

    def iter_export(self, contact_id: int | None = None
                    ) -> Iterator[tuple[Message, Conversation, Contact]]:
        """Every message with its conversation and contact, oldest first."""
        where, params = ("WHERE c.contact_id=?", (contact_id,)) if contact_id else ("", ())
        ids = self._query(f"SELECT c.id FROM conversations c {where} ORDER BY c.id", params)
        contacts: dict[int, Contact] = {}
        for row in ids:
            conversation = self.get_conversation(row["id"])
            if conversation.contact_id not in contacts:
                contacts[conversation.contact_id] = self.get_contact(conversation.contact_id)
            for message in self.get_messages(conversation.id):
                yield message, conversation, contacts[conversation.contact_id]

    def get_notes(self, conversation_id: int) -> list[Note]:
        return [Note(r["id"], r["conversation_id"], r["author"], r["text"],
                     parse_ts(r["created_at"]) or _now())
                for r in self._query("SELECT * FROM notes WHERE conversation_id=? ORDER BY id",
                                     (conversation_id,))]

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
        closed_at = ts(_now()) if status is ConversationStatus.CLOSED else None
        self._update_conversation(
            conversation_id, "status=?, snoozed_until=?, closed_at=?",
            (str(status), ts(snoozed_until) if snoozed_until else None, closed_at))

    def wake_snoozed(self, now: datetime | None = None) -> int:
        """Snoozed conversations whose time has come are open again."""
        with self.transaction() as db:
            cur = db.execute("UPDATE conversations SET status='open', snoozed_until=NULL "
                             "WHERE status='snoozed' AND snoozed_until<=?", (ts(now or _now()),))
            return cur.rowcount

    def assign(self, conversation_id: int, agent: str | None) -> None:
        self._update_conversation(conversation_id, "assignee=?", (agent or None,))

    def set_priority(self, conversation_id: int, priority: Priority | str) -> None:
        self._update_conversation(conversation_id, "priority=?", (str(Priority(priority)),))

    def add_tag(self, conversation_id: int, tag: str) -> None:
        tags = self.get_conversation(conversation_id).tags
        if tag not in tags:
            self._update_conversation(conversation_id, "tags=?", (json.dumps([*tags, tag]),))

    def remove_tag(self, conversation_id: int, tag: str) -> None:
        tags = [t for t in self.get_conversation(conversation_id).tags if t != tag]
        self._update_conversation(conversation_id, "tags=?", (json.dumps(tags),))

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

    def set_enrichment(self, conversation_id: int, fields: dict[str, str]) -> None:
        merged = {**self.get_conversation(conversation_id).enrichment, **fields}
        self._update_conversation(conversation_id, "enrichment=?", (json.dumps(merged),))

    def set_due(self, conversation_id: int, due_at: datetime | None) -> None:
        self._update_conversation(conversation_id, "due_at=?", (ts(due_at) if due_at else None,))

    def add_note(self, conversation_id: int, author: str, text: str) -> Note:
        now = _now()
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM conversations WHERE id=?",
                              (conversation_id,)).fetchone():
                raise NotFound(f"no conversation {conversation_id}")
            cur = db.execute("INSERT INTO notes(conversation_id, author, text, created_at) "
                             "VALUES (?,?,?,?)", (conversation_id, author, text, ts(now)))
        assert cur.lastrowid is not None
        return Note(cur.lastrowid, conversation_id, author, text, now)

    def delete_message(self, message_id: int) -> None:
        """Delete a message; its provider id is remembered (hashed) so no sync brings it back."""
        with self.transaction() as db:
            row = db.execute("SELECT account, provider_id FROM messages WHERE id=?",
                             (message_id,)).fetchone()
            if row is None:
                raise NotFound(f"no message {message_id}")
            db.execute("INSERT OR IGNORE INTO tombstones(key_hash, created_at) VALUES (?,?)",
                       (tombstone_key(row["account"], row["provider_id"]), ts(_now())))
            db.execute("DELETE FROM messages WHERE id=?", (message_id,))

    def inbound_hour_counts(self, since: datetime) -> dict[tuple[str, datetime], int]:
        """Customer messages per channel and UTC hour since `since` (for the early warning)."""
        rows = self._query(
            "SELECT channel, substr(sent_at, 1, 13) AS hour, count(*) FROM messages "
            "WHERE direction='in' AND sent_at>=? GROUP BY channel, hour", (ts(since),))
        return {(r[0], datetime.strptime(r[1], "%Y-%m-%dT%H").replace(tzinfo=UTC)): int(r[2])
                for r in rows}

    # --- contacts and data protection -----------------------------------------------------

    def find_contact(self, address: str) -> int | None:
        """The contact holding this address (email, E.164 phone or Telegram id), if any."""
        rows = self._query("SELECT contact_id FROM identities WHERE address=? OR address=?",
                           (address.strip(), address.strip().lower()))
        return int(rows[0][0]) if rows else None

    def merge_contacts(self, keep: int, other: int) -> None:
        """One customer: `other`'s identities and conversations move to `keep` (explicit only)."""
        if keep == other:
            raise UsageError("cannot merge a contact with itself")
        with self.transaction() as db:
            for contact_id in (keep, other):
                if not db.execute("SELECT 1 FROM contacts WHERE id=?", (contact_id,)).fetchone():
                    raise NotFound(f"no contact {contact_id}")
            db.execute("UPDATE identities SET contact_id=? WHERE contact_id=?", (keep, other))
            db.execute("UPDATE conversations SET contact_id=? WHERE contact_id=?", (keep, other))
            db.execute("UPDATE auto_replies SET contact_id=? WHERE contact_id=?", (keep, other))
            self._move_proposals(db, keep, other)
            db.execute("UPDATE OR IGNORE contact_hints SET contact_id=? WHERE contact_id=?",
                       (keep, other))
            db.execute("DELETE FROM contact_hints WHERE contact_id=?", (other,))
            db.execute("UPDATE contacts SET display_name=(SELECT display_name FROM contacts "
                       "WHERE id=?) WHERE id=? AND display_name=''", (other, keep))
            db.execute("DELETE FROM contacts WHERE id=?", (other,))

    def split_contact(self, contact_id: int, kind: str, address: str) -> int:
        """Move one identity, and the conversations held through it, to a new contact."""
        with self.transaction() as db:
            row = db.execute("SELECT id FROM identities WHERE contact_id=? AND kind=? AND "
                             "address=?", (contact_id, kind, address)).fetchone()
            if row is None:
                raise NotFound(f"contact {contact_id} has no {kind} identity {address!r}")
            if db.execute("SELECT count(*) FROM identities WHERE contact_id=?",
                          (contact_id,)).fetchone()[0] < 2:
                raise UsageError(f"{address} is the only identity of contact {contact_id}")
            cur = db.execute("INSERT INTO contacts(display_name, created_at) VALUES ('', ?)",
                             (ts(_now()),))
            new_id = cur.lastrowid
            assert new_id is not None
            db.execute("UPDATE identities SET contact_id=? WHERE id=?", (new_id, row[0]))
            db.execute("UPDATE conversations SET contact_id=? WHERE contact_id=? AND "
                       "contact_address=?", (new_id, contact_id, address))
            # A person split them: never propose this pair again.
            low, high = sorted((contact_id, new_id))
            db.execute("INSERT INTO merge_proposals(contact_a, contact_b, reason, state, "
                       "created_at, resolved_at) VALUES (?,?,?,'rejected',?,?)",
                       (low, high, f"split by a person ({kind} {address})", ts(_now()),
                        ts(_now())))
            return new_id

    def _delete_conversations(self, db: sqlite3.Connection, where: str,
                              params: Sequence[Any]) -> tuple[int, int]:
        """Delete conversations and their messages; their provider ids become tombstones."""
        ids = [r[0] for r in db.execute(f"SELECT id FROM conversations WHERE {where}", params)]
        messages = 0
        for conversation_id in ids:
            for account, provider_id in db.execute(
                    "SELECT account, provider_id FROM messages WHERE conversation_id=?",
                    (conversation_id,)).fetchall():
                db.execute("INSERT OR IGNORE INTO tombstones(key_hash, created_at) "
                           "VALUES (?,?)", (tombstone_key(account, provider_id), ts(_now())))
                messages += 1
            db.execute("DELETE FROM messages WHERE conversation_id=?", (conversation_id,))
            db.execute("DELETE FROM notes WHERE conversation_id=?", (conversation_id,))
            db.execute("DELETE FROM outbox WHERE conversation_id=?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id=?", (conversation_id,))
        return len(ids), messages

    def _scrub(self) -> None:
        """Leave no erased text behind: merge the FTS segments, rewrite the file, drop the WAL."""
        with self._lock:
            self._db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def erase_contact(self, contact_id: int) -> dict[str, int]:
        """Remove a person entirely (Art. 17); later syncs skip their messages (hashes only)."""
        self.get_contact(contact_id)
        with self.transaction() as db:
            conversations, messages = self._delete_conversations(db, "contact_id=?",
                                                                 (contact_id,))
            # Hints other contacts' messages gave about this person's addresses go too.
            db.execute("DELETE FROM contact_hints WHERE contact_id=? OR EXISTS (SELECT 1 FROM "
                       "identities i WHERE i.contact_id=? AND i.kind=contact_hints.kind AND "
                       "i.address=contact_hints.address)", (contact_id, contact_id))
            db.execute("DELETE FROM merge_proposals WHERE contact_a=? OR contact_b=?",
                       (contact_id, contact_id))
            identities = db.execute("DELETE FROM identities WHERE contact_id=?",
                                    (contact_id,)).rowcount
            db.execute("DELETE FROM auto_replies WHERE contact_id=?", (contact_id,))
            db.execute("DELETE FROM contacts WHERE id=?", (contact_id,))
        self._scrub()
        return {"conversations": conversations, "messages": messages, "identities": identities}

    def purge_closed(self, before: datetime) -> int:
        """Retention: delete conversations closed before `before`; returns how many."""
        with self.transaction() as db:
            count, _ = self._delete_conversations(
                db, "status='closed' AND closed_at IS NOT NULL AND closed_at<?", (ts(before),))
        if count:
            self._scrub()
        return count

    # --- proposed merges (never silent) ----------------------------------------------------

    def identity_owner(self, kind: str, address: str) -> int | None:
        """The contact holding exactly this identity (address already normalised)."""
        rows = self._query("SELECT contact_id FROM identities WHERE kind=? AND address=?",
                           (kind, address))
        return int(rows[0][0]) if rows else None

    def get_message_extra(self, message_id: int) -> dict[str, Any]:
        """What the connector kept beside the text (Telegram shared_phone, mail reply_to...)."""
        rows = self._query("SELECT extra FROM messages WHERE id=?", (message_id,))
        if not rows:
            raise NotFound(f"no message {message_id}")
        value = json.loads(rows[0][0] or "{}")
        return value if isinstance(value, dict) else {}

    def propose_merge(self, contact_a: int, contact_b: int, reason: str, *,
                      message_id: int | None = None) -> int | None:
        """Propose that two contacts are one customer; returns the new proposal's id, or None
        when the pair was proposed before (open, accepted or rejected), is one contact, or
        either contact no longer exists. Never merges anything."""
        if contact_a == contact_b:
            return None
        low, high = sorted((contact_a, contact_b))
        with self.transaction() as db:
            alive = db.execute("SELECT count(*) FROM contacts WHERE id IN (?,?)",
                               (low, high)).fetchone()[0]
            if alive != 2:
                return None
            cur = db.execute(
                "INSERT OR IGNORE INTO merge_proposals(contact_a, contact_b, reason, message_id, "
                "state, created_at) VALUES (?,?,?,?,'open',?)",
                (low, high, reason, message_id, ts(_now())))
            return cur.lastrowid if cur.rowcount == 1 else None

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
        return [_proposal(r) for r in self._query(
            f"SELECT * FROM merge_proposals{clause} ORDER BY created_at, id", params)]

    def reject_merge(self, contact_a: int, contact_b: int, reason: str = "") -> None:
        """A person says these are two customers: the pair is never proposed again."""
        if contact_a == contact_b:
            raise UsageError("a contact cannot be rejected as its own duplicate")
        low, high = sorted((contact_a, contact_b))
        now = ts(_now())
        with self.transaction() as db:
            for contact_id in (contact_a, contact_b):
                if not db.execute("SELECT 1 FROM contacts WHERE id=?", (contact_id,)).fetchone():
                    raise NotFound(f"no contact {contact_id}")
            cur = db.execute("UPDATE merge_proposals SET state='rejected', resolved_at=? "
                             "WHERE contact_a=? AND contact_b=?", (now, low, high))
            if cur.rowcount == 0:
                db.execute("INSERT INTO merge_proposals(contact_a, contact_b, reason, state, "
                           "created_at, resolved_at) VALUES (?,?,?,'rejected',?,?)",
                           (low, high, reason or "rejected by a person", now, now))

    def _move_proposals(self, db: sqlite3.Connection, keep: int, other: int) -> None:
        """A merge: `other`'s proposals move to `keep`; theirs together becomes accepted. Where
        `keep` already has a proposal with the same third contact, a rejection wins."""
        now = ts(_now())
        db.execute("UPDATE merge_proposals SET contact_a=? WHERE contact_a=? AND contact_b IS NULL",
                   (keep, other))
        rows = db.execute("SELECT id, contact_a, contact_b, state FROM merge_proposals "
                          "WHERE contact_b IS NOT NULL AND (contact_a=? OR contact_b=?)",
                          (other, other)).fetchall()
        for row in rows:
            third = row["contact_b"] if row["contact_a"] == other else row["contact_a"]
            if third == keep:
                # A person merged them (even after rejecting it once): accepted.
                db.execute("UPDATE merge_proposals SET contact_a=?, contact_b=NULL, merged_id=?, "
                           "state='accepted', resolved_at=? WHERE id=?",
                           (keep, other, now, row["id"]))
                continue
            low, high = sorted((keep, third))
            existing = db.execute("SELECT id, state FROM merge_proposals WHERE contact_a=? AND "
                                  "contact_b=?", (low, high)).fetchone()
            if existing is None:
                db.execute("UPDATE merge_proposals SET contact_a=?, contact_b=? WHERE id=?",
                           (low, high, row["id"]))
                continue
            if row["state"] == "rejected" and existing["state"] == "open":
                db.execute("UPDATE merge_proposals SET state='rejected', resolved_at=? "
                           "WHERE id=?", (now, existing["id"]))
            db.execute("DELETE FROM merge_proposals WHERE id=?", (row["id"],))

    def add_contact_hint(self, contact_id: int, kind: str, address: str, reason: str, *,
                         message_id: int | None = None) -> bool:
        """Remember an address seen in this contact's message; False when already known."""
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM contacts WHERE id=?", (contact_id,)).fetchone():
                return False
            cur = db.execute(
                "INSERT OR IGNORE INTO contact_hints(contact_id, kind, address, reason, "
                "message_id, created_at) VALUES (?,?,?,?,?,?)",
                (contact_id, kind, address, reason, message_id, ts(_now())))
            return cur.rowcount == 1

    def contact_hints(self, kind: str, address: str) -> list[ContactHint]:
        """Contacts whose messages named this address, oldest first."""
        return [ContactHint(r["contact_id"], r["kind"], r["address"], r["reason"],
                            r["message_id"])
                for r in self._query("SELECT * FROM contact_hints WHERE kind=? AND address=? "
                                     "ORDER BY id", (kind, address))]

    def automation_decisions(self, conversation_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query(
            "SELECT a.message_id, a.decision, a.why, a.entry_id, a.score, a.at FROM automation a "
            "JOIN messages m ON m.id=a.message_id WHERE m.conversation_id=? ORDER BY a.at",
            (conversation_id,))]

    # --- outbox ---------------------------------------------------------------------------

    def outbox_enqueue(self, conversation_id: int, account: str, payload: dict[str, Any],
                       idempotency_key: str) -> int:
        """Queue a reply; enqueuing the same key twice returns the first row's id."""
        now = ts(_now())
        with self.transaction() as db:
            row = db.execute("SELECT id FROM outbox WHERE idempotency_key=?",
                             (idempotency_key,)).fetchone()
            if row is not None:
                return int(row[0])
            cur = db.execute(
                "INSERT INTO outbox(conversation_id, account, payload, idempotency_key, state, "
                "next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,'queued',?,?,?)",
                (conversation_id, account, json.dumps(payload), idempotency_key, now, now, now))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def outbox_claim_next(self, now: datetime, *, accounts: set[str] | None = None,
                          holder: str | None = None) -> OutboxRow | None:
        """Atomically move the next due row from queued to sending (attempts + 1)."""
        holder = holder or f"{os.uname().nodename}:{os.getpid()}"
        extra, params = "", []
        if accounts is not None:
            if not accounts:
                return None
            extra = f" AND account IN ({','.join('?' * len(accounts))})"
            params = sorted(accounts)
        with self.transaction() as db:
            row = db.execute(
                f"SELECT id FROM outbox WHERE state='queued' AND next_attempt_at<=?{extra} "
                "ORDER BY next_attempt_at, id LIMIT 1", (ts(now), *params)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE outbox SET state='sending', attempts=attempts+1, attempted_at=?, "
                       "claimed_by=?, updated_at=? WHERE id=?",
                       (ts(now), holder, ts(now), row[0]))
            return _outbox_row(db.execute("SELECT * FROM outbox WHERE id=?",
                                          (row[0],)).fetchone())

    def _outbox_move(self, outbox_id: int, to: OutboxState, sql: str = "",
                     params: Sequence[Any] = ()) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT state FROM outbox WHERE id=?", (outbox_id,)).fetchone()
            if row is None:
                raise NotFound(f"no outbox row {outbox_id}")
            current = OutboxState(row[0])
            if to not in _TRANSITIONS[current]:
                raise IllegalTransition(f"outbox row {outbox_id}: cannot go from {current} "
                                        f"to {to}")
            db.execute(f"UPDATE outbox SET state=?, updated_at=?{sql} WHERE id=?",
                       (str(to), ts(_now()), *params, outbox_id))

    def outbox_mark_sent(self, outbox_id: int, provider_id: str) -> None:
        self._outbox_move(outbox_id, OutboxState.SENT, ", provider_id=?, last_error=''",
                          (provider_id,))

    def outbox_retry_later(self, outbox_id: int, error: str, next_attempt_at: datetime) -> None:
        self._outbox_move(outbox_id, OutboxState.QUEUED, ", last_error=?, next_attempt_at=?",
                          (error, ts(next_attempt_at)))

    def outbox_mark_failed(self, outbox_id: int, error: str) -> None:
        self._outbox_move(outbox_id, OutboxState.FAILED, ", last_error=?", (error,))

    def outbox_mark_uncertain(self, outbox_id: int, error: str) -> None:
        self._outbox_move(outbox_id, OutboxState.UNCERTAIN, ", last_error=?", (error,))

    def outbox_cancel(self, outbox_id: int, reason: str) -> None:
        self._outbox_move(outbox_id, OutboxState.CANCELLED, ", last_error=?", (reason,))

    def outbox_requeue(self, outbox_id: int) -> None:
        """A person decided: send an uncertain or failed reply again."""
        self._outbox_move(outbox_id, OutboxState.QUEUED, ", next_attempt_at=?", (ts(_now()),))

    def outbox_stuck_sending(self, now: datetime | None = None) -> list[OutboxRow]:
        """Rows left in `sending` by a process that died (this host) or long ago (any host)."""
        now = now or _now()
        me = os.uname().nodename
        stuck = []
        for row in self._query("SELECT * FROM outbox WHERE state='sending' ORDER BY id"):
            host, _, pid = str(row["claimed_by"]).rpartition(":")
            attempted = parse_ts(row["attempted_at"]) or now
            dead = host == me and pid.isdigit() and not _pid_alive(int(pid))
            if dead or now - attempted > STUCK_AFTER:
                stuck.append(_outbox_row(row))
        return stuck

    def stats_messages(self, since: datetime) -> list[StatsMessage]:
        """Every message of the conversations active since `since`, in order, each reply with
        how it was made (from its outbox row)."""
        rows = self._query(
            "SELECT m.conversation_id, m.channel, m.direction, m.sent_at, "
            "json_extract(o.payload, '$.automatic'), json_extract(o.payload, '$.entry_id'), "
            "json_extract(o.payload, '$.suggestion_edited'), "
            "json_extract(o.payload, '$.suggestions_shown') "
            "FROM messages m LEFT JOIN outbox o ON m.direction='out' AND json_valid(m.extra) "
            "AND o.id=json_extract(m.extra, '$.outbox_id') "
            "WHERE m.conversation_id IN (SELECT conversation_id FROM messages WHERE sent_at>=?) "
            "ORDER BY m.conversation_id, m.sent_at, m.id", (ts(since),), tuples=True)
        return [StatsMessage(r[0], r[1], r[2], _from_iso(r[3]), bool(r[4]), r[5] or None,
                             bool(r[6]), bool(r[7])) for r in rows]

    def closed_since(self, since: datetime) -> list[ClosedConversation]:
        rows = self._query(
            "SELECT channel, first_inbound_at, closed_at FROM conversations WHERE "
            "status='closed' AND closed_at>=? AND first_inbound_at IS NOT NULL",
            (ts(since),), tuples=True)
        return [ClosedConversation(r[0], _from_iso(r[1]), _from_iso(r[2])) for r in rows]

    def outbox_get(self, outbox_id: int) -> OutboxRow:
        rows = self._query("SELECT * FROM outbox WHERE id=?", (outbox_id,))
        if not rows:
            raise NotFound(f"no outbox row {outbox_id}")
        return _outbox_row(rows[0])

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
        return [_outbox_row(r) for r in self._query(f"SELECT * FROM outbox{clause} ORDER BY id",
                                                    params)]

    def outbox_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._query(
            "SELECT state, count(*) FROM outbox GROUP BY state")}

    # --- leases ---------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        now = _now()
        with self.transaction() as db:
            row = db.execute("SELECT holder, expires_at FROM leases WHERE name=?",
                             (name,)).fetchone()
            if row is not None and row["holder"] != holder and \
                    (parse_ts(row["expires_at"]) or now) > now:
                return False
            db.execute("INSERT INTO leases(name, holder, expires_at) VALUES (?,?,?) "
                       "ON CONFLICT(name) DO UPDATE SET holder=excluded.holder, "
                       "expires_at=excluded.expires_at",
                       (name, holder, ts(now + timedelta(seconds=ttl_seconds))))
            return True

    def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        with self.transaction() as db:
            cur = db.execute("UPDATE leases SET expires_at=? WHERE name=? AND holder=?",
                             (ts(_now() + timedelta(seconds=ttl_seconds)), name, holder))
            return cur.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE name=? AND holder=?", (name, holder))

    def lease_holder(self, name: str) -> str | None:
        rows = self._query("SELECT holder, expires_at FROM leases WHERE name=?", (name,))
        if not rows or (parse_ts(rows[0]["expires_at"]) or _now()) <= _now():
            return None
        return str(rows[0]["holder"])

    def lease_holders(self, prefix: str) -> dict[str, str]:
        """Every unexpired lease whose name starts with `prefix`: name -> holder."""
        now = _now()
        rows = self._query("SELECT name, holder, expires_at FROM leases "
                           "WHERE substr(name, 1, ?)=?", (len(prefix), prefix))
        return {str(r["name"]): str(r["holder"]) for r in rows
                if (parse_ts(r["expires_at"]) or now) > now}

    # --- assignment at ingest ---------------------------------------------------------------

    def conversations_started_by(self, message_ids: Sequence[int]) -> list[int]:
        """The conversations all of whose messages are among `message_ids` (new ones), by id."""
        ids = json.dumps([int(i) for i in message_ids])
        rows = self._query(
            "SELECT DISTINCT m.conversation_id FROM messages m "
            "WHERE m.id IN (SELECT value FROM json_each(?)) AND NOT EXISTS ("
            " SELECT 1 FROM messages o WHERE o.conversation_id=m.conversation_id"
            " AND o.id NOT IN (SELECT value FROM json_each(?))) ORDER BY 1", (ids, ids),
            tuples=True)
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
        with self.transaction() as db:
            last = {agent: _newest_of(db.execute(
                "SELECT id FROM conversations WHERE assignee=? ORDER BY id DESC LIMIT 1",
                (agent,)).fetchone()) for agent in agents}
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
                       (contact_id, ts(at)))

    def last_auto_reply(self, contact_id: int) -> datetime | None:
        rows = self._query("SELECT max(at) FROM auto_replies WHERE contact_id=?", (contact_id,))
        return parse_ts(rows[0][0]) if rows else None

    def automation_pending(self, since: datetime) -> list[Message]:
        """Inbound messages since `since` that `run --once` has not decided on yet."""
        rows = self._query(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE direction='in' AND sent_at>=? "
            "AND NOT EXISTS (SELECT 1 FROM automation a WHERE a.message_id=m.id) "
            "ORDER BY sent_at, id", (ts(since),))
        return [_message(r) for r in rows]

    def record_decision(self, message_id: int, decision: str, why: str, *,
                        entry_id: str | None, score: float | None, at: datetime) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO automation(message_id, decision, why, entry_id, "
                       "score, at) VALUES (?,?,?,?,?,?)",
                       (message_id, decision, why, entry_id, score, ts(at)))


# --- row mapping ----------------------------------------------------------------------------


def _split_sql(script: str) -> list[str]:
    """Statements of a migration; trigger bodies keep their inner semicolons."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def _json(value: list[Any] | dict[str, Any]) -> str:
    """JSON text of a column; most lists and dicts are empty, and json.dumps is not free."""
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value, default=str)


def _newest_of(row: Sequence[Any] | None) -> int:
    """The id in a `SELECT id ... LIMIT 1` row; -1 when there is none (never assigned)."""
    return int(row[0]) if row is not None else -1


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


# Listing maps every row in Python, so the hot path avoids Enum(value) calls and json for the
# common empty values: this keeps list_conversations near the cost of the bare query.
_CHANNELS = {str(c): c for c in Channel}
_STATUSES = {str(s): s for s in ConversationStatus}
_PRIORITIES = {str(p): p for p in Priority}


def _conversation(r: Sequence[Any]) -> Conversation:
    (id_, contact_id, channel, account, subject, status, assignee, tags, priority, first_in,
     last_in, last_activity, due, unread, name, address, preview, enrichment, waiting) = r
    return Conversation(
        id_, contact_id, _CHANNELS[channel], account, subject, _STATUSES[status], assignee,
        [] if tags == "[]" else json.loads(tags), _PRIORITIES[priority],
        first_in and _from_iso(first_in), last_in and _from_iso(last_in),
        last_activity and _from_iso(last_activity), due and _from_iso(due), unread, name,
        address, preview, {} if enrichment == "{}" else json.loads(enrichment),
        waiting and _from_iso(waiting))


# Opening a conversation maps every message, so the same shortcuts as for listing apply;
# AutoFlags is frozen, so one shared instance serves every message from a person.
_DIRECTIONS = {str(d): d for d in Direction}
_NO_AUTO_FLAGS = AutoFlags()
_NO_AUTO_FLAGS_JSON = json.dumps(_flags_json(_NO_AUTO_FLAGS))


def _message(r: Sequence[Any]) -> Message:
    """A message from a row of _MESSAGE_COLUMNS (a tuple or sqlite3.Row)."""
    (id_, conversation_id, account, channel, direction, provider_id, sender, sender_name,
     recipients, sent_at, subject, text, attachments, auto_flags, delivery_status, defects,
     in_reply_to, refs, edited) = r
    return Message(
        id_, conversation_id, account, _CHANNELS[channel], _DIRECTIONS[direction], provider_id,
        sender, sender_name, json.loads(recipients), _from_iso(sent_at), subject, text,
        [] if attachments == "[]" else [AttachmentInfo(**a) for a in json.loads(attachments)],
        _NO_AUTO_FLAGS if auto_flags == _NO_AUTO_FLAGS_JSON
        else AutoFlags(**json.loads(auto_flags)),
        delivery_status, [] if defects == "[]" else json.loads(defects), in_reply_to,
        [] if refs == "[]" else json.loads(refs), bool(edited))


def _proposal(r: sqlite3.Row) -> MergeProposal:
    return MergeProposal(
        id=r["id"], contact_a=r["contact_a"], contact_b=r["contact_b"], reason=r["reason"],
        message_id=r["message_id"], state=r["state"],
        created_at=parse_ts(r["created_at"]) or _now(), resolved_at=parse_ts(r["resolved_at"]),
        merged_id=r["merged_id"])


def _outbox_row(r: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        id=r["id"], conversation_id=r["conversation_id"], account=r["account"],
        payload=json.loads(r["payload"]), idempotency_key=r["idempotency_key"],
        state=OutboxState(r["state"]), attempts=r["attempts"],
        next_attempt_at=parse_ts(r["next_attempt_at"]) or _now(),
        attempted_at=parse_ts(r["attempted_at"]), last_error=r["last_error"],
        provider_id=r["provider_id"], created_at=parse_ts(r["created_at"]) or _now())
