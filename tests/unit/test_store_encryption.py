"""Encryption at rest of the SQLite store with SQLCipher (`[store] encryption_key`, issue 13).

SQLite only: the PostgreSQL store is protected by the server's own disk encryption.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_tui.cli import main
from agent_tui.config import load_config
from agent_tui.errors import ConfigError, SecretError, StoreError
from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import open_store
from agent_tui.store.encryption import connect, is_encrypted, store_key
from agent_tui.store.migrate import migrate
from agent_tui.store.sqlite import SqliteStore

pytest.importorskip("sqlcipher3.dbapi2", reason="needs the `encryption` extra (sqlcipher3-binary)")

KEY = "correct horse battery staple"
WORD = "Zebrafinkentresor"          # a unique word: must never appear in the files' bytes
ENV = "AGENT_TUI_TEST_STORE_KEY"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _message(n: int, text: str) -> InboundMessage:
    return InboundMessage(
        channel=Channel.SMS, provider_id=f"SM{n}", direction=Direction.INBOUND,
        sender="+491701234567", sender_name="Kim Zebra", recipients=[], sent_at=T0,
        subject="", text=text)


def _seed(path: Path, key: str | None = KEY) -> SqliteStore:
    store = SqliteStore(path, key=key)
    store.ingest("sms", [_message(1, f"Bitte den {WORD} liefern"), _message(2, "Danke")],
                 cursor_key="m", cursor=None)
    return store


def _files(path: Path) -> list[Path]:
    return [p for p in (Path(f"{path}{s}") for s in ("", "-wal")) if p.exists()]


def _raw_hits(path: Path, *words: str) -> list[str]:
    hits = []
    for file in _files(path):
        data = file.read_bytes()
        hits += [f"{file.name}: {w}" for w in words
                 if w.encode() in data or w.encode("utf-16-le") in data]
    return hits


def _config(tmp_path: Path, key_line: str = f'encryption_key = "env:{ENV}"') -> Path:
    config = tmp_path / "agent-tui.toml"
    config.write_text(f'[store]\npath = "agent.db"\n{key_line}\n[knowledge]\n'
                      'path = "knowledge.toml"\n', encoding="utf-8")
    config.chmod(0o600)
    return config


# --- the file's bytes ------------------------------------------------------------------------


def test_encrypted_store_and_wal_hold_no_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    store = _seed(path)
    wal = Path(f"{path}-wal")
    assert wal.exists() and wal.stat().st_size > 0     # the words are in the WAL right now...
    assert _raw_hits(path, WORD, "Kim Zebra", "+491701234567", "CREATE TABLE") == []
    store.close()                                       # ...and in the main file after closing
    assert path.stat().st_size > 0
    assert _raw_hits(path, WORD, "Kim Zebra", "+491701234567", "CREATE TABLE") == []
    assert not path.read_bytes().startswith(b"SQLite format 3")
    assert is_encrypted(path)


def test_the_same_store_without_a_key_is_readable_in_its_bytes(tmp_path: Path) -> None:
    """The control: the search above would find the word in an unencrypted store."""
    path = tmp_path / "agent.db"
    store = _seed(path, key=None)
    store.close()
    assert _raw_hits(path, WORD)
    assert not is_encrypted(path)


# --- it works as usual -----------------------------------------------------------------------


def test_encrypted_store_works_as_usual_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    store = _seed(path)
    [hit] = store.search(WORD)                        # FTS5 inside SQLCipher
    reader = store.reader()                           # a second connection with the same key
    assert [c.id for c in reader.list_conversations()] == [hit.conversation_id]
    reader.close()
    store.close()

    again = open_store(path, key=KEY)
    assert [h.conversation_id for h in again.search(WORD)] == [hit.conversation_id]
    texts = [m.text for m in again.get_messages(hit.conversation_id)]
    assert texts == [f"Bitte den {WORD} liefern", "Danke"]
    again.ingest("sms", [_message(3, "Noch eine Frage")], cursor_key="m", cursor=None)
    assert len(again.get_messages(hit.conversation_id)) == 3
    again.close()

    db = connect(path, KEY, readonly=True)           # `store migrate` reads this way
    try:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
        row = db.execute("SELECT text FROM messages WHERE id = 1").fetchone()
        assert row["text"] == row[0]                   # rows by name and by index, as sqlite3.Row
    finally:
        db.close()


# --- wrong keys give one clear line ----------------------------------------------------------


def test_wrong_key_is_a_one_line_error_naming_the_path_not_the_key(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.db"
    _seed(path).close()
    capfd.readouterr()
    for open_it in (lambda: SqliteStore(path, key="not the key"),
                    lambda: connect(path, "not the key", readonly=True)):
        with pytest.raises(StoreError) as caught:
            open_it()
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "wrong [store] encryption_key" in message
        assert "\n" not in message and "not the key" not in message and KEY not in message
    assert capfd.readouterr().err == ""              # SQLCipher's own log stays quiet


def test_encrypted_store_without_key_and_plain_store_with_key(tmp_path: Path) -> None:
    encrypted, plain = tmp_path / "encrypted.db", tmp_path / "plain.db"
    _seed(encrypted).close()
    _seed(plain, key=None).close()
    with pytest.raises(StoreError, match=r"encrypted.db: the store is encrypted .*set \[store\] "
                                         "encryption_key"):
        SqliteStore(encrypted)
    with pytest.raises(StoreError, match=r"encrypted.db: the store is encrypted"):
        connect(encrypted, None, readonly=True)
    with pytest.raises(StoreError, match=r"plain.db: \[store\] encryption_key is set but the "
                                         "store is not encrypted"):
        SqliteStore(plain, key=KEY)
    with pytest.raises(StoreError, match="not encrypted"):
        connect(plain, KEY, readonly=True)
    # neither file was touched by the refused opens
    assert SqliteStore(plain).search(WORD) and SqliteStore(encrypted, key=KEY).search(WORD)


def test_missing_sqlcipher_names_the_extra(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "sqlcipher3.dbapi2", None)  # ImportError
    with pytest.raises(StoreError, match=r"install 'agent-tui\[encryption\]'"):
        connect(tmp_path / "agent.db", KEY)


def test_migrate_reads_an_encrypted_store(tmp_path: Path) -> None:
    """`store migrate` opens the source with the key (up to the PostgreSQL connection)."""
    path = tmp_path / "agent.db"
    _seed(path).close()
    with pytest.raises(StoreError, match="wrong"):
        migrate(path, "postgresql://nobody@127.0.0.1:1/none", key="not the key")


# --- config ----------------------------------------------------------------------------------


def test_config_reads_the_key_as_a_secret_reference(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(_config(tmp_path), env={})
    assert str(config.store.encryption_key) == f"env:{ENV}"
    monkeypatch.setenv(ENV, KEY)
    assert store_key(config.store) == KEY
    monkeypatch.delenv(ENV)
    with pytest.raises(SecretError, match=rf"\[store\] 'encryption_key' \(env:{ENV}\): "
                                          f"environment variable {ENV} is not set"):
        store_key(config.store)

    assert load_config(_config(tmp_path, ""), env={}).store.encryption_key is None
    assert load_config(_config(tmp_path, 'encryption_key = ""'),
                       env={}).store.encryption_key is None


def test_plaintext_key_follows_the_plaintext_secrets_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plaintext secrets are refused"):
        load_config(_config(tmp_path, f'encryption_key = "{KEY}"'), env={})
    path = _config(tmp_path, f'encryption_key = "{KEY}"')
    path.write_text("allow_plaintext_secrets = true\n" + path.read_text(encoding="utf-8"),
                    encoding="utf-8")
    config = load_config(path, env={})
    assert config.warnings and KEY not in " ".join(config.warnings)
    assert store_key(config.store) == KEY
    assert KEY not in repr(config.store)


def test_postgres_store_refuses_an_encryption_key(tmp_path: Path) -> None:
    path = tmp_path / "agent-tui.toml"
    path.write_text('[store]\npath = "postgresql://shop@db/agent"\n'
                    f'encryption_key = "env:{ENV}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="encrypts only a SQLite store"):
        load_config(path, env={})


# --- the CLI: stats, doctor, errors ----------------------------------------------------------


def test_cli_stats_doctor_and_search_on_an_encrypted_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    monkeypatch.setenv(ENV, KEY)
    _seed(tmp_path / "agent.db").close()

    assert main(["--config", str(config), "stats", "--since", "2026-01-01", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert sum(stats["volume"]["sms"].values()) == 2   # read from the decrypted store

    assert main(["--config", str(config), "search", WORD, "--json"]) == 0
    assert WORD in capsys.readouterr().out

    assert main(["--config", str(config), "doctor", "--json"]) in (0, 1)
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["store"]["ok"]
    assert "encrypted at rest with SQLCipher" in checks["store"]["detail"]


def test_cli_wrong_key_exits_1_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    _seed(tmp_path / "agent.db").close()
    monkeypatch.setenv(ENV, "a wrong key")
    capfd.readouterr()
    for argv in (["list"], ["stats", "--since", "2026-01-01"]):
        assert main(["--config", str(config), *argv]) == 1
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{tmp_path / 'agent.db'}: cannot decrypt the store" in err
        assert "a wrong key" not in err and KEY not in err

    assert main(["--config", str(config), "doctor", "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capfd.readouterr().out)["checks"]}
    assert not checks["store"]["ok"] and "wrong [store] encryption_key" in checks["store"]["detail"]


def test_the_demo_tui_opens_an_encrypted_store_with_its_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo opened the configured store without its key (a demo directory whose config was
    given an encryption_key could not start its TUI)."""
    import agent_tui.ui
    from agent_tui.demo import run_demo_tui

    config = _config(tmp_path)
    monkeypatch.setenv(ENV, KEY)
    _seed(tmp_path / "agent.db").close()
    seen: list[int] = []

    def run_tui(config: object, store: SqliteStore, engine: object) -> int:
        seen.append(store.count_conversations())
        return 0

    monkeypatch.setattr(agent_tui.ui, "run_tui", run_tui)
    assert run_demo_tui(config) == 0
    assert seen == [1]                         # read through the decrypted store


def test_doctor_says_a_plain_store_is_not_encrypted(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "")
    assert main(["--config", str(config), "doctor", "--json"]) in (0, 1)
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "not encrypted at rest" in checks["store"]["detail"]


def test_sqlite3_cannot_read_the_encrypted_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    _seed(path).close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        db.execute("SELECT * FROM messages")
    db.close()
    assert os.stat(path).st_mode & 0o077 == 0          # still created 0600
