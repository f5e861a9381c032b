"""The PostgreSQL dialect: the team store, through psycopg 3.

`[store] path = "postgresql://user@host/db"` selects it. Passwords belong in ~/.pgpass or
$PGPASSWORD (libpq reads both), not in the config file (invariant 6); errors name host and
database, never the password.

One connection per store object, guarded by a lock (as the SQLite store), in autocommit mode:
reads see the latest commit, writes run in explicit transactions. `reader()` opens a second
connection for a thread that must not wait behind this one's writes (MVCC readers never block).

How it keeps SQLite's promises with several writers on several hosts:
- transactions with WRITE_LOCK (ingest, contacts, erase) or ASSIGN_LOCK take a
  transaction-scoped advisory lock, so threading and contact unification see what the previous
  writer committed, exactly as SQLite's single writer does.
- the shared queries lock the rows they read before a write (FOR_UPDATE) and claim outbox rows
  with `FOR UPDATE SKIP LOCKED`: two senders never claim the same row nor wait for each other.
- leases expire by the server's clock (`now()`), the one clock every host shares.
- text cannot hold NUL in PostgreSQL: one text dumper replaces it in every parameter.
- live updates: triggers NOTIFY `agent_tui_changes`; `data_version()` drains the notifications
  a dedicated LISTEN connection received, without reading any table (one non-blocking socket
  read); `wait_for_change(timeout)` blocks until one arrives.
- erase: rows deleted, then VACUUM FULL rewrites the tables that held the person's text (as
  SQLite's VACUUM does); retention (cron) runs plain VACUUM, never VACUUM FULL, which would lock
  the team out. PostgreSQL's WAL and backups are the operator's.
- search: a tsvector kept by a trigger, GIN-indexed, 'simple' configuration (no stemming:
  German compounds and names stay whole; every query word a prefix, as in SQLite) over text
  folded by `agent_tui_fold()`: lower(unaccent(text)) when the unaccent extension can be made
  (a trusted extension: a database owner may), else lower(text).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg.types.string import StrDumperUnknown

from agent_tui.errors import StoreError
from agent_tui.store.base import SearchHit
from agent_tui.store.schema import steps
from agent_tui.store.sql import ASSIGN_LOCK, WRITE_LOCK, SqlStore

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "agent_tui_changes"
# Tables whose changes a TUI shows; each NOTIFYs NOTIFY_CHANNEL when a statement changed rows.
NOTIFY_TABLES = ("contacts", "identities", "conversations", "messages", "notes", "outbox",
                 "leases")
SEARCH_TEXT_CHARS = 200_000     # a tsvector holds at most 1 MB; longer text is indexed in part
FOLD_UNACCENT = "SELECT lower({unaccent}('{dictionary}'::regdictionary, $1))"
FOLD_PLAIN = "SELECT lower($1)"

# Every connection: keepalives, so a server or a network that vanished is noticed within about a
# minute (and the server frees the locks of a client host that died); a statement timeout, so no
# query waits forever on a lock or a stalled server. `_scrub` lifts the timeout for VACUUM FULL.
STATEMENT_TIMEOUT = "60s"

# Advisory lock keys (arbitrary 64-bit numbers, fixed forever).
_LOCKS = {WRITE_LOCK: 0x6167_656E_7474_7569, ASSIGN_LOCK: 0x6167_656E_7461_7367}
_MIGRATE_LOCK = 0x6167_656E_746D_6967      # schema steps: one process at a time
_RUN_ONCE_LOCK = 0x6167_656E_7472_756E     # `run --once`: one run at a time on any host

# Tables that may hold a person's text; rewritten after an erase or a purge.
SCRUB_WAIT_SECONDS = 30.0
_SCRUB_TABLES = ("messages", "conversations", "contacts", "identities", "notes", "outbox",
                 "merge_proposals", "contact_hints", "automation")


def _notify_triggers(*tables: str) -> str:
    return "\n".join(
        f"CREATE TRIGGER {table}_notify_{event.lower()} AFTER {event} ON {table} "
        f"REFERENCING {transition} TABLE AS changed FOR EACH STATEMENT "
        "EXECUTE FUNCTION agent_tui_notify();"
        for table in tables
        for event, transition in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")))


# PostgreSQL's own objects of step 1: search (fold functions, tsvector column, trigger, GIN
# indexes) and change notification. {fold} is filled in when the step runs.
SEARCH_AND_NOTIFY = f"""
CREATE FUNCTION agent_tui_fold(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $fold$ {{fold}} $fold$;
-- Words only: mail addresses, URLs, numbers with dots split into their parts, as SQLite's
-- unicode61 tokenizer splits them, so `example` finds kim@example.org.
CREATE FUNCTION agent_tui_words(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $words$ SELECT regexp_replace(agent_tui_fold($1), '[@./:+_=&?#~\\-]+', ' ', 'g') $words$;
CREATE INDEX conversations_tags ON conversations USING GIN (tags jsonb_path_ops);
ALTER TABLE messages ADD COLUMN search TSVECTOR;
CREATE INDEX messages_search ON messages USING GIN (search);
CREATE FUNCTION agent_tui_message_search() RETURNS trigger LANGUAGE plpgsql AS $search$
BEGIN
    NEW.search :=
        setweight(to_tsvector('simple', agent_tui_words(NEW.subject)), 'A') ||
        setweight(to_tsvector('simple', agent_tui_words(NEW.sender || ' ' || NEW.sender_name)),
                  'B') ||
        to_tsvector('simple', agent_tui_words(left(NEW.text, {SEARCH_TEXT_CHARS})));
    RETURN NEW;
END
$search$;
CREATE TRIGGER messages_search BEFORE INSERT OR UPDATE OF subject, sender, sender_name, text
    ON messages FOR EACH ROW EXECUTE FUNCTION agent_tui_message_search();
CREATE FUNCTION agent_tui_notify() RETURNS trigger LANGUAGE plpgsql AS $notify$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$notify$;
{_notify_triggers(*NOTIFY_TABLES)}
"""

# Steps counted by the one row of `agent_tui_schema`, all in one transaction.
MIGRATIONS: list[str] = steps("postgres", {1: SEARCH_AND_NOTIFY,
                                           3: _notify_triggers("merge_proposals")})

_WORD = re.compile(r"\w+")
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; outside text may (it is data, invariant 3)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _dumps(value: Any) -> str:
    text = json.dumps(value, default=str)
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _same(value: Any) -> Any:
    return value


class _NulFreeText(StrDumperUnknown):
    """Every str parameter without NUL (replaced by U+FFFD)."""

    def dump(self, obj: str) -> Any:
        return super().dump(_text(obj))


@lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (and a literal `%` kept literal)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Transaction:
    """What a transaction hands to the shared queries: execute with `?` placeholders."""

    __slots__ = ("connection",)

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.connection.execute(_placeholders(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self.connection.cursor()
        cursor.executemany(_placeholders(sql), rows)
        return cursor


def describe_url(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, for messages (never the password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable URL)"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{host}{port}/{info.get('dbname') or ''}"


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PostgresStore(SqlStore):
    """The store on a PostgreSQL database. See the module docstring; API as SqliteStore."""

    GREATEST = "greatest"
    LEAST = "least"
    NOW = "now()"
    LATER = "now() + make_interval(secs => ?)"
    FOR_UPDATE = " FOR UPDATE"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    TAG_FILTER = "c.tags @> ?"
    HOUR = "to_char(date_trunc('hour', sent_at), 'YYYY-MM-DD\"T\"HH24')"
    ts = staticmethod(_aware)
    ts_out = staticmethod(_same)
    json = staticmethod(_jsonb)
    json_out = staticmethod(_same)
    storable = staticmethod(_text)

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.where = describe_url(url)
        self._lock = threading.RLock()
        self._writes = 0
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        self._notifications = 0
        self._changed: set[str] = set()
        self._depth = 0          # open transactions on this connection (never reconnect inside)
        self._db = self._connect()
        self.search_folding = "lower"
        if migrate:
            try:
                self._migrate()
            except psycopg.Error as exc:
                self._db.close()
                raise StoreError(f"{self.where}: not a usable agent-tui store: "
                                 f"{one_line(exc)}") from None
        self.search_folding = self._folding()

    def _connect(self, application_name: str = "agent-tui") -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, application_name=application_name,
                                   connect_timeout=10, keepalives=1, keepalives_idle=30,
                                   keepalives_interval=10, keepalives_count=3)
            conn.adapters.register_dumper(str, _NulFreeText)
            conn.execute("SELECT set_config('TimeZone', 'UTC', false), "
                         "set_config('statement_timeout', %s, false)", (STATEMENT_TIMEOUT,))
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot open the store: {one_line(exc)}") from None
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        """The store's connection; a new one when the server dropped the old (a restart, a
        network cut), which is only ever noticed between transactions."""
        if self._depth == 0 and (self._db.closed or self._db.broken):
            log.info("%s: connection lost, connecting again", self.where)
            self._db.close()
            self._db = self._connect()
        return self._db

    def _lost(self, db: psycopg.Connection[Any]) -> bool:
        """The statement failed because `db` is gone (not because of what it asked)."""
        return self._depth == 0 and (db.closed or db.broken)

    def _migrate(self) -> None:
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            self._db.execute("CREATE TABLE IF NOT EXISTS agent_tui_schema ("
                             "version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM agent_tui_schema").fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                self._db.execute("INSERT INTO agent_tui_schema(version) VALUES (0)")
            if version > len(MIGRATIONS):
                raise StoreError(f"{self.where}: written by a newer agent-tui (schema {version}, "
                                 f"this version knows {len(MIGRATIONS)}); upgrade agent-tui")
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
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
            log.info("%s: search without unaccent: %s", self.where, one_line(exc))
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
    def transaction(self, lock: str | None = None, *,
                    durable: bool = False) -> Iterator[_Transaction]:
        """One write transaction; `lock` (WRITE_LOCK, ASSIGN_LOCK) also takes that
        store-wide advisory lock, which serialises those writers as SQLite's one writer does.

        A connection the server dropped is replaced, and BEGIN repeated on the new one: nothing
        had been sent. A failure after BEGIN is never repeated here (at COMMIT its outcome is
        unknown): it raises StoreError, and the caller's next call connects again. `durable`:
        every commit is (PostgreSQL's synchronous_commit, on unless an operator turned it off)."""
        with self._lock:
            try:
                with ExitStack() as stack:
                    db = self._connection()
                    try:
                        stack.enter_context(db.transaction())
                    except psycopg.OperationalError:
                        if not self._lost(db):
                            raise
                        db = self._connection()
                        stack.enter_context(db.transaction())
                    self._depth += 1
                    stack.callback(self._leave)
                    if lock is not None:
                        db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCKS[lock],))
                    yield _Transaction(db)
            except psycopg.OperationalError as exc:
                raise StoreError(f"{self.where}: {one_line(exc)}") from None
            self._writes += 1

    def _leave(self) -> None:
        self._depth -= 1

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read; a read that met a dropped connection is read again on a new one."""
        with self._lock:
            db = self._connection()
            try:
                return db.execute(_placeholders(sql), params).fetchall()
            except psycopg.OperationalError as exc:
                if not self._lost(db):
                    raise StoreError(f"{self.where}: {one_line(exc)}") from None
            try:
                return self._connection().execute(_placeholders(sql), params).fetchall()
            except psycopg.OperationalError as exc:
                raise StoreError(f"{self.where}: {one_line(exc)}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    @contextmanager
    def run_once_lock(self) -> Iterator[bool]:
        """Yield True when this process holds the one `run --once` lock of the database, for
        every host: a session advisory lock on a connection of its own, which the server
        frees when the process dies (its socket closes) or its host does (keepalives)."""
        conn = self._connect("agent-tui run --once")
        try:
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)",
                                   (_RUN_ONCE_LOCK,)).fetchone()
            except psycopg.Error as exc:
                raise StoreError(f"{self.where}: {one_line(exc)}") from None
            yield bool(row and row[0])
        finally:
            conn.close()

    def reader(self) -> PostgresStore:
        """Another store on the same database with its own connection (the caller closes it)."""
        return PostgresStore(self.url, migrate=False)

    def tag_param(self, tag: str) -> Jsonb:
        return _jsonb([tag])

    def id_list(self, column: str, ids: Sequence[int]) -> tuple[str, list[int]]:
        return f"{column} = ANY(?)", list(ids)

    def json_int(self, expression: str, key: str) -> str:
        value = f"{expression}->>'{key}'"
        return f"CASE WHEN {value} ~ '^[0-9]{{1,18}}$' THEN ({value})::bigint END"

    # --- live updates (LISTEN/NOTIFY) -------------------------------------------------------

    def _listening(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed:
            try:
                self._listener = self._connect("agent-tui listen")
                self._listener.execute(
                    pgsql.SQL("LISTEN {}").format(pgsql.Identifier(NOTIFY_CHANNEL)))
            except (psycopg.Error, StoreError) as exc:
                raise StoreError(f"{self.where}: cannot listen for changes: "
                                 f"{one_line(exc)}") from None
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

    # --- search and scrub -----------------------------------------------------------------

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search, every word a prefix (`liefer` finds `Lieferzeit`), accents folded
        when unaccent is available. Any user text is safe: words are reduced to letters and
        digits and passed as a parameter."""
        words = _WORD.findall(_text(query))
        if not words:
            return []
        # Fold the words as the index folds the text, then make each a prefix term.
        folded = self._query("SELECT agent_tui_fold(?)", (" ".join(words),))[0][0]
        terms = [w for w in _WORD.findall(folded) if w]
        if not terms:
            return []
        tsquery = " & ".join(f"'{t}':*" for t in terms)
        rows = self._query(
            "SELECT m.id, m.conversation_id, m.sent_at, m.sender, m.subject, "
            f"left(m.text, {SNIPPET_SCAN_CHARS}) FROM messages m, to_tsquery('simple', ?) q "
            "WHERE m.search @@ q ORDER BY ts_rank(m.search, q) DESC, m.sent_at DESC, m.id "
            "LIMIT ?", (tsquery, limit))
        return [SearchHit(r[0], r[1], r[2], r[3], r[4], snippet(r[5], terms)) for r in rows]

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

    def _after_purge(self) -> None:
        """Retention runs from cron: plain VACUUM, which marks the deleted rows' space free for
        reuse without the exclusive lock of VACUUM FULL (that would lock the whole team out for
        as long as it rewrites the tables). An erasure still rewrites them."""
        with self._lock:
            db = self._connection()
            for table in _SCRUB_TABLES:
                try:
                    db.execute(pgsql.SQL("VACUUM (ANALYZE) {}").format(pgsql.Identifier(table)))
                except psycopg.Error as exc:
                    log.warning("%s: VACUUM %s failed: %s", self.where, table, one_line(exc))

    def _scrub(self) -> None:
        """Leave no erased text in the tables' files: rewrite them (and their indexes), and
        recompute their statistics (which sample column values)."""
        if not self._wait_for_older_snapshots():
            log.warning("%s: a transaction older than the erasure is still open; erased text "
                        "stays in the table files until the next VACUUM FULL", self.where)
        with self._lock:
            db = self._connection()
            db.execute("SET statement_timeout = 0")      # a big table takes its time
            try:
                for table in _SCRUB_TABLES:
                    try:
                        db.execute(pgsql.SQL("VACUUM (FULL, ANALYZE) {}").format(
                            pgsql.Identifier(table)))
                    except psycopg.Error as exc:
                        log.warning("%s: VACUUM FULL %s failed, erased text may remain in free "
                                    "space until PostgreSQL reuses it: %s", self.where, table,
                                    one_line(exc))
            finally:
                if not db.broken:
                    db.execute("SELECT set_config('statement_timeout', %s, false)",
                               (STATEMENT_TIMEOUT,))


# --- search snippets: the shape of SQLite's FTS5 snippet() -----------------------------------

SNIPPET_TOKENS = 12             # as SQLite's snippet(..., 12)
SNIPPET_SCAN_CHARS = 20_000     # a snippet comes from the start of long messages


def _fold_word(word: str) -> str:
    """Roughly what agent_tui_fold does to one word (for highlighting only)."""
    decomposed = unicodedata.normalize("NFKD", word.replace("ß", "ss").replace("ẞ", "SS"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def snippet(text: str, terms: Sequence[str]) -> str:
    """Up to 12 words around the first match, matches «marked», … where text was cut."""
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
