"""The team store: PostgreSQL through psycopg 3, with the SQLite store's schema and behaviour.

`[store] path = "postgresql://user@host/db"` selects it. Passwords belong in ~/.pgpass or
$PGPASSWORD (libpq reads both), not in the config file (invariant 6); errors name host and
database, never the password.

One connection per store object, guarded by a lock (as the SQLite store), in autocommit mode:
reads see the latest commit, writes run in explicit transactions. `reader()` opens a second
connection for a thread that must not wait behind this one's writes (MVCC readers never block).

How it keeps the SQLite store's promises with several writers on several hosts:
- ingest and record_outbound (and the other writes that create, move or delete contacts and
  conversations) take one transaction-scoped advisory lock, so threading and contact unification
  see what the previous writer committed, exactly as SQLite's single writer does; the cursor
  moves in the same transaction as the messages (invariant 1).
- outbox_claim_next claims with `SELECT ... FOR UPDATE SKIP LOCKED`: two senders never claim the
  same row and never wait for each other; state moves lock their row first.
- leases are rows with an expiry, taken by one INSERT ... ON CONFLICT DO UPDATE that succeeds
  only when the lease is free, expired or already ours, timed by the database server's clock (the
  one clock every host shares).
- live updates: triggers NOTIFY `agent_tui_changes` (agent_tui.store.pg_schema); `data_version()`
  drains the notifications a dedicated LISTEN connection received, without reading any table,
  so polling it every half second costs one non-blocking socket read. `wait_for_change(timeout)`
  blocks until one arrives.
- erase and retention leave no trace in the tables: rows deleted, provider ids kept only as
  hashed tombstones, then VACUUM FULL rewrites the tables that held the person's text (as SQLite's
  VACUUM does). PostgreSQL's WAL and any backups are the operator's to expire.
- search: tsvector/GIN with the 'simple' configuration over unaccent-folded text (see pg_schema).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

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
from agent_tui.store.pg_schema import (
    FOLD_PLAIN,
    FOLD_UNACCENT,
    NOTIFY_CHANNEL,
    PG_MIGRATIONS,
)
from agent_tui.store.sqlite import (
    _TRANSITIONS,
    CHAT_REOPEN_WINDOW,
    PREVIEW_CHARS,
    STUCK_AFTER,
    SUBJECT_WINDOW,
    _attachment_json,
    _flags_json,
    _pid_alive,
    _preview,
    identity_kind,
    normalise_address,
    tombstone_key,
)
from agent_tui.subjects import normalise_subject as _normalise_subject

log = logging.getLogger(__name__)

# Advisory lock keys (arbitrary 64-bit numbers, fixed forever).
_WRITE_LOCK = 0x6167_656E_7474_7569        # ingest, contacts, erase: one writer at a time
_MIGRATE_LOCK = 0x6167_656E_746D_6967      # schema steps: one process at a time
_ASSIGN_LOCK = 0x6167_656E_7461_7367       # assignment at ingest: one rotation at a time

# Tables that may hold a person's text; rewritten after an erase or a purge.
SCRUB_WAIT_SECONDS = 30.0
_SCRUB_TABLES = ("messages", "conversations", "contacts", "identities", "notes", "outbox",
                 "merge_proposals", "contact_hints", "automation")

_CONVERSATION_COLUMNS = (
    "c.id, c.contact_id, c.channel, c.account, c.subject, c.status, c.assignee, c.tags, "
    "c.priority, c.first_inbound_at, c.last_inbound_at, c.last_activity_at, c.due_at, c.unread, "
    "k.display_name, c.contact_address, c.preview, c.enrichment, c.waiting_since")

_MESSAGE_COLUMNS = (
    "id, conversation_id, account, channel, direction, provider_id, sender, sender_name, "
    "recipients, sent_at, subject, text, attachments, auto_flags, delivery_status, defects, "
    "in_reply_to, refs, edited")

_WORD = re.compile(r"\w+")
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; outside text may (it is data, invariant 3)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _dumps(value: Any) -> str:
    text = json.dumps(value, default=str)
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def describe_url(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, for messages (never the password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable URL)"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{host}{port}/{info.get('dbname') or ''}"


class PostgresStore:
    """The store on a PostgreSQL database. See the module docstring; API as SqliteStore."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.where = describe_url(url)
        self._lock = threading.RLock()
        self._writes = 0
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        self._notifications = 0
        self._changed: set[str] = set()
        self._db = self._connect()
        self.search_folding = "lower"
        if migrate:
            try:
                self._migrate()
            except psycopg.Error as exc:
                self._db.close()
                raise StoreError(f"{self.where}: not a usable agent-tui store: "
                                 f"{_one_line(exc)}") from None
        self.search_folding = self._folding()

    # --- plumbing -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                   application_name="agent-tui")
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot open the store: {_one_line(exc)}") from None
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    def _migrate(self) -> None:
        from agent_tui.store.schema import MIGRATIONS

        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            self._db.execute("CREATE TABLE IF NOT EXISTS agent_tui_schema ("
                             "version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM agent_tui_schema").fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                self._db.execute("INSERT INTO agent_tui_schema(version) VALUES (0)")
            if version > len(PG_MIGRATIONS):
                raise StoreError(f"{self.where}: written by a newer agent-tui (schema {version}, "
                                 f"this version knows {len(PG_MIGRATIONS)}); upgrade agent-tui")
            assert len(PG_MIGRATIONS) == len(MIGRATIONS), "pg_schema lags behind schema.py"
            for number, step in enumerate(PG_MIGRATIONS[version:], start=version + 1):
                if number == 1:
                    step = step.replace("{fold}", self._fold_body())
                self._db.execute(step.encode())
                self._db.execute("UPDATE agent_tui_schema SET version=%s", (number,))

    def _fold_body(self) -> str:
        """lower(unaccent(..)) when the extension is (or can be made) available."""
        try:
            with self._db.transaction():      # a savepoint: a refusal leaves the rest intact
                self._db.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        except psycopg.Error as exc:
            log.info("%s: search without unaccent: %s", self.where, _one_line(exc))
            return FOLD_PLAIN
        row = self._db.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid=e.extnamespace "
            "WHERE e.extname='unaccent'").fetchone()
        schema = pgsql.Identifier(row[0]).as_string(self._db) if row else "public"
        return FOLD_UNACCENT.format(unaccent=f"{schema}.unaccent",
                                    dictionary=f"{schema}.unaccent")

    def _folding(self) -> str:
        rows = self._query("SELECT prosrc FROM pg_proc WHERE proname='agent_tui_fold'")
        return "unaccent" if rows and "unaccent" in rows[0][0] else "lower"

    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction; `exclusive` also takes the store-wide write lock (ingest,
        contacts, erase), which serialises those writers the way SQLite's one writer does."""
        with self._lock:
            try:
                with self._db.transaction():
                    if exclusive:
                        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                    yield self._db
            except psycopg.OperationalError as exc:
                raise StoreError(f"{self.where}: {_one_line(exc)}") from None
            self._writes += 1

    def _query(self, query: str, params: Sequence[Any] = (), *,
               dicts: bool = False) -> list[Any]:
        with self._lock:
            try:
                cursor = self._db.cursor(row_factory=dict_row) if dicts else self._db.cursor()
                return cursor.execute(query.encode(), params).fetchall()
            except psycopg.OperationalError as exc:
                raise StoreError(f"{self.where}: {_one_line(exc)}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def reader(self) -> PostgresStore:
        """Another store on the same database with its own connection (the caller closes it)."""
        return PostgresStore(self.url, migrate=False)

    # --- live updates (LISTEN/NOTIFY) -------------------------------------------------------

    def _listening(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed:
            try:
                self._listener = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                                 application_name="agent-tui listen")
                self._listener.execute(
                    pgsql.SQL("LISTEN {}").format(pgsql.Identifier(NOTIFY_CHANNEL)))
            except psycopg.Error as exc:
                raise StoreError(f"{self.where}: cannot listen for changes: "
                                 f"{_one_line(exc)}") from None
            self._notifications += 1       # changes before LISTEN are unknown: count as one
        return self._listener

    def _drain(self, timeout: float) -> None:
        """Take the notifications that arrived; wait up to `timeout` for the first one."""
        try:
            listener = self._listening()
            got = 0
            if timeout > 0:
                for notify in listener.notifies(timeout=timeout, stop_after=1):
                    got += 1
                    self._changed.add(notify.payload)
            if got or timeout <= 0:
                for notify in listener.notifies(timeout=0):
                    got += 1
                    self._changed.add(notify.payload)
            self._notifications += got
        except psycopg.OperationalError:
            # The server went away: listen again on the next look, and call it a change.
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            self._notifications += 1

    def data_version(self) -> int:
        """Changes whenever anyone (this process or another host) committed a change to what
        a TUI shows: cheap to poll, reads no table (LISTEN/NOTIFY)."""
        with self._listen_lock:
            self._drain(0)
            return self._notifications * 1_000_000 + self._writes

    def wait_for_change(self, timeout: float) -> set[str]:
        """Block up to `timeout` seconds for a change by anyone; returns the tables changed
        since the last call (empty after a timeout)."""
        with self._listen_lock:
            if not self._changed:
                self._drain(timeout)
            changed, self._changed = self._changed, set()
            return changed

    # --- ingest ---------------------------------------------------------------------------

    def get_cursor(self, account: str, key: str) -> Cursor | None:
        rows = self._query("SELECT value FROM cursors WHERE account=%s AND key=%s",
                           (account, key))
        return rows[0][0] if rows else None

    def ingest(self, account: str, messages: Sequence[InboundMessage], *, cursor_key: str,
               cursor: Cursor | None) -> IngestResult:
        """Store messages and move the cursor in one transaction (invariant 1)."""
        result = IngestResult()
        with self.transaction(exclusive=True) as db:
            for message in messages:
                self._ingest_one(db, account, message, result)
            if cursor is not None:
                db.execute(
                    "INSERT INTO cursors(account, key, value, updated_at) VALUES (%s,%s,%s,%s) "
                    "ON CONFLICT (account, key) DO UPDATE SET value=excluded.value, "
                    "updated_at=excluded.updated_at",
                    (account, cursor_key, _jsonb(cursor), _now()))
        return result

    def record_outbound(self, account: str, message: InboundMessage, *,
                        conversation_id: int) -> int | None:
        result = IngestResult()
        with self.transaction(exclusive=True) as db:
            self._ingest_one(db, account, message, result, conversation_id=conversation_id)
        return result.new_message_ids[0] if result.new_message_ids else None

    def _ingest_one(self, db: psycopg.Connection[Any], account: str, m: InboundMessage,
                    result: IngestResult, conversation_id: int | None = None) -> None:
        existing = db.execute(
            "SELECT id, conversation_id, delivery_status, text FROM messages "
            "WHERE account=%s AND provider_id=%s", (account, _text(m.provider_id))).fetchone()
        if existing is not None:
            self._update_known(db, existing, m, result)
            return
        if db.execute("SELECT 1 FROM tombstones WHERE key_hash=%s",
                      (tombstone_key(account, m.provider_id),)).fetchone():
            result.skipped += 1
            return
        inbound = m.direction is Direction.INBOUND
        address = m.sender if inbound else (m.recipients[0] if m.recipients else "")
        name = m.sender_name if inbound else ""
        contact_id = self._contact_for(db, m.channel, _text(address), _text(name))
        extra = m.extra
        if m.reply_to:
            extra = {**extra, "reply_to": m.reply_to.strip().lower()}
        if conversation_id is None:
            conversation_id = self._thread(db, account, m, contact_id,
                                           normalise_address(m.channel, _text(address)))
        sent_at = _aware(m.sent_at)
        row = db.execute(
            "INSERT INTO messages(conversation_id, account, channel, direction, provider_id, "
            "sender, sender_name, recipients, sent_at, subject, text, html, attachments, "
            "auto_flags, in_reply_to, refs, delivery_status, defects, content_hash, extra, raw) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "RETURNING id",
            (conversation_id, account, str(m.channel), str(m.direction), _text(m.provider_id),
             _text(m.sender), _text(m.sender_name), _jsonb(m.recipients), sent_at,
             _text(m.subject), _text(m.text), _text(m.html),
             _jsonb([_attachment_json(a) for a in m.attachments]),
             _jsonb(_flags_json(m.auto)), _text(m.in_reply_to), _jsonb(m.references),
             _text(m.delivery_status), _jsonb(m.defects), m.content_hash, _jsonb(extra),
             m.raw or None)).fetchone()
        assert row is not None
        self._touch_conversation(db, conversation_id, m)
        result.new += 1
        result.new_message_ids.append(int(row[0]))
        result.conversation_ids.add(conversation_id)

    def _update_known(self, db: psycopg.Connection[Any], row: Sequence[Any], m: InboundMessage,
                      result: IngestResult) -> None:
        message_id, conversation_id, delivery_status, text = row
        changed = False
        if m.delivery_status and m.delivery_status != delivery_status:
            db.execute("UPDATE messages SET delivery_status=%s WHERE id=%s",
                       (_text(m.delivery_status), message_id))
            changed = True
        if m.extra.get("edited") and _text(m.text) != text:
            db.execute("UPDATE messages SET text=%s, edited=1 WHERE id=%s",
                       (_text(m.text), message_id))
            changed = True
        if changed:
            result.updated += 1
            result.conversation_ids.add(conversation_id)
        else:
            result.duplicates += 1

    def _contact_for(self, db: psycopg.Connection[Any], channel: Channel, address: str,
                     name: str) -> int:
        kind = identity_kind(channel)
        address = normalise_address(channel, address)
        row = db.execute("SELECT i.contact_id, k.display_name FROM identities i "
                         "JOIN contacts k ON k.id=i.contact_id "
                         "WHERE i.kind=%s AND i.address=%s", (kind, address)).fetchone()
        if row is not None:
            contact_id = int(row[0])
            if name and not row[1]:
                db.execute("UPDATE contacts SET display_name=%s WHERE id=%s", (name, contact_id))
            return contact_id
        new = db.execute("INSERT INTO contacts(display_name, created_at) VALUES (%s,%s) "
                         "RETURNING id", (name, _now())).fetchone()
        assert new is not None
        db.execute("INSERT INTO identities(contact_id, kind, address) VALUES (%s,%s,%s)",
                   (new[0], kind, address))
        return int(new[0])

    def _thread(self, db: psycopg.Connection[Any], account: str, m: InboundMessage,
                contact_id: int, address: str) -> int:
        if m.channel is Channel.EMAIL:
            found = self._mail_thread(db, account, m, contact_id)
        else:
            found = self._chat_thread(db, account, m, contact_id)
        if found is not None:
            return found
        row = db.execute(
            "INSERT INTO conversations(contact_id, contact_address, channel, account, subject, "
            "norm_subject, last_activity_at) VALUES (%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (contact_id, address, str(m.channel), account, _text(m.subject),
             _text(_normalise_subject(m.subject)) if m.channel is Channel.EMAIL else "",
             _aware(m.sent_at))).fetchone()
        assert row is not None
        return int(row[0])

    def _mail_thread(self, db: psycopg.Connection[Any], account: str, m: InboundMessage,
                     contact_id: int) -> int | None:
        ids = [_text(i) for i in [m.in_reply_to, *m.references] if i]
        if ids:
            row = db.execute(
                "SELECT conversation_id FROM messages WHERE account=%s AND provider_id=ANY(%s) "
                "ORDER BY sent_at DESC LIMIT 1", (account, ids)).fetchone()
            if row is not None:
                return int(row[0])
        subject = _text(_normalise_subject(m.subject))
        if not subject:
            return None
        row = db.execute(
            "SELECT id FROM conversations WHERE contact_id=%s AND norm_subject=%s "
            "AND account=%s AND channel='email' AND status!='closed' AND last_activity_at>=%s "
            "ORDER BY last_activity_at DESC LIMIT 1",
            (contact_id, subject, account, _aware(m.sent_at) - SUBJECT_WINDOW)).fetchone()
        return int(row[0]) if row else None

    def _chat_thread(self, db: psycopg.Connection[Any], account: str, m: InboundMessage,
                     contact_id: int) -> int | None:
        row = db.execute(
            "SELECT id, status, closed_at FROM conversations WHERE account=%s AND channel=%s "
            "AND contact_id=%s ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            (account, str(m.channel), contact_id)).fetchone()
        if row is None:
            return None
        conversation_id, status, closed_at = row
        if status != ConversationStatus.CLOSED:
            return int(conversation_id)
        if closed_at is not None and _aware(m.sent_at) - closed_at <= CHAT_REOPEN_WINDOW:
            return int(conversation_id)
        return None

    def _touch_conversation(self, db: psycopg.Connection[Any], conversation_id: int,
                            m: InboundMessage) -> None:
        at = _aware(m.sent_at)
        if m.direction is Direction.INBOUND:
            db.execute(
                "UPDATE conversations SET "
                "last_activity_at=greatest(last_activity_at, %(at)s), "
                "first_inbound_at=least(first_inbound_at, %(at)s), "
                "last_inbound_at=greatest(last_inbound_at, %(at)s), "
                "waiting_since=coalesce(waiting_since, %(at)s), unread=unread+%(unread)s, "
                "preview=CASE WHEN last_inbound_at IS NULL OR %(at)s>=last_inbound_at "
                "THEN %(preview)s ELSE preview END, "
                "status='open', snoozed_until=NULL, closed_at=NULL WHERE id=%(id)s",
                {"at": at, "unread": 0 if m.read else 1, "id": conversation_id,
                 "preview": _text(_preview(m.text) or m.subject[:PREVIEW_CHARS])})
        else:
            db.execute(
                "UPDATE conversations SET last_activity_at=greatest(last_activity_at, %(at)s), "
                "waiting_since=CASE WHEN waiting_since IS NOT NULL AND waiting_since<=%(at)s "
                "THEN NULL ELSE waiting_since END WHERE id=%(id)s",
                {"at": at, "id": conversation_id})

    # --- reads ----------------------------------------------------------------------------

    def _filters(self, status: str | None, channel: str | None, assignee: str | None,
                 tag: str | None) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if status:
            where.append("c.status=%s")
            params.append(status)
        if channel:
            where.append("c.channel=%s")
            params.append(channel)
        if assignee is not None:
            if assignee == "":
                where.append("c.assignee IS NULL")
            else:
                where.append("c.assignee=%s")
                params.append(assignee)
        if tag:
            where.append("c.tags @> %s")
            params.append(_jsonb([tag]))
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def list_conversations(self, *, status: str | None = None, channel: str | None = None,
                           assignee: str | None = None, tag: str | None = None,
                           limit: int = 50, offset: int = 0) -> list[Conversation]:
        where, params = self._filters(status, channel, assignee, tag)
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            f"JOIN contacts k ON k.id=c.contact_id{where} "
            "ORDER BY c.last_activity_at DESC, c.id LIMIT %s OFFSET %s",
            (*params, limit, offset))
        return [_conversation(r) for r in rows]

    def count_conversations(self, *, status: str | None = None, channel: str | None = None,
                            assignee: str | None = None, tag: str | None = None) -> int:
        where, params = self._filters(status, channel, assignee, tag)
        return int(self._query(f"SELECT count(*) FROM conversations c{where}", params)[0][0])

    def waiting_conversations(self, *, limit: int = 500) -> list[Conversation]:
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            "JOIN contacts k ON k.id=c.contact_id "
            "WHERE c.status='open' AND c.waiting_since IS NOT NULL "
            "ORDER BY c.waiting_since, c.id LIMIT %s", (limit,))
        return [_conversation(r) for r in rows]

    def get_conversation(self, conversation_id: int) -> Conversation:
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            "JOIN contacts k ON k.id=c.contact_id WHERE c.id=%s", (conversation_id,))
        if not rows:
            raise NotFound(f"no conversation {conversation_id}")
        return _conversation(rows[0])

    def get_messages(self, conversation_id: int) -> list[Message]:
        rows = self._query(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id=%s "
                           "ORDER BY sent_at, id", (conversation_id,))
        return [_message(r) for r in rows]

    def get_message(self, message_id: int) -> Message:
        rows = self._query(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id=%s", (message_id,))
        if not rows:
            raise NotFound(f"no message {message_id}")
        return _message(rows[0])

    def get_raw(self, message_id: int) -> bytes | None:
        rows = self._query("SELECT raw FROM messages WHERE id=%s", (message_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def get_contact(self, contact_id: int) -> Contact:
        rows = self._query("SELECT id, display_name FROM contacts WHERE id=%s", (contact_id,))
        if not rows:
            raise NotFound(f"no contact {contact_id}")
        identities = [Identity(kind, address) for kind, address in self._query(
            "SELECT kind, address FROM identities WHERE contact_id=%s ORDER BY id",
            (contact_id,))]
        return Contact(int(rows[0][0]), rows[0][1], identities)

    def contact_conversations(self, contact_id: int) -> list[Conversation]:
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c "
            "JOIN contacts k ON k.id=c.contact_id WHERE c.contact_id=%s "
            "ORDER BY c.last_activity_at DESC, c.id", (contact_id,))
        return [_conversation(r) for r in rows]

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search, every word a prefix (`liefer` finds `Lieferzeit`), accents folded
        when unaccent is available. Any user text is safe: words are reduced to letters and
        digits and passed as a parameter."""
        words = _WORD.findall(_text(query))
        if not words:
            return []
        # Fold the words as the index folds the text, then make each a prefix term.
        folded = self._query("SELECT agent_tui_fold(%s)", (" ".join(words),))[0][0]
        terms = [w for w in _WORD.findall(folded) if w]
        if not terms:
            return []
        tsquery = " & ".join(f"'{t}':*" for t in terms)
        rows = self._query(
            "SELECT m.id, m.conversation_id, m.sent_at, m.sender, m.subject, "
            f"left(m.text, {SNIPPET_SCAN_CHARS}) FROM messages m, to_tsquery('simple', %s) q "
            "WHERE m.search @@ q ORDER BY ts_rank(m.search, q) DESC, m.sent_at DESC LIMIT %s",
            (tsquery, limit))
        return [SearchHit(int(r[0]), int(r[1]), r[2], r[3], r[4], snippet(r[5], terms))
                for r in rows]

    def iter_export(self, contact_id: int | None = None
                    ) -> Iterator[tuple[Message, Conversation, Contact]]:
        where, params = ("WHERE c.contact_id=%s", (contact_id,)) if contact_id else ("", ())
        ids = self._query(f"SELECT c.id FROM conversations c {where} ORDER BY c.id", params)
        contacts: dict[int, Contact] = {}
        for (conversation_id,) in ids:
            conversation = self.get_conversation(conversation_id)
            if conversation.contact_id not in contacts:
                contacts[conversation.contact_id] = self.get_contact(conversation.contact_id)
            for message in self.get_messages(conversation.id):
                yield message, conversation, contacts[conversation.contact_id]

    def get_notes(self, conversation_id: int) -> list[Note]:
        return [Note(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in self._query(
            "SELECT id, conversation_id, author, text, created_at FROM notes "
            "WHERE conversation_id=%s ORDER BY id", (conversation_id,))]

    def inbound_hour_counts(self, since: datetime) -> dict[tuple[str, datetime], int]:
        rows = self._query(
            "SELECT channel, date_trunc('hour', sent_at) AS hour, count(*) FROM messages "
            "WHERE direction='in' AND sent_at>=%s GROUP BY channel, hour", (_aware(since),))
        return {(r[0], r[1].astimezone(UTC)): int(r[2]) for r in rows}

    # --- changes by people ----------------------------------------------------------------

    def _update_conversation(self, conversation_id: int, assignments: str,
                             params: Sequence[Any]) -> None:
        with self.transaction() as db:
            cur = db.execute(f"UPDATE conversations SET {assignments} WHERE id=%s",
                             (*params, conversation_id))
            if cur.rowcount == 0:
                raise NotFound(f"no conversation {conversation_id}")

    def set_status(self, conversation_id: int, status: ConversationStatus | str,
                   snoozed_until: datetime | None = None) -> None:
        status = ConversationStatus(status)
        closed_at = _now() if status is ConversationStatus.CLOSED else None
        self._update_conversation(
            conversation_id, "status=%s, snoozed_until=%s, closed_at=%s",
            (str(status), _aware(snoozed_until) if snoozed_until else None, closed_at))

    def wake_snoozed(self, now: datetime | None = None) -> int:
        with self.transaction() as db:
            cur = db.execute("UPDATE conversations SET status='open', snoozed_until=NULL "
                             "WHERE status='snoozed' AND snoozed_until<=%s",
                             (_aware(now or _now()),))
            return cur.rowcount

    def assign(self, conversation_id: int, agent: str | None) -> None:
        self._update_conversation(conversation_id, "assignee=%s", (agent or None,))

    def set_priority(self, conversation_id: int, priority: Priority | str) -> None:
        self._update_conversation(conversation_id, "priority=%s", (str(Priority(priority)),))

    def add_tag(self, conversation_id: int, tag: str) -> None:
        # One statement: two agents tagging at once both keep their tag.
        self._update_conversation(
            conversation_id, "tags=CASE WHEN tags @> %s THEN tags ELSE tags || %s END",
            (_jsonb([tag]), _jsonb([tag])))

    def remove_tag(self, conversation_id: int, tag: str) -> None:
        self._update_conversation(conversation_id, "tags=tags - %s::text", (tag,))

    def mark_read(self, conversation_id: int) -> None:
        self._update_conversation(conversation_id, "unread=0", ())

    def mark_read_elsewhere(self, account: str, provider_ids: Sequence[str]) -> int:
        changed = 0
        with self.transaction() as db:
            for provider_id in provider_ids:
                changed += db.execute(
                    "UPDATE conversations SET unread=0 WHERE unread>0 AND id=("
                    "SELECT m.conversation_id FROM messages m WHERE m.account=%s AND "
                    "m.provider_id=%s AND m.direction='in' AND m.sent_at>=(SELECT max(n.sent_at) "
                    "FROM messages n WHERE n.conversation_id=m.conversation_id AND "
                    "n.direction='in'))", (account, _text(provider_id))).rowcount
        return changed

    def set_enrichment(self, conversation_id: int, fields: dict[str, str]) -> None:
        self._update_conversation(conversation_id, "enrichment=enrichment || %s",
                                  (_jsonb(fields),))

    def set_due(self, conversation_id: int, due_at: datetime | None) -> None:
        self._update_conversation(conversation_id, "due_at=%s",
                                  (_aware(due_at) if due_at else None,))

    def add_note(self, conversation_id: int, author: str, text: str) -> Note:
        now = _now()
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM conversations WHERE id=%s",
                              (conversation_id,)).fetchone():
                raise NotFound(f"no conversation {conversation_id}")
            row = db.execute("INSERT INTO notes(conversation_id, author, text, created_at) "
                             "VALUES (%s,%s,%s,%s) RETURNING id",
                             (conversation_id, _text(author), _text(text), now)).fetchone()
        assert row is not None
        return Note(int(row[0]), conversation_id, author, text, now)

    def delete_message(self, message_id: int) -> None:
        with self.transaction(exclusive=True) as db:
            row = db.execute("SELECT account, provider_id FROM messages WHERE id=%s",
                             (message_id,)).fetchone()
            if row is None:
                raise NotFound(f"no message {message_id}")
            db.execute("INSERT INTO tombstones(key_hash, created_at) VALUES (%s,%s) "
                       "ON CONFLICT DO NOTHING", (tombstone_key(row[0], row[1]), _now()))
            db.execute("DELETE FROM messages WHERE id=%s", (message_id,))

    # --- contacts and data protection -----------------------------------------------------

    def find_contact(self, address: str) -> int | None:
        rows = self._query("SELECT contact_id FROM identities WHERE address=%s OR address=%s "
                           "ORDER BY id LIMIT 1", (address.strip(), address.strip().lower()))
        return int(rows[0][0]) if rows else None

    def merge_contacts(self, keep: int, other: int) -> None:
        if keep == other:
            raise UsageError("cannot merge a contact with itself")
        with self.transaction(exclusive=True) as db:
            for contact_id in (keep, other):
                if not db.execute("SELECT 1 FROM contacts WHERE id=%s",
                                  (contact_id,)).fetchone():
                    raise NotFound(f"no contact {contact_id}")
            for table in ("identities", "conversations", "auto_replies"):
                db.execute(f"UPDATE {table} SET contact_id=%s WHERE contact_id=%s",
                           (keep, other))
            self._move_proposals(db, keep, other)
            db.execute("UPDATE contact_hints h SET contact_id=%s WHERE contact_id=%s AND NOT "
                       "EXISTS (SELECT 1 FROM contact_hints k WHERE k.contact_id=%s AND "
                       "k.kind=h.kind AND k.address=h.address)", (keep, other, keep))
            db.execute("DELETE FROM contact_hints WHERE contact_id=%s", (other,))
            db.execute("UPDATE contacts SET display_name=(SELECT display_name FROM contacts "
                       "WHERE id=%s) WHERE id=%s AND display_name=''", (other, keep))
            db.execute("DELETE FROM contacts WHERE id=%s", (other,))

    def split_contact(self, contact_id: int, kind: str, address: str) -> int:
        with self.transaction(exclusive=True) as db:
            row = db.execute("SELECT id FROM identities WHERE contact_id=%s AND kind=%s AND "
                             "address=%s", (contact_id, kind, address)).fetchone()
            if row is None:
                raise NotFound(f"contact {contact_id} has no {kind} identity {address!r}")
            count = db.execute("SELECT count(*) FROM identities WHERE contact_id=%s",
                               (contact_id,)).fetchone()
            if count is None or count[0] < 2:
                raise UsageError(f"{address} is the only identity of contact {contact_id}")
            new = db.execute("INSERT INTO contacts(display_name, created_at) VALUES ('', %s) "
                             "RETURNING id", (_now(),)).fetchone()
            assert new is not None
            new_id = int(new[0])
            db.execute("UPDATE identities SET contact_id=%s WHERE id=%s", (new_id, row[0]))
            db.execute("UPDATE conversations SET contact_id=%s WHERE contact_id=%s AND "
                       "contact_address=%s", (new_id, contact_id, address))
            now = _now()
            db.execute("INSERT INTO merge_proposals(contact_a, contact_b, reason, state, "
                       "created_at, resolved_at) VALUES (%s,%s,%s,'rejected',%s,%s)",
                       (contact_id, new_id, f"split by a person ({kind} {address})", now, now))
            return new_id

    def _delete_conversations(self, db: psycopg.Connection[Any], where: str,
                              params: Sequence[Any]) -> tuple[int, int]:
        ids = [r[0] for r in db.execute(f"SELECT id FROM conversations WHERE {where}",
                                        params).fetchall()]
        if not ids:
            return 0, 0
        keys = db.execute("SELECT account, provider_id FROM messages "
                          "WHERE conversation_id=ANY(%s)", (ids,)).fetchall()
        now = _now()
        with db.cursor() as cur:
            cur.executemany("INSERT INTO tombstones(key_hash, created_at) VALUES (%s,%s) "
                            "ON CONFLICT DO NOTHING",
                            [(tombstone_key(a, p), now) for a, p in keys])
        for table in ("messages", "notes", "outbox"):
            db.execute(f"DELETE FROM {table} WHERE conversation_id=ANY(%s)", (ids,))
        db.execute("DELETE FROM conversations WHERE id=ANY(%s)", (ids,))
        return len(ids), len(keys)

    def _wait_for_older_snapshots(self, timeout: float = SCRUB_WAIT_SECONDS) -> bool:
        """Wait until every transaction that was running at our commit has ended: VACUUM FULL
        must keep a deleted row that such a snapshot may still see."""
        query = ("SELECT pid, backend_xmin::text FROM pg_stat_activity WHERE "
                 "pid<>pg_backend_pid() AND backend_xmin IS NOT NULL")
        before = set(self._query(query))
        deadline = time.monotonic() + timeout
        while before:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
            before &= set(self._query(query))
        return True

    def _scrub(self) -> None:
        """Leave no erased text in the tables' files: rewrite them (and their indexes), and
        recompute their statistics (which sample column values)."""
        if not self._wait_for_older_snapshots():
            log.warning("%s: a transaction older than the erasure is still open; erased text "
                        "stays in the table files until the next VACUUM FULL", self.where)
        with self._lock:
            for table in _SCRUB_TABLES:
                try:
                    self._db.execute(pgsql.SQL("VACUUM (FULL, ANALYZE) {}").format(
                        pgsql.Identifier(table)))
                except psycopg.Error as exc:
                    log.warning("%s: VACUUM FULL %s failed, erased text may remain in free "
                                "space until PostgreSQL reuses it: %s", self.where, table,
                                _one_line(exc))

    def erase_contact(self, contact_id: int) -> dict[str, int]:
        self.get_contact(contact_id)
        with self.transaction(exclusive=True) as db:
            conversations, messages = self._delete_conversations(db, "contact_id=%s",
                                                                 (contact_id,))
            db.execute("DELETE FROM contact_hints WHERE contact_id=%s OR EXISTS (SELECT 1 FROM "
                       "identities i WHERE i.contact_id=%s AND i.kind=contact_hints.kind AND "
                       "i.address=contact_hints.address)", (contact_id, contact_id))
            db.execute("DELETE FROM merge_proposals WHERE contact_a=%s OR contact_b=%s",
                       (contact_id, contact_id))
            identities = db.execute("DELETE FROM identities WHERE contact_id=%s",
                                    (contact_id,)).rowcount
            db.execute("DELETE FROM auto_replies WHERE contact_id=%s", (contact_id,))
            db.execute("DELETE FROM contacts WHERE id=%s", (contact_id,))
        self._scrub()
        return {"conversations": conversations, "messages": messages, "identities": identities}

    def purge_closed(self, before: datetime) -> int:
        with self.transaction(exclusive=True) as db:
            count, _ = self._delete_conversations(
                db, "status='closed' AND closed_at IS NOT NULL AND closed_at<%s",
                (_aware(before),))
        if count:
            self._scrub()
        return count

    # --- proposed merges (never silent) ----------------------------------------------------

    def identity_owner(self, kind: str, address: str) -> int | None:
        rows = self._query("SELECT contact_id FROM identities WHERE kind=%s AND address=%s",
                           (kind, address))
        return int(rows[0][0]) if rows else None

    def get_message_extra(self, message_id: int) -> dict[str, Any]:
        rows = self._query("SELECT extra FROM messages WHERE id=%s", (message_id,))
        if not rows:
            raise NotFound(f"no message {message_id}")
        value = rows[0][0]
        return value if isinstance(value, dict) else {}

    def propose_merge(self, contact_a: int, contact_b: int, reason: str, *,
                      message_id: int | None = None) -> int | None:
        if contact_a == contact_b:
            return None
        low, high = sorted((contact_a, contact_b))
        with self.transaction(exclusive=True) as db:
            alive = db.execute("SELECT count(*) FROM contacts WHERE id IN (%s,%s)",
                               (low, high)).fetchone()
            if alive is None or alive[0] != 2:
                return None
            row = db.execute(
                "INSERT INTO merge_proposals(contact_a, contact_b, reason, message_id, state, "
                "created_at) VALUES (%s,%s,%s,%s,'open',%s) "
                "ON CONFLICT (contact_a, contact_b) DO NOTHING RETURNING id",
                (low, high, _text(reason), message_id, _now())).fetchone()
            return int(row[0]) if row else None

    def merge_proposals(self, *, state: str | None = "open",
                        contact_id: int | None = None) -> list[MergeProposal]:
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            where.append("state=%s")
            params.append(state)
        if contact_id is not None:
            where.append("(contact_a=%s OR contact_b=%s)")
            params.extend([contact_id, contact_id])
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return [_proposal(r) for r in self._query(
            f"SELECT * FROM merge_proposals{clause} ORDER BY created_at, id", params,
            dicts=True)]

    def reject_merge(self, contact_a: int, contact_b: int, reason: str = "") -> None:
        if contact_a == contact_b:
            raise UsageError("a contact cannot be rejected as its own duplicate")
        low, high = sorted((contact_a, contact_b))
        now = _now()
        with self.transaction(exclusive=True) as db:
            for contact_id in (contact_a, contact_b):
                if not db.execute("SELECT 1 FROM contacts WHERE id=%s",
                                  (contact_id,)).fetchone():
                    raise NotFound(f"no contact {contact_id}")
            cur = db.execute("UPDATE merge_proposals SET state='rejected', resolved_at=%s "
                             "WHERE contact_a=%s AND contact_b=%s", (now, low, high))
            if cur.rowcount == 0:
                db.execute("INSERT INTO merge_proposals(contact_a, contact_b, reason, state, "
                           "created_at, resolved_at) VALUES (%s,%s,%s,'rejected',%s,%s)",
                           (low, high, _text(reason) or "rejected by a person", now, now))

    def _move_proposals(self, db: psycopg.Connection[Any], keep: int, other: int) -> None:
        now = _now()
        db.execute("UPDATE merge_proposals SET contact_a=%s WHERE contact_a=%s AND "
                   "contact_b IS NULL", (keep, other))
        rows = db.execute("SELECT id, contact_a, contact_b, state FROM merge_proposals "
                          "WHERE contact_b IS NOT NULL AND (contact_a=%s OR contact_b=%s)",
                          (other, other)).fetchall()
        for proposal_id, a, b, state in rows:
            third = b if a == other else a
            if third == keep:
                db.execute("UPDATE merge_proposals SET contact_a=%s, contact_b=NULL, "
                           "merged_id=%s, state=CASE WHEN state='open' THEN 'accepted' "
                           "ELSE state END, resolved_at=coalesce(resolved_at, %s) WHERE id=%s",
                           (keep, other, now, proposal_id))
                continue
            low, high = sorted((keep, third))
            existing = db.execute("SELECT id, state FROM merge_proposals WHERE contact_a=%s "
                                  "AND contact_b=%s", (low, high)).fetchone()
            if existing is None:
                db.execute("UPDATE merge_proposals SET contact_a=%s, contact_b=%s WHERE id=%s",
                           (low, high, proposal_id))
                continue
            if state == "rejected" and existing[1] == "open":
                db.execute("UPDATE merge_proposals SET state='rejected', resolved_at=%s "
                           "WHERE id=%s", (now, existing[0]))
            db.execute("DELETE FROM merge_proposals WHERE id=%s", (proposal_id,))

    def add_contact_hint(self, contact_id: int, kind: str, address: str, reason: str, *,
                         message_id: int | None = None) -> bool:
        with self.transaction(exclusive=True) as db:
            if not db.execute("SELECT 1 FROM contacts WHERE id=%s", (contact_id,)).fetchone():
                return False
            cur = db.execute(
                "INSERT INTO contact_hints(contact_id, kind, address, reason, message_id, "
                "created_at) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (contact_id, kind, _text(address), _text(reason), message_id, _now()))
            return cur.rowcount == 1

    def contact_hints(self, kind: str, address: str) -> list[ContactHint]:
        return [ContactHint(int(r[0]), r[1], r[2], r[3], r[4]) for r in self._query(
            "SELECT contact_id, kind, address, reason, message_id FROM contact_hints "
            "WHERE kind=%s AND address=%s ORDER BY id", (kind, address))]

    # --- outbox ---------------------------------------------------------------------------

    def outbox_enqueue(self, conversation_id: int, account: str, payload: dict[str, Any],
                       idempotency_key: str) -> int:
        now = _now()
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO outbox(conversation_id, account, payload, idempotency_key, state, "
                "next_attempt_at, created_at, updated_at) VALUES (%s,%s,%s,%s,'queued',%s,%s,%s) "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                (conversation_id, account, _jsonb(payload), idempotency_key, now, now,
                 now)).fetchone()
            if row is None:
                row = db.execute("SELECT id FROM outbox WHERE idempotency_key=%s",
                                 (idempotency_key,)).fetchone()
        assert row is not None
        return int(row[0])

    def outbox_claim_next(self, now: datetime, *, accounts: set[str] | None = None,
                          holder: str | None = None) -> OutboxRow | None:
        """Atomically move the next due row from queued to sending (attempts + 1); rows
        another sender is claiming right now are skipped, never waited for."""
        holder = holder or f"{os.uname().nodename}:{os.getpid()}"
        if accounts is not None and not accounts:
            return None
        now = _aware(now)
        extra = " AND account=ANY(%(accounts)s)" if accounts is not None else ""
        with self.transaction() as db:
            row = db.cursor(row_factory=dict_row).execute(
                "UPDATE outbox SET state='sending', attempts=attempts+1, attempted_at=%(now)s, "
                "claimed_by=%(holder)s, updated_at=%(now)s WHERE id=("
                f"SELECT id FROM outbox WHERE state='queued' AND next_attempt_at<=%(now)s{extra} "
                "ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *",
                {"now": now, "holder": holder,
                 "accounts": sorted(accounts) if accounts else None}).fetchone()
        return _outbox_row(row) if row is not None else None

    def _outbox_move(self, outbox_id: int, to: OutboxState, assignments: str = "",
                     params: Sequence[Any] = ()) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT state FROM outbox WHERE id=%s FOR UPDATE",
                             (outbox_id,)).fetchone()
            if row is None:
                raise NotFound(f"no outbox row {outbox_id}")
            current = OutboxState(row[0])
            if to not in _TRANSITIONS[current]:
                raise IllegalTransition(f"outbox row {outbox_id}: cannot go from {current} "
                                        f"to {to}")
            db.execute(f"UPDATE outbox SET state=%s, updated_at=%s{assignments} WHERE id=%s",
                       (str(to), _now(), *params, outbox_id))

    def outbox_mark_sent(self, outbox_id: int, provider_id: str) -> None:
        self._outbox_move(outbox_id, OutboxState.SENT, ", provider_id=%s, last_error=''",
                          (_text(provider_id),))

    def outbox_retry_later(self, outbox_id: int, error: str, next_attempt_at: datetime) -> None:
        self._outbox_move(outbox_id, OutboxState.QUEUED, ", last_error=%s, next_attempt_at=%s",
                          (_text(error), _aware(next_attempt_at)))

    def outbox_mark_failed(self, outbox_id: int, error: str) -> None:
        self._outbox_move(outbox_id, OutboxState.FAILED, ", last_error=%s", (_text(error),))

    def outbox_mark_uncertain(self, outbox_id: int, error: str) -> None:
        self._outbox_move(outbox_id, OutboxState.UNCERTAIN, ", last_error=%s", (_text(error),))

    def outbox_cancel(self, outbox_id: int, reason: str) -> None:
        self._outbox_move(outbox_id, OutboxState.CANCELLED, ", last_error=%s", (_text(reason),))

    def outbox_requeue(self, outbox_id: int) -> None:
        self._outbox_move(outbox_id, OutboxState.QUEUED, ", next_attempt_at=%s", (_now(),))

    def outbox_stuck_sending(self, now: datetime | None = None) -> list[OutboxRow]:
        now = _aware(now or _now())
        me = os.uname().nodename
        stuck = []
        for row in self._query("SELECT * FROM outbox WHERE state='sending' ORDER BY id",
                               dicts=True):
            host, _, pid = str(row["claimed_by"]).rpartition(":")
            attempted = row["attempted_at"] or now
            dead = host == me and pid.isdigit() and not _pid_alive(int(pid))
            if dead or now - attempted > STUCK_AFTER:
                stuck.append(_outbox_row(row))
        return stuck

    def stats_messages(self, since: datetime) -> list[StatsMessage]:
        rows = self._query(
            "SELECT m.conversation_id, m.channel, m.direction, m.sent_at, "
            "o.payload->>'automatic', o.payload->>'entry_id', "
            "o.payload->>'suggestion_edited', o.payload->>'suggestions_shown' "
            "FROM messages m LEFT JOIN outbox o ON m.direction='out' "
            "AND o.id=(m.extra->>'outbox_id')::bigint "
            "WHERE m.conversation_id IN (SELECT conversation_id FROM messages WHERE sent_at>=%s) "
            "ORDER BY m.conversation_id, m.sent_at, m.id", (since,))
        return [StatsMessage(int(r[0]), r[1], r[2], r[3], r[4] == "true", r[5] or None,
                             r[6] == "true", r[7] == "true") for r in rows]

    def closed_since(self, since: datetime) -> list[ClosedConversation]:
        rows = self._query(
            "SELECT channel, first_inbound_at, closed_at FROM conversations WHERE "
            "status='closed' AND closed_at>=%s AND first_inbound_at IS NOT NULL", (since,))
        return [ClosedConversation(r[0], r[1], r[2]) for r in rows]

    def outbox_get(self, outbox_id: int) -> OutboxRow:
        rows = self._query("SELECT * FROM outbox WHERE id=%s", (outbox_id,), dicts=True)
        if not rows:
            raise NotFound(f"no outbox row {outbox_id}")
        return _outbox_row(rows[0])

    def outbox_rows(self, *, state: str | None = None,
                    conversation_id: int | None = None) -> list[OutboxRow]:
        where: list[str] = []
        params: list[Any] = []
        if state:
            where.append("state=%s")
            params.append(state)
        if conversation_id is not None:
            where.append("conversation_id=%s")
            params.append(conversation_id)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return [_outbox_row(r) for r in self._query(
            f"SELECT * FROM outbox{clause} ORDER BY id", params, dicts=True)]

    def outbox_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._query(
            "SELECT state, count(*) FROM outbox GROUP BY state")}

    # --- leases (timed by the database server: the one clock all hosts share) -------------

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO leases(name, holder, expires_at) "
                "VALUES (%(name)s, %(holder)s, now() + make_interval(secs => %(ttl)s)) "
                "ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, "
                "expires_at=excluded.expires_at "
                "WHERE leases.holder=excluded.holder OR leases.expires_at<=now() "
                "RETURNING holder", {"name": name, "holder": holder,
                                     "ttl": float(ttl_seconds)}).fetchone()
            return row is not None

    def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        with self.transaction() as db:
            cur = db.execute("UPDATE leases SET expires_at=now() + make_interval(secs => %s) "
                             "WHERE name=%s AND holder=%s", (float(ttl_seconds), name, holder))
            return cur.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE name=%s AND holder=%s", (name, holder))

    def lease_holder(self, name: str) -> str | None:
        rows = self._query("SELECT holder FROM leases WHERE name=%s AND expires_at>now()",
                           (name,))
        return str(rows[0][0]) if rows else None

    def lease_holders(self, prefix: str) -> dict[str, str]:
        """Every unexpired lease whose name starts with `prefix`: name -> holder."""
        rows = self._query("SELECT name, holder FROM leases "
                           "WHERE left(name, %s)=%s AND expires_at>now()", (len(prefix), prefix))
        return {str(r[0]): str(r[1]) for r in rows}

    # --- assignment at ingest ---------------------------------------------------------------

    def conversations_started_by(self, message_ids: Sequence[int]) -> list[int]:
        """The conversations all of whose messages are among `message_ids` (new ones), by id."""
        ids = [int(i) for i in message_ids]
        rows = self._query(
            "SELECT DISTINCT m.conversation_id FROM messages m WHERE m.id = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.conversation_id=m.conversation_id "
            "AND NOT o.id = ANY(%s)) ORDER BY 1", (ids, ids))
        return [int(r[0]) for r in rows]

    def assign_unassigned(self, conversation_ids: Sequence[int],
                          agents: Sequence[str]) -> dict[int, str]:
        """As the SQLite store: in turn, the agent whose newest conversation is oldest first.
        An advisory lock orders the turns of several processes; `WHERE assignee IS NULL`
        alone already keeps them from assigning one conversation twice."""
        assigned: dict[int, str] = {}
        if not agents:
            return assigned
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_ASSIGN_LOCK,))
            last: dict[str, int] = {}
            for agent in agents:
                row = db.execute("SELECT id FROM conversations WHERE assignee=%s "
                                 "ORDER BY id DESC LIMIT 1", (agent,)).fetchone()
                last[agent] = int(row[0]) if row is not None else -1
            for conversation_id in conversation_ids:
                agent = min(agents, key=lambda a: (last[a], agents.index(a)))
                cur = db.execute("UPDATE conversations SET assignee=%s "
                                 "WHERE id=%s AND assignee IS NULL", (agent, conversation_id))
                if cur.rowcount:
                    assigned[conversation_id] = agent
                    last[agent] = max(max(last.values()) + 1, conversation_id)
        return assigned

    # --- automation -----------------------------------------------------------------------

    def record_auto_reply(self, contact_id: int, at: datetime) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO auto_replies(contact_id, at) VALUES (%s,%s)",
                       (contact_id, _aware(at)))

    def last_auto_reply(self, contact_id: int) -> datetime | None:
        rows = self._query("SELECT max(at) FROM auto_replies WHERE contact_id=%s",
                           (contact_id,))
        return rows[0][0] if rows else None

    def automation_pending(self, since: datetime) -> list[Message]:
        rows = self._query(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE direction='in' AND sent_at>=%s "
            "AND NOT EXISTS (SELECT 1 FROM automation a WHERE a.message_id=m.id) "
            "ORDER BY sent_at, id", (_aware(since),))
        return [_message(r) for r in rows]

    def record_decision(self, message_id: int, decision: str, why: str, *,
                        entry_id: str | None, score: float | None, at: datetime) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO automation(message_id, decision, why, entry_id, score, at) "
                       "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (message_id) DO UPDATE SET "
                       "decision=excluded.decision, why=excluded.why, "
                       "entry_id=excluded.entry_id, score=excluded.score, at=excluded.at",
                       (message_id, decision, _text(why), entry_id, score, _aware(at)))

    def automation_decisions(self, conversation_id: int) -> list[dict[str, Any]]:
        # Same shape as the SQLite store's rows: `at` as the ISO text SQLite keeps.
        from agent_tui.store.sqlite import ts

        rows = self._query(
            "SELECT a.message_id, a.decision, a.why, a.entry_id, a.score, a.at FROM automation a "
            "JOIN messages m ON m.id=a.message_id WHERE m.conversation_id=%s ORDER BY a.at",
            (conversation_id,), dicts=True)
        return [{**r, "message_id": int(r["message_id"]), "at": ts(r["at"])} for r in rows]


# --- search snippets ------------------------------------------------------------------------

SNIPPET_TOKENS = 12             # as SQLite's snippet(..., 12)
SNIPPET_SCAN_CHARS = 20_000     # a snippet comes from the start of long messages


def _fold_word(word: str) -> str:
    """Roughly what agent_tui_fold does to one word (for highlighting only)."""
    decomposed = unicodedata.normalize("NFKD", word.replace("ß", "ss").replace("ẞ", "SS"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def snippet(text: str, terms: Sequence[str]) -> str:
    """Up to 12 words around the first match, matches «marked», … where text was cut: the
    shape of SQLite's FTS5 snippet()."""
    tokens = list(_WORD.finditer(text))
    if not tokens:
        return ""

    def hit(token: re.Match[str]) -> bool:
        folded = _fold_word(token.group())
        return any(folded.startswith(t) or token.group().lower().startswith(t) for t in terms)

    first = next((i for i, t in enumerate(tokens) if hit(t)), 0)
    start = max(0, min(first - 2, len(tokens) - SNIPPET_TOKENS))
    end = min(len(tokens), start + SNIPPET_TOKENS)      # exclusive
    out = ["…" if start > 0 else text[:tokens[0].start()].lstrip()]
    position = tokens[start].start()
    for token in tokens[start:end]:
        out.append(text[position:token.start()])
        out.append(f"«{token.group()}»" if hit(token) else token.group())
        position = token.end()
    out.append(text[position:] if end == len(tokens) else "…")
    return "".join(out)


# --- row mapping ----------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


_CHANNELS = {str(c): c for c in Channel}
_STATUSES = {str(s): s for s in ConversationStatus}
_PRIORITIES = {str(p): p for p in Priority}
_DIRECTIONS = {str(d): d for d in Direction}
_NO_AUTO_FLAGS = AutoFlags()


def _conversation(r: Sequence[Any]) -> Conversation:
    (id_, contact_id, channel, account, subject, status, assignee, tags, priority, first_in,
     last_in, last_activity, due, unread, name, address, preview, enrichment, waiting) = r
    return Conversation(
        int(id_), int(contact_id), _CHANNELS[channel], account, subject, _STATUSES[status],
        assignee, list(tags), _PRIORITIES[priority], first_in, last_in, last_activity, due,
        unread, name, address, preview, dict(enrichment), waiting)


def _message(r: Sequence[Any]) -> Message:
    (id_, conversation_id, account, channel, direction, provider_id, sender, sender_name,
     recipients, sent_at, subject, text, attachments, auto_flags, delivery_status, defects,
     in_reply_to, refs, edited) = r
    return Message(
        int(id_), int(conversation_id), account, _CHANNELS[channel], _DIRECTIONS[direction],
        provider_id, sender, sender_name, list(recipients), sent_at, subject, text,
        [AttachmentInfo(**a) for a in attachments],
        AutoFlags(**auto_flags) if any(auto_flags.values()) else _NO_AUTO_FLAGS,
        delivery_status, list(defects), in_reply_to, list(refs), bool(edited))


def _proposal(r: dict[str, Any]) -> MergeProposal:
    return MergeProposal(
        id=int(r["id"]), contact_a=int(r["contact_a"]),
        contact_b=None if r["contact_b"] is None else int(r["contact_b"]),
        reason=r["reason"],
        message_id=None if r["message_id"] is None else int(r["message_id"]),
        state=r["state"], created_at=r["created_at"], resolved_at=r["resolved_at"],
        merged_id=None if r["merged_id"] is None else int(r["merged_id"]))


def _outbox_row(r: dict[str, Any]) -> OutboxRow:
    return OutboxRow(
        id=int(r["id"]), conversation_id=int(r["conversation_id"]), account=r["account"],
        payload=r["payload"], idempotency_key=r["idempotency_key"],
        state=OutboxState(r["state"]), attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"], attempted_at=r["attempted_at"],
        last_error=r["last_error"], provider_id=r["provider_id"], created_at=r["created_at"])

