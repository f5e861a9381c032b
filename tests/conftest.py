"""Shared test helpers: where the shared data lives, and how a missing server is reported."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def require_integration() -> bool:
    return os.environ.get("REQUIRE_INTEGRATION") == "1"


def missing(reason: str) -> None:
    """Skip for a missing server or data set, or fail when CI requires integration tests."""
    if require_integration():
        pytest.fail(f"REQUIRE_INTEGRATION=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        missing(f"shared data not found at {SHARED_DATA} (CI has it beside the checkout)")
    return SHARED_DATA


# --- PostgreSQL (tests/fakes/postgres.py): one cluster per session, a fresh database per test ---


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A private PostgreSQL cluster on loopback, or a skip (a failure under
    REQUIRE_INTEGRATION=1) when psycopg or the server binaries are missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed (pip install -e '.[postgres]')")
    from tests.fakes.postgres import PostgresServer

    if PostgresServer.binaries() is None:
        missing("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    server = PostgresServer()
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        server.close()
        missing(f"PostgreSQL did not start: {exc}")
    yield server
    server.close()


def _migrated(url: str) -> None:
    from agent_tui.store.postgres import PostgresStore

    PostgresStore(url).close()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh database with the current schema (copied from a template made once)."""
    template = postgres_server.template("agent_tui_template", _migrated)
    url: str = postgres_server.next_database(template)
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def empty_postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh database without any table."""
    url: str = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The store on each backend: a SQLite file, then a fresh PostgreSQL database."""
    from agent_tui.store import open_store

    if request.param == "sqlite":
        store = open_store(tmp_path / "data" / "agent.db")
    else:
        store = open_store(request.getfixturevalue("postgres_url"))
    yield store
    store.close()


@pytest.fixture
def store(any_store: Any) -> Any:
    """`store` in a test: each test runs on SQLite and on PostgreSQL (modules with a store of
    their own define this fixture again)."""
    return any_store


def contact_of(store: Any, address: str) -> int:
    """The id of the contact an address belongs to; the contact must exist."""
    found: int | None = store.find_contact(address)
    assert found is not None
    return found


def store_sql(store: Any, statement: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run raw SQL (with `?` placeholders) on either backend's connection, for tests that
    reach behind the API (age a lease, fake a crashed sender)."""
    if type(store).__name__ == "PostgresStore":
        cursor = store._db.execute(statement.replace("?", "%s").encode(), params)
        return list(cursor.fetchall()) if cursor.description else []
    return list(store._db.execute(statement, params).fetchall())


def reopen_store(store: Any) -> Any:
    """A second store object on the same file or database."""
    from agent_tui.store import open_store

    return open_store(store.url if type(store).__name__ == "PostgresStore" else store.path)


def store_files(store: Any, request: pytest.FixtureRequest) -> list[Path]:
    """The files that hold a store's data: the SQLite file and its WAL, or the PostgreSQL
    database's table and index files (after a checkpoint; the cluster's WAL is not included:
    erasing from it is the operator's retention, as for backups)."""
    if type(store).__name__ != "PostgresStore":
        return [p for p in (Path(f"{store.path}{s}") for s in ("", "-wal")) if p.exists()]
    server = request.getfixturevalue("postgres_server")
    oid = store_sql(store, "SELECT oid FROM pg_database WHERE datname=current_database()")[0][0]
    store_sql(store, "CHECKPOINT")
    return [p for p in (server.data / "base" / str(oid)).rglob("*") if p.is_file()]


SHIPPED_SCHEMA = Path(__file__).parent / "fixtures" / "store_schema"


def shipped_steps(dialect: str, upto: int) -> list[str]:
    """The DDL of migration steps 1..upto as released agent-tui versions ran them
    (`sqlite` or `postgres`; the PostgreSQL step 1 has a `{fold}` placeholder), to make
    databases the way older versions made them."""
    return [(SHIPPED_SCHEMA / f"{dialect}-{n}.sql").read_text() for n in range(1, upto + 1)]
