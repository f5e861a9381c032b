"""A password written into `[store] path = "postgresql://user:PASSWORD@..."` is a secret like any
other (issue 17): refused unless `allow_plaintext_secrets`, then only in a file nobody else can
read, and never shown: not in config errors, CLI errors, logs, `doctor` or `--json`."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from agent_tui.cli import main
from agent_tui.config import load_config, postgres_url_password
from agent_tui.errors import ConfigError
from agent_tui.loopback import free_port

PASSWORD = "Kr4ken-s%40lt"              # percent-encoded as a URL needs it: "Kr4ken-s@lt"
DECODED = "Kr4ken-s@lt"
OPT_IN = "allow_plaintext_secrets = true\n"


def url(port: int, where: str = "userinfo") -> str:
    if where == "query":
        return f"postgresql://agent@127.0.0.1:{port}/shop?sslmode=disable&password={PASSWORD}"
    return f"postgresql://agent:{PASSWORD}@127.0.0.1:{port}/shop"


def write(tmp_path: Path, store_url: str, head: str = "", mode: int = 0o600) -> Path:
    path = tmp_path / "agent-tui.toml"
    path.write_text(f'{head}[store]\npath = "{store_url}"\n', encoding="utf-8")
    path.chmod(mode)
    return path


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and DECODED not in text, text


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_the_password_is_found_in_either_place(where: str) -> None:
    assert postgres_url_password(url(5432, where)) == PASSWORD
    assert postgres_url_password("postgresql://agent@db.shop.example/shop?sslmode=require") == ""
    assert postgres_url_password("postgresql://db.shop.example/shop") == ""


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_a_password_in_the_url_is_refused_without_opt_in(tmp_path: Path, where: str) -> None:
    config = write(tmp_path, url(5432, where))
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    message = str(caught.value)
    assert f"{config}:2: [store] 'path'" in message
    assert "plaintext secret" in message and "~/.pgpass or PGPASSWORD" in message
    assert_hidden(message)


def test_with_opt_in_it_warns_and_is_never_shown(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, url(5432), OPT_IN), env={})
    assert config.store.path == url(5432)           # libpq still gets it
    assert len(config.warnings) == 1 and "~/.pgpass" in config.warnings[0]
    assert_hidden(repr(config), repr(config.store), *config.warnings)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_group_readable_file_with_a_url_password_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, url(5432), OPT_IN, mode=0o640)
    with pytest.raises(ConfigError, match=f"run: chmod 600 {config}") as caught:
        load_config(config, env={})
    assert_hidden(str(caught.value))
    # the same URL without its password holds no secret: any mode will do
    plain = url(5432).replace(f":{PASSWORD}@", "@")
    assert load_config(write(tmp_path, plain, mode=0o644), env={}).store.path == plain


def test_cli_error_log_doctor_and_json_never_show_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg", reason="needs the `postgres` extra (psycopg)")
    store_url = url(free_port())                   # nothing listens: the open fails
    config = str(write(tmp_path, store_url, OPT_IN))

    assert main(["--config", config, "list", "--json"]) == 1
    out, err = capsys.readouterr()
    warning, error = err.splitlines()                # the plaintext warning, the error
    assert "plaintext secret" in warning and "cannot open the store" in error
    assert_hidden(out, err)

    assert main(["--config", config, "doctor", "--json"]) == 1
    out, err = capsys.readouterr()
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert not checks["store"]["ok"] and "127.0.0.1" in checks["store"]["detail"]
    assert_hidden(out, err)

    with caplog.at_level(logging.INFO):
        logging.getLogger("agent_tui.test").info("store at %s", store_url)
    assert "store at postgresql://agent:" in caplog.text
    assert_hidden(caplog.text)


def test_a_real_cluster_opens_with_the_url_password_and_doctor_hides_it(
        tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store_url = postgres_url.replace("agent_tui@", f"agent_tui:{PASSWORD}@", 1)
    assert postgres_url_password(store_url) == PASSWORD
    config = str(write(tmp_path, store_url, OPT_IN))
    assert main(["--config", config, "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"format": 1, "conversations": []}
    main(["--config", config, "doctor", "--json"])
    out, err = capsys.readouterr()
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["store"]["ok"]
    assert_hidden(out, err)
