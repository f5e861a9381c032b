"""The one schema description: both live schemas have the same columns, each is what the
shipped DDL made, and databases made by older versions open and upgrade (issue 18)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agent_tui.store import open_store
from agent_tui.store.schema import STEPS, TYPES, Table, render
from agent_tui.store.sqlite import MIGRATIONS
from tests.conftest import shipped_steps, store_sql

TABLES = [t.name for step in STEPS for t in step if isinstance(t, Table)]
POSTGRES_ONLY_COLUMNS = {("messages", "search")}      # the tsvector; SQLite has messages_fts
# The logical type of a column, read back from each database's own name for it.
_PG_NAMES = {"BIGINT": "bigint", "INTEGER": "integer", "TEXT": "text", "JSONB": "jsonb",
             "TIMESTAMPTZ": "timestamp with time zone", "DOUBLE PRECISION": "double precision",
             "BYTEA": "bytea"}


def _logical(sqlite_type: str, pg_type: str) -> set[str]:
    return {name for name, by in TYPES.items()
            if by["sqlite"].split()[0] == sqlite_type
            and _PG_NAMES[by["postgres"].split(" GENERATED")[0].split(" PRIMARY")[0]] == pg_type}


def sqlite_columns(db: Any) -> dict[str, list[tuple[str, str, bool, str | None]]]:
    """table -> [(column, declared type, not null, default)]; a primary key is not null."""
    return {table: [(r[1], r[2], bool(r[3] or r[5]), r[4])
                    for r in db.execute(f"PRAGMA table_info({table})")] for table in TABLES}


def sqlite_structure(db: Any) -> dict[str, Any]:
    """Everything a migration makes, as SQLite describes it (not the text of the DDL)."""
    indexes = {}
    for table in TABLES:
        for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list({table})"):
            columns = [(r[2], r[3]) for r in db.execute(f"PRAGMA index_xinfo({name})") if r[5]]
            indexes[name] = (table, bool(unique), origin, bool(partial), columns)
    others = sorted((r[0], r[1], r[2]) for r in db.execute(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('trigger', 'table')"))
    keys = {t: db.execute(f"PRAGMA foreign_key_list({t})").fetchall() for t in TABLES}
    return {"columns": sqlite_columns(db), "indexes": indexes, "objects": others, "fks": keys}


def pg_columns(store: Any) -> dict[str, list[tuple[str, str, bool, str | None]]]:
    rows = store_sql(store, "SELECT table_name, column_name, data_type, is_nullable, "
                            "column_default FROM information_schema.columns "
                            "WHERE table_schema=current_schema() ORDER BY table_name, "
                            "ordinal_position")
    out: dict[str, list[tuple[str, str, bool, str | None]]] = {t: [] for t in TABLES}
    for table, column, kind, nullable, default in rows:
        if table in out:
            out[table].append((column, kind, nullable == "NO", default))
    return out


def pg_structure(store: Any) -> dict[str, Any]:
    def rows(sql: str) -> list[Any]:
        return sorted(tuple(r) for r in store_sql(store, sql))

    return {
        "columns": pg_columns(store),
        "indexes": rows("SELECT tablename, indexname, indexdef FROM pg_indexes "
                        "WHERE schemaname=current_schema()"),
        "constraints": rows("SELECT conrelid::regclass::text, conname, "
                            "pg_get_constraintdef(oid) FROM pg_constraint "
                            "WHERE connamespace=current_schema()::regnamespace"),
        "triggers": rows("SELECT event_object_table, trigger_name, event_manipulation, "
                         "action_timing FROM information_schema.triggers "
                         "WHERE trigger_schema=current_schema()"),
        "functions": rows("SELECT proname FROM pg_proc p "     # ours, not unaccent's
                          "WHERE pronamespace=current_schema()::regnamespace AND NOT EXISTS "
                          "(SELECT 1 FROM pg_depend d WHERE d.objid=p.oid AND d.deptype='e')"),
    }


def _make_sqlite(path: Path, steps: list[str]) -> None:
    db = sqlite3.connect(path)
    for step in steps:
        db.executescript(step)
    db.execute(f"PRAGMA user_version={len(steps)}")
    db.commit()
    db.close()


def _make_postgres(url: str, steps: list[str]) -> None:
    import psycopg

    from agent_tui.store.postgres import FOLD_PLAIN

    with psycopg.connect(url, autocommit=True) as db:
        for step in steps:
            db.execute(step.replace("{fold}", FOLD_PLAIN).encode())
        db.execute(f"CREATE TABLE agent_tui_schema (version INTEGER NOT NULL); "
                   f"INSERT INTO agent_tui_schema VALUES ({len(steps)})".encode())


@pytest.mark.postgres
def test_the_live_schemas_have_the_same_columns(tmp_path: Path, postgres_url: str) -> None:
    lite = open_store(tmp_path / "agent.db")
    pg = open_store(postgres_url)
    sqlite_tables = sqlite_columns(lite._db)
    pg_tables = pg_columns(pg)
    assert set(sqlite_tables) == set(pg_tables) == set(TABLES)
    for table in TABLES:
        pg_rows = [c for c in pg_tables[table] if (table, c[0]) not in POSTGRES_ONLY_COLUMNS]
        assert [c[0] for c in sqlite_tables[table]] == [c[0] for c in pg_rows], table
        for (name, sqlite_type, sqlite_not_null, sqlite_default), \
                (_, pg_type, pg_not_null, pg_default) in zip(sqlite_tables[table], pg_rows,
                                                             strict=True):
            assert _logical(sqlite_type, pg_type), (table, name, sqlite_type, pg_type)
            assert sqlite_not_null == pg_not_null, (table, name)
            # PostgreSQL writes a default with its type: '[]'::jsonb
            assert sqlite_default == (pg_default and re.sub(r"::[a-z ]+$", "", pg_default)), \
                (table, name)
    lite.close()
    pg.close()


def test_a_new_sqlite_store_has_exactly_the_shipped_schema(tmp_path: Path) -> None:
    _make_sqlite(tmp_path / "shipped.db", shipped_steps("sqlite", len(MIGRATIONS)))
    open_store(tmp_path / "new.db").close()
    shipped = sqlite3.connect(tmp_path / "shipped.db")
    new = sqlite3.connect(tmp_path / "new.db")
    assert sqlite_structure(new) == sqlite_structure(shipped)
    shipped.close()
    new.close()


@pytest.mark.postgres
def test_a_new_postgres_store_has_exactly_the_shipped_schema(postgres_server: Any) -> None:
    shipped_url = postgres_server.create_database()
    new_url = postgres_server.create_database()
    _make_postgres(shipped_url, shipped_steps("postgres", len(MIGRATIONS)))
    shipped = open_store(shipped_url)      # at the current version already: nothing to do
    new = open_store(new_url)
    assert pg_structure(new) == pg_structure(shipped)
    shipped.close()
    new.close()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
def test_a_sqlite_store_of_an_older_version_opens_and_upgrades(tmp_path: Path,
                                                               version: int) -> None:
    path = tmp_path / "old.db"
    _make_sqlite(path, shipped_steps("sqlite", version))
    db = sqlite3.connect(path)
    db.execute("INSERT INTO contacts(display_name, created_at) "
               "VALUES ('Kim', '2026-01-01T00:00:00.000000Z')")
    db.commit()
    db.close()
    store = open_store(path)
    assert store.get_contact(1).display_name == "Kim"
    store.close()
    open_store(tmp_path / "new.db").close()
    upgraded, new = sqlite3.connect(path), sqlite3.connect(tmp_path / "new.db")
    assert upgraded.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert sqlite_structure(upgraded) == sqlite_structure(new)
    upgraded.close()
    new.close()


@pytest.mark.postgres
@pytest.mark.parametrize("version", [1, 3])
def test_a_postgres_store_of_an_older_version_opens_and_upgrades(postgres_server: Any,
                                                                 version: int) -> None:
    old_url = postgres_server.create_database()
    _make_postgres(old_url, shipped_steps("postgres", version))
    import psycopg

    with psycopg.connect(old_url, autocommit=True) as db:
        db.execute("INSERT INTO contacts(display_name, created_at) VALUES ('Kim', now())")
    store = open_store(old_url)
    new = open_store(postgres_server.create_database())
    assert store.get_contact(1).display_name == "Kim"
    assert store_sql(store, "SELECT version FROM agent_tui_schema") == [(len(MIGRATIONS),)]
    assert pg_structure(store) == pg_structure(new)
    store.close()
    new.close()


def test_each_dialect_renders_every_table_and_its_own_extras() -> None:
    sqlite_ddl = render(STEPS[0], "sqlite", "-- sqlite only")
    postgres_ddl = render(STEPS[0], "postgres")
    assert "id INTEGER PRIMARY KEY," in sqlite_ddl and "tags TEXT NOT NULL DEFAULT '[]'" \
        in sqlite_ddl and sqlite_ddl.rstrip().endswith("-- sqlite only")
    assert "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in postgres_ddl
    assert "tags JSONB NOT NULL DEFAULT '[]'" in postgres_ddl
    assert "identities_address" in postgres_ddl and "identities_address" not in sqlite_ddl
    assert "(last_activity_at DESC, id)" in postgres_ddl \
        and "(last_activity_at DESC)" in sqlite_ddl
