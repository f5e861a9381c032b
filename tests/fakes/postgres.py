"""A real PostgreSQL server, started unprivileged in a temporary directory on loopback.

Used by the store tests that run against PostgreSQL (tests/conftest.py: `postgres_server`,
`postgres_url`). The Debian package `postgresql` puts its binaries under
/usr/lib/postgresql/<version>/bin; `$PG_BIN` names another directory. `PostgresServer.binaries()`
returns None when none is found, so the fixture can skip (or fail under REQUIRE_INTEGRATION=1).

initdb refuses to run as root: as root the cluster belongs to the `postgres` system user (the
Debian package creates it) or `nobody`, and every server process runs as that user. The cluster
trusts loopback connections (it is private to the test run) and is tuned for speed, not safety
(fsync off). One cluster serves a whole session; every test gets a fresh database, made from a
template in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent_tui.loopback import free_port

STARTUP_DEADLINE = 30.0
SUPERUSER = "agent_tui"


class PostgresServer:
    """One PostgreSQL cluster. Use as a context manager, or call start()/close() yourself."""

    host = "127.0.0.1"

    def __init__(self, bindir: Path | None = None, port: int | None = None) -> None:
        found = bindir or self.binaries()
        if found is None:
            raise RuntimeError("PostgreSQL binaries not found (Debian: apt-get install postgresql)")
        self.bindir = found
        self.port = port or free_port()
        # Not under pytest's tmp dirs: they are 0700 root's when running as root.
        self.root = Path(tempfile.mkdtemp(prefix="agent-tui-pg-"))
        self.data = self.root / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = _unprivileged_user()
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._templates: set[str] = set()
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-createdb")
        self._spares: dict[str, Future[str]] = {}

    @staticmethod
    def binaries() -> Path | None:
        """The directory with initdb and postgres: $PG_BIN, the newest Debian version, PATH."""
        candidates: list[Path] = []
        if os.environ.get("PG_BIN"):
            candidates.append(Path(os.environ["PG_BIN"]))
        versions = Path("/usr/lib/postgresql")
        if versions.is_dir():
            numbered = [p for p in versions.iterdir() if p.name.split(".")[0].isdigit()]
            candidates += [p / "bin" for p in sorted(
                numbered, key=lambda p: float(p.name) if p.name.replace(".", "").isdigit()
                else 0.0, reverse=True)]
        initdb = shutil.which("initdb")
        if initdb:
            candidates.append(Path(initdb).parent)
        for candidate in candidates:
            if (candidate / "initdb").exists() and (candidate / "postgres").exists():
                return candidate
        return None

    def _run_as(self) -> dict[str, Any]:
        """Popen arguments that drop root to the cluster's user (nothing otherwise)."""
        if self._user is None:
            return {}
        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": str(self.root)}, "cwd": self.root}

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
                 "--no-instructions"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                **self._run_as())
        log = (self.root / "postgres.log").open("ab")
        self._process = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data),
             "-c", f"listen_addresses={self.host}", "-p", str(self.port),
             "-c", f"unix_socket_directories={self.root}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "shared_buffers=32MB",
             "-c", "log_min_messages=warning"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, **self._run_as())
        log.close()
        try:
            self._wait_ready(time.monotonic() + STARTUP_DEADLINE)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from None

    def _wait_ready(self, deadline: float) -> None:
        import psycopg

        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._process.returncode}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                last_error = exc
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections on port {self.port}: "
                           f"{last_error}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGQUIT)    # immediate shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def restart(self) -> None:
        """Restart the server as an operator does (a fast shutdown: every client's connection
        drops, open transactions are rolled back, committed ones kept; the cluster runs with
        synchronous_commit off, so an immediate shutdown could lose the last commits) on the
        same port and data."""
        for spare in self._spares.values():          # a database being made must not be cut
            spare.exception()
        process = self._process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=30)
        self._process = None
        self.start()

    def close(self) -> None:
        self._maker.shutdown(wait=True, cancel_futures=True)
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "postgres.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # ---- databases -------------------------------------------------------------------------

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE) as the superuser."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, *, template: str = "template0", name: str | None = None) -> str:
        """A new empty database (or a copy of `template`); returns its URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def next_database(self, template: str) -> str:
        """A fresh copy of `template`; the next one is made in the background meanwhile
        (CREATE DATABASE takes ~0.3 s, longer than most store tests)."""
        spare = self._spares.pop(template, None)
        url = spare.result() if spare is not None else self.create_database(template=template)
        self._spares[template] = self._maker.submit(self.create_database, template=template)
        return url

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def template(self, name: str, prepare: Any) -> str:
        """A template database made once by `prepare(url)` (e.g. a migrated schema)."""
        if name not in self._templates:
            url = self.create_database(name=name)
            prepare(url)
            self._templates.add(name)
        return name

    def data_files(self) -> list[Path]:
        """The cluster's table and index files (for tests that look for erased text)."""
        return [p for p in (self.data / "base").rglob("*") if p.is_file()]


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, but neither a 'postgres' nor a 'nobody' user exists")
