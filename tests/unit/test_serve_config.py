"""`agent-tui serve` without a server: the [serve] config, the refusals, the gate, the command."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from agent_tui.cli import main
from agent_tui.config import load_config
from agent_tui.errors import ConfigError
from agent_tui.serve import served_command


def write(tmp_path: Path, serve: str, top: str = "") -> Path:
    path = tmp_path / "agent-tui.toml"
    path.write_text(f'{top}[store]\npath = "agent.db"\n[serve]\n{serve}', encoding="utf-8")
    path.chmod(0o600)
    return path


def test_serve_defaults_and_references(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={})
    assert (config.serve.host, config.serve.port, config.serve.password) == ("127.0.0.1", 8000,
                                                                              None)
    config = load_config(write(tmp_path, 'host = "0.0.0.0"\nport = 8443\n'
                                         'password = "keyring:agent-tui/serve"\n'), env={})
    assert (config.serve.host, config.serve.port) == ("0.0.0.0", 8443)
    assert config.serve.password is not None and config.serve.password.scheme == "keyring"


def test_serve_guessing_limits_sessions_and_the_proxy_option(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={}).serve
    assert (config.behind_tls_proxy, config.failure_delay, config.lockout_after,
            config.lockout_minutes, config.session_hours) == (False, 1.0, 10, 15.0, 12.0)
    config = load_config(write(tmp_path, 'behind_tls_proxy = true\nfailure_delay = 0.5\n'
                                         'lockout_after = 5\nlockout_minutes = 60\n'
                                         'session_hours = 8\n'), env={}).serve
    assert (config.behind_tls_proxy, config.failure_delay, config.lockout_after,
            config.lockout_minutes, config.session_hours) == (True, 0.5, 5, 60.0, 8.0)


def test_plaintext_serve_password_follows_the_account_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, 'password = "hunter2hunter2"\n'), env={})
    message = str(refused.value)
    assert "[serve] 'password'" in message and "agent-tui secret set serve" in message
    assert "hunter2hunter2" not in message
    config = load_config(write(tmp_path, 'password = "hunter2hunter2"\n',
                               top="allow_plaintext_secrets = true\n"), env={})
    assert config.serve.password is not None and "hunter2" not in repr(config.serve)
    assert any("plaintext secret" in w for w in config.warnings)


@pytest.mark.parametrize("bad", ['port = 70000\n', 'port = "80"\n', 'host = ""\n', 'user = "x"\n',
                                 'behind_tls_proxy = "yes"\n', 'lockout_after = 0\n',
                                 'lockout_minutes = 0\n', 'failure_delay = -1\n',
                                 'session_hours = 0\n'])
def test_bad_serve_keys_are_config_errors(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"\[serve\]"):
        load_config(write(tmp_path, bad), env={})


def test_serve_refuses_without_a_password(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(write(tmp_path, "")), "serve"]) == 2
    err = capsys.readouterr().err
    assert "[serve] 'password'" in err and "serve needs a password" in err


def test_serve_refuses_an_unset_or_short_password(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, 'password = "env:AGENT_TUI_TEST_SERVE_PW"\n')
    monkeypatch.delenv("AGENT_TUI_TEST_SERVE_PW", raising=False)
    assert main(["--config", str(config), "serve"]) == 1
    assert "AGENT_TUI_TEST_SERVE_PW is not set" in capsys.readouterr().err
    monkeypatch.setenv("AGENT_TUI_TEST_SERVE_PW", "kurz")
    assert main(["--config", str(config), "serve"]) == 2
    err = capsys.readouterr().err
    assert "too short" in err and "kurz" not in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "shop.example"])
def test_serve_refuses_plain_http_off_loopback_unless_behind_a_tls_proxy(
        tmp_path: Path, host: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AGENT_TUI_TEST_SERVE_PW", raising=False)
    config = write(tmp_path, 'password = "env:AGENT_TUI_TEST_SERVE_PW"\n')
    assert main(["--config", str(config), "serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert f"refusing to listen on {host} in plain HTTP" in err and "--behind-tls-proxy" in err
    assert len(err.strip().splitlines()) == 1
    # told it sits behind a TLS proxy (flag or config), it goes on: to the unset password here
    assert main(["--config", str(config), "serve", "--host", host, "--behind-tls-proxy"]) == 1
    assert "AGENT_TUI_TEST_SERVE_PW is not set" in capsys.readouterr().err
    config = write(tmp_path, f'host = "{host}"\nbehind_tls_proxy = true\n'
                             'password = "env:AGENT_TUI_TEST_SERVE_PW"\n')
    assert main(["--config", str(config), "serve"]) == 1
    assert "AGENT_TUI_TEST_SERVE_PW is not set" in capsys.readouterr().err


def test_serve_rejects_a_port_out_of_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGENT_TUI_TEST_SERVE_PW", "lang-genug-1")
    config = write(tmp_path, 'password = "env:AGENT_TUI_TEST_SERVE_PW"\n')
    assert main(["--config", str(config), "serve", "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err


def test_the_served_command_is_the_tui_with_the_same_config(tmp_path: Path) -> None:
    config = tmp_path / "with space" / "agent-tui.toml"
    argv = shlex.split(served_command(config, python="/opt/py/bin/python"))
    assert argv == ["/opt/py/bin/python", "-m", "agent_tui", "--config", str(config.resolve()),
                    "tui"]
    assert shlex.split(served_command(None, python="py")) == ["py", "-m", "agent_tui", "tui"]


def test_serve_imports_no_textual() -> None:
    code = ("import sys, agent_tui.serve, textual_serve.server\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'"
            " or m.startswith('agent_tui.ui')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
