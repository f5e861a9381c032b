"""The one place that opens SQLite connections to the store, optionally encrypted at rest.

Without `[store] encryption_key` the store is a plain SQLite file opened with the standard
`sqlite3` module. With a key it is opened through SQLCipher (`sqlcipher3.dbapi2`, the
`encryption` extra: pip install 'agent-tui[encryption]'), a drop-in DB-API module whose pages,
including those in the WAL file, are encrypted with AES-256 and authenticated with HMAC-SHA512;
`PRAGMA key` is the first statement on every connection. The key is resolved from its secret
reference at every start (keyring, env: or cmd:) and never written anywhere by agent-tui.

A wrong key, an unencrypted file opened with a key and an encrypted file opened without one all
raise StoreError with one line that names the store's path, never the key.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
import weakref
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from agent_tui.errors import SecretError, StoreError

if TYPE_CHECKING:
    from agent_tui.config import StoreConfig

SQLCIPHER_MODULE = "sqlcipher3.dbapi2"
INSTALL_HINT = "pip install 'agent-tui[encryption]'"
PLAIN_HEADER = b"SQLite format 3\x00"   # the first 16 bytes of every unencrypted SQLite file
_HOWTO = "see README: Customers and data protection"


def store_key(store: StoreConfig) -> str | None:
    """The resolved `[store] encryption_key`, or None when the store is not encrypted.

    Resolved (and registered for log redaction) each time it is called: the key is asked from
    the secret store at every start, never cached on disk.
    """
    if store.encryption_key is None:
        return None
    from agent_tui.secrets import resolve_secret

    try:
        return resolve_secret(store.encryption_key, account="store", key="encryption_key")
    except SecretError as exc:
        # resolve_secret labels its errors for accounts; say which setting this is instead
        message = str(exc).replace("account 'store' 'encryption_key'",
                                   "[store] 'encryption_key'", 1)
        raise SecretError(message) from None


def db_errors() -> tuple[type[Exception], ...]:
    """The DB-API error classes a store connection may raise: sqlite3's, and SQLCipher's once
    it is loaded (its classes do not derive from sqlite3's). Use as `except db_errors():`."""
    cipher = sys.modules.get(SQLCIPHER_MODULE)
    if cipher is None:
        return (sqlite3.Error,)
    return (sqlite3.Error, cast(type[Exception], cipher.Error))


def _sqlcipher(path: Path) -> ModuleType:
    try:
        import sqlcipher3.dbapi2 as module
    except ImportError:
        raise StoreError(f"{path}: [store] encryption_key is set but SQLCipher is not installed: "
                         f"{INSTALL_HINT}") from None
    return cast(ModuleType, module)


def sqlcipher_version() -> str | None:
    """The SQLCipher version of the installed `encryption` extra, or None without it."""
    try:
        import sqlcipher3.dbapi2 as module
    except ImportError:
        return None
    db = module.connect(":memory:")
    try:
        return str(db.execute("PRAGMA cipher_version").fetchone()[0])
    finally:
        db.close()


# This process's connections by store file: while one is open, the file is not read directly.
_OPEN: dict[Path, weakref.WeakSet[Any]] = {}


def _has_open_connection(path: Path) -> bool:
    for connection in list(_OPEN.get(path, ())):
        try:
            _ = connection.total_changes    # raises once the connection is closed
        except Exception:                   # sqlite3's or SQLCipher's ProgrammingError
            continue
        return True
    return False


@functools.cache
def _tracked_connection(driver: Any) -> type:
    """The driver's Connection class, made weak-referenceable for `_OPEN`."""
    return type("TrackedConnection", (driver.Connection,), {})


def file_is_plaintext(path: Path) -> bool | None:
    """True for an unencrypted SQLite file, False for anything else, None when it is empty
    or missing (a new store: either way works)."""
    try:
        with path.open("rb") as f:
            header = f.read(len(PLAIN_HEADER))
    except FileNotFoundError:
        return None
    if not header:
        return None
    return header == PLAIN_HEADER


def _quote(key: str) -> str:
    return "'" + key.replace("'", "''") + "'"


def connect(path: str | Path, key: str | None, *, readonly: bool = False,
            **kwargs: Any) -> sqlite3.Connection:
    """A connection to the store file at `path`, rows as `Row` (by name and by index).

    `key` None opens it with sqlite3; a key opens it with SQLCipher, `PRAGMA key` first.
    `readonly` opens it with mode=ro. Other keyword arguments go to `connect()` (timeout,
    isolation_level, check_same_thread). Raises StoreError (one line, naming the path).
    """
    path = Path(path).expanduser()
    # Read the header only before this process holds a connection to the file: closing any
    # descriptor of a file drops all of this process's POSIX locks on it, SQLite's included, and
    # another process would then take itself for the last connection and delete the WAL.
    checked = path.resolve()
    plaintext = None if _has_open_connection(checked) else file_is_plaintext(path)
    if key is None and plaintext is False:
        raise StoreError(f"{path}: the store is encrypted (or not a SQLite file); set "
                         f"[store] encryption_key to its key ({_HOWTO})")
    if key is not None and plaintext is True:
        raise StoreError(f"{path}: [store] encryption_key is set but the store is not encrypted; "
                         f"remove the key or encrypt the file first ({_HOWTO})")
    if key is not None and not key:
        raise StoreError(f"{path}: [store] encryption_key is empty")
    driver: Any = sqlite3 if key is None else _sqlcipher(path)
    target: str | Path = path
    if readonly:
        target, kwargs = f"{path.resolve().as_uri()}?mode=ro", {**kwargs, "uri": True}
    try:
        db = driver.connect(target, factory=_tracked_connection(driver), **kwargs)
    except driver.Error as exc:
        raise StoreError(f"{path}: cannot open the store: {exc}") from None
    try:
        if key is not None:
            db.execute(f"PRAGMA key = {_quote(key)}")       # must come first
            db.execute("PRAGMA cipher_log_level = NONE")    # a wrong key is our one-line error
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except driver.Error as exc:
        db.close()
        if key is None and "not a database" in str(exc):
            raise StoreError(f"{path}: the store is encrypted (or not a SQLite file); set "
                             f"[store] encryption_key to its key ({_HOWTO})") from None
        if key is None:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        # SQLCipher says only "file is not a database": the key does not fit this file
        raise StoreError(f"{path}: cannot decrypt the store: wrong [store] encryption_key "
                         "(or the file is not an agent-tui store)") from None
    db.row_factory = driver.Row
    _OPEN.setdefault(checked, weakref.WeakSet()).add(db)
    return cast(sqlite3.Connection, db)


def is_encrypted(path: str | Path) -> bool:
    """Whether the store file exists and is not a plain SQLite file (doctor's report)."""
    return file_is_plaintext(Path(path).expanduser()) is False


def encryption_detail(store: StoreConfig) -> str:
    """How the SQLite store is protected at rest, for `agent-tui doctor` (after it opened)."""
    if not is_encrypted(store.path):
        return "not encrypted at rest; see [store] encryption_key"
    version = sqlcipher_version()
    return f"encrypted at rest with SQLCipher {version}" if version else "encrypted at rest"
