"""`agent-tui store migrate --to postgresql://...`: copy a SQLite store into empty PostgreSQL.

Every row of every table is copied with its id (so conversations, messages, notes, outbox rows,
proposals and hints keep pointing at each other), in one PostgreSQL transaction: a failure
leaves the target as it was. Timestamps become timestamptz, JSON text becomes jsonb; leases are
not copied (they belong to running processes and expire anyway). A target that already holds
agent-tui data is refused. The search index is built by the target's trigger as rows arrive.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_tui.errors import StoreError, UsageError
from agent_tui.store.encryption import connect, db_errors
from agent_tui.store.postgres import PostgresStore, _dumps, _text, describe_url, one_line
from agent_tui.store.schema import IDENTITY_TABLES
from agent_tui.store.sql import WRITE_LOCK
from agent_tui.store.sqlite import SqliteStore

# Copy order: parents before children (foreign keys hold at every row).
TABLES = ("contacts", "identities", "conversations", "messages", "notes", "cursors", "outbox",
          "tombstones", "auto_replies", "automation", "merge_proposals", "contact_hints")
NOT_COPIED = ("leases",)
# Tables whose rows make a target "not empty".
DATA_TABLES = ("contacts", "conversations", "messages", "outbox", "cursors", "tombstones")
BATCH = 500

Progress = Callable[[str, int, int], None]     # table, rows copied, rows in the table


@dataclass
class MigrateResult:
    source: str
    target: str
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"format": 1, "source": self.source, "target": self.target,
                "counts": self.counts}


def _column_types(store: PostgresStore, table: str) -> dict[str, str]:
    rows = store._query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema=current_schema() AND table_name=?", (table,))
    return {name: kind for name, kind in rows}


def _converter(kind: str) -> Callable[[Any], Any]:
    if kind == "timestamp with time zone":
        return lambda v: None if v in (None, "") else datetime.fromisoformat(v)
    if kind == "jsonb":
        return lambda v: None if v is None else _dumps(json.loads(v) if isinstance(v, str)
                                                       else v)
    if kind == "bytea":
        return lambda v: None if v is None else bytes(v)
    if kind == "text":
        return lambda v: _text(v) if isinstance(v, str) else v
    return lambda v: v


def migrate(source: str | Path, target_url: str, *, progress: Progress | None = None,
            key: str | None = None) -> MigrateResult:
    """Copy the SQLite store at `source` into the empty PostgreSQL database at `target_url`
    (`key`: the SQLite file's encryption key, if it is encrypted)."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise UsageError(f"{path}: no SQLite store to migrate")
    # Opening it brings an older file up to this version's schema first.
    sqlite_store = SqliteStore(path, key=key)
    sqlite_store.close()
    db = connect(path, key, readonly=True)
    target = PostgresStore(target_url)
    result = MigrateResult(str(path), describe_url(target_url))
    try:
        for table in DATA_TABLES:
            if target._query(f"SELECT EXISTS (SELECT 1 FROM {table})")[0][0]:
                raise UsageError(f"{result.target} is not empty ({table} has rows); "
                                 "migrate only into a new database")
        with target.transaction(WRITE_LOCK) as pg:
            for table in TABLES:
                result.counts[table] = _copy_table(db, target, pg, table, progress)
            for table in IDENTITY_TABLES:
                pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
    except db_errors() as exc:
        raise StoreError(f"{path}: {exc}") from None
    finally:
        db.close()
        target.close()
    return result


def _copy_table(db: sqlite3.Connection, target: PostgresStore, pg: Any, table: str,
                progress: Progress | None) -> int:
    types = _column_types(target, table)
    source_columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    columns = [c for c in source_columns if c in types]
    missing = [c for c in types if c not in source_columns and c != "search"]
    if missing:
        raise StoreError(f"{table}: the PostgreSQL schema has columns the SQLite store lacks: "
                         f"{', '.join(missing)}")
    convert = [_converter(types[c]) for c in columns]
    total = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    copied = 0
    names = ", ".join(columns)
    order = "rowid" if table not in ("cursors",) else "account, key"
    try:
        with pg.connection.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in db.execute(f"SELECT {names} FROM {table} ORDER BY {order}"):
                copy.write_row([f(v) for f, v in zip(convert, row, strict=True)])
                copied += 1
                if progress is not None and copied % BATCH == 0:
                    progress(table, copied, total)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"{table}: row {copied + 1} cannot be copied: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            raise StoreError(f"{table}: {one_line(exc)}") from None
        raise
    if progress is not None:
        progress(table, copied, total)
    return copied
