"""The SQLite dialect: the embedded store, one file in WAL mode.

One connection per Store object, guarded by a lock, so a Textual worker thread and the event loop
can share it; other processes (a second agent's TUI, cron's `run --once`) open their own Store on
the same file, and WAL lets them read while one writes. Every write is `BEGIN IMMEDIATE`: one
writer at a time, so the queries of agent_tui.store.sql need no row locks here. Timestamps are
fixed-width ISO text, JSON is text; search is FTS5; `data_version()` is `PRAGMA data_version`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_tui.errors import StoreError
from agent_tui.store.base import SearchHit
from agent_tui.store.encryption import connect, db_errors
from agent_tui.store.schema import steps
from agent_tui.store.sql import SqlStore, iso

FTS = """
CREATE VIRTUAL TABLE messages_fts USING fts5(
    subject, sender, sender_name, text,
    content='messages', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, subject, sender, sender_name, text)
    VALUES (new.id, new.subject, new.sender, new.sender_name, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, subject, sender, sender_name, text)
    VALUES ('delete', old.id, old.subject, old.sender, old.sender_name, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF subject, sender, sender_name, text ON messages
BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, subject, sender, sender_name, text)
    VALUES ('delete', old.id, old.subject, old.sender, old.sender_name, old.text);
    INSERT INTO messages_fts(rowid, subject, sender, sender_name, text)
    VALUES (new.id, new.subject, new.sender, new.sender_name, new.text);
END;
"""

# Steps counted by `PRAGMA user_version`, each in its own transaction.
MIGRATIONS: list[str] = steps("sqlite", {1: FTS})

_CLOCK = "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'{})"    # the width and form of `iso`


def _json(value: Any) -> str:
    """JSON text of a column; most lists and dicts are empty, and json.dumps is not free."""
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value, default=str)


def _loads(text: str) -> Any:
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return json.loads(text)


def _create_private_file(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)


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


class SqliteStore(SqlStore):
    """The store on one SQLite file. See agent_tui.store for the API."""

    GREATEST = "max"
    LEAST = "min"
    NOW = _CLOCK.format("")
    LATER = _CLOCK.format(", ? || ' seconds'")
    FOR_UPDATE = ""
    SKIP_LOCKED = ""
    TAG_FILTER = "EXISTS (SELECT 1 FROM json_each(c.tags) WHERE value=?)"
    HOUR = "substr(sent_at, 1, 13)"
    ts = staticmethod(iso)
    # fromisoformat reads the "Z" of `iso` (Python 3.11+), ~50x faster than strptime.
    ts_out = staticmethod(datetime.fromisoformat)
    json = staticmethod(_json)
    json_out = staticmethod(_loads)

    @staticmethod
    def storable(text: str) -> str:
        return text

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
    def transaction(self, lock: str | None = None, *,
                    durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all. SQLite
        has one writer at a time, so every `lock` is already held. `durable`: the commit is on
        disk when this returns (synchronous=FULL syncs the WAL at COMMIT; NORMAL, the default,
        may lose the last commits on power loss, never corrupt the file)."""
        with self._lock:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")
            self._writes += 1

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None      # tuples: the mappers index by position
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

    def tag_param(self, tag: str) -> str:
        return tag

    def id_list(self, column: str, ids: Sequence[int]) -> tuple[str, str]:
        return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(ids))

    def json_int(self, expression: str, key: str) -> str:
        return f"json_extract({expression}, '$.{key}')"

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
            "WHERE messages_fts MATCH ? ORDER BY rank, m.id LIMIT ?", (match, limit))
        return [SearchHit(r[0], r[1], self.ts_out(r[2]), r[3], r[4], r[5]) for r in rows]

    def _scrub(self) -> None:
        """Leave no erased text behind: merge the FTS segments, rewrite the file, drop the WAL."""
        with self._lock:
            self._db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
