"""Secret references, the `secret` command, and that a secret never shows in logs or errors."""

from __future__ import annotations

import io
import logging
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from agent_tui import cli
from agent_tui.config import SecretRef, load_config
from agent_tui.errors import EXIT_RUNTIME, NotFound, SecretError, UsageError
from agent_tui.secrets import (
    SecretRedactor,
    cmd_secret,
    keyring_name,
    redact,
    resolve_account_secret,
    resolve_secret,
)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps its secrets in a dict."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")


@pytest.fixture
def use_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring(use_keyring: None) -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


def no_backend() -> keyring.backend.KeyringBackend:
    """What keyring picks on a headless server with no Secret Service."""
    return keyring.backends.fail.Keyring()  # type: ignore[no-untyped-call]


def python_command(code: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


# --- references ------------------------------------------------------------------------------


def test_secret_ref_never_shows_a_plaintext_value() -> None:
    plain = SecretRef("hunter2-plain")
    assert plain.scheme == "plain" and not plain.is_reference
    assert "hunter2" not in f"{plain} {plain!r} {plain!s}"
    ref = SecretRef("keyring:agent-tui/shop-mail")
    assert (ref.scheme, ref.target, str(ref)) == ("keyring", "agent-tui/shop-mail",
                                                  "keyring:agent-tui/shop-mail")


def test_keyring_names() -> None:
    assert keyring_name("shop-mail") == ("agent-tui", "shop-mail")
    assert keyring_name("mail/service@shop.example") == ("mail", "service@shop.example")
    with pytest.raises(UsageError):
        keyring_name("service/")


def test_env_reference() -> None:
    ref = SecretRef("env:MAIL_PASSWORD")
    assert resolve_secret(ref, account="shop-mail", env={"MAIL_PASSWORD": "from-env"}) == \
        "from-env"
    with pytest.raises(SecretError, match=r"'shop-mail' 'password' \(env:MAIL_PASSWORD\).*"
                                          "MAIL_PASSWORD is not set"):
        resolve_secret(ref, account="shop-mail", key="password", env={})
    with pytest.raises(SecretError, match="is empty"):
        resolve_secret(ref, account="shop-mail", env={"MAIL_PASSWORD": ""})


def test_cmd_reference_takes_the_first_line_stripped() -> None:
    ref = SecretRef("cmd:" + python_command("print('  from-cmd  '); print('second line')"))
    assert resolve_secret(ref, account="a", env={}) == "from-cmd"


def test_failing_command_is_named_but_its_output_is_not_shown() -> None:
    code = "import sys; print('leaked-stdout'); print('leaked-stderr', file=sys.stderr); exit(3)"
    with pytest.raises(SecretError) as info:
        resolve_secret(SecretRef("cmd:" + python_command(code)), account="shop-sms", env={})
    message = str(info.value)
    assert "'shop-sms'" in message and "status 3" in message
    assert Path(sys.executable).name in message
    assert "leaked" not in message and "import sys" not in message


def test_command_errors_not_found_timeout_and_silence() -> None:
    with pytest.raises(SecretError, match="'no-such-command-agent-tui' not found"):
        resolve_secret(SecretRef("cmd:no-such-command-agent-tui show x"), account="a", env={})
    slow = SecretRef("cmd:" + python_command("import time; time.sleep(30)"))
    with pytest.raises(SecretError, match=r"did not finish within 0\.3 s"):
        resolve_secret(slow, account="a", env={}, timeout=0.3)
    with pytest.raises(SecretError, match="printed nothing"):
        resolve_secret(SecretRef("cmd:" + python_command("pass")), account="a", env={})


def test_keyring_reference(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password("agent-tui", "shop-mail", "from-keyring")
    assert resolve_secret(SecretRef("keyring:agent-tui/shop-mail"), account="shop-mail") == \
        "from-keyring"
    assert resolve_secret(SecretRef("keyring:shop-mail"), account="shop-mail") == "from-keyring"
    with pytest.raises(SecretError, match="agent-tui secret set agent-tui/other"):
        resolve_secret(SecretRef("keyring:agent-tui/other"), account="other")


def test_account_secret_from_a_loaded_config(tmp_path: Path) -> None:
    path = tmp_path / "agent-tui.toml"
    path.write_text('[[account]]\nname = "bot"\ntype = "telegram"\ntoken = "env:BOT_TOKEN"\n')
    account = load_config(path, env={}).account("bot")
    assert resolve_account_secret(account, env={"BOT_TOKEN": "123:abc"}) == "123:abc"
    with pytest.raises(SecretError, match="account 'bot' 'token'"):
        resolve_account_secret(account, env={})


def test_headless_server_without_keyring_backend_points_to_env_and_cmd(
        use_keyring: None) -> None:
    keyring.set_keyring(no_backend())
    with pytest.raises(SecretError) as info:
        resolve_secret(SecretRef("keyring:agent-tui/shop-mail"), account="shop-mail")
    message = str(info.value)
    assert "no usable keyring backend" in message and "'shop-mail'" in message
    assert "env:VAR" in message and "cmd:" in message
    with pytest.raises(SecretError, match="no usable keyring backend"):
        cmd_secret("set", "shop-mail", stdin_is_tty=False, stdin=io.StringIO("value\n"),
                   stdout=io.StringIO())


def test_locked_keyring_points_to_env_and_cmd(use_keyring: None) -> None:
    keyring.set_keyring(LockedKeyring())
    with pytest.raises(SecretError, match=r"locked.*env:VAR.*cmd:"):
        resolve_secret(SecretRef("keyring:agent-tui/shop-mail"), account="shop-mail")


# --- `agent-tui secret` ----------------------------------------------------------------------


def test_secret_set_get_delete_with_piped_input(memory_keyring: MemoryKeyring) -> None:
    out = io.StringIO()
    assert cmd_secret("set", "shop-mail", stdin_is_tty=False,
                      stdin=io.StringIO("piped-value\nignored\n"), stdout=out) == 0
    assert memory_keyring.store == {("agent-tui", "shop-mail"): "piped-value"}
    assert '"keyring:agent-tui/shop-mail"' in out.getvalue()
    assert "piped-value" not in out.getvalue()
    out = io.StringIO()
    assert cmd_secret("get", "agent-tui/shop-mail", stdin_is_tty=False, stdout=out) == 0
    assert out.getvalue() == "piped-value\n"
    assert cmd_secret("delete", "shop-mail", stdin_is_tty=False, stdout=io.StringIO()) == 0
    assert memory_keyring.store == {}
    with pytest.raises(NotFound):
        cmd_secret("get", "shop-mail", stdin_is_tty=False, stdout=io.StringIO())
    with pytest.raises(NotFound):
        cmd_secret("delete", "shop-mail", stdin_is_tty=False, stdout=io.StringIO())


def test_secret_set_never_prompts_without_a_terminal(memory_keyring: MemoryKeyring,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("prompted although stdin is not a terminal")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    with pytest.raises(UsageError, match="no value on stdin"):
        cmd_secret("set", "shop-mail", stdin_is_tty=False, stdin=io.StringIO(""),
                   stdout=io.StringIO())
    assert memory_keyring.store == {}


def test_secret_set_on_a_terminal_asks_with_getpass(memory_keyring: MemoryKeyring,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return "typed-value"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    cmd_secret("set", "mail/me", stdin_is_tty=True, stdin=io.StringIO("not read"),
               stdout=io.StringIO())
    assert memory_keyring.store == {("mail", "me"): "typed-value"}
    assert prompts == ["secret mail/me: "]


def test_cli_secret_error_is_one_line_exit_1(use_keyring: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    keyring.set_keyring(no_backend())
    assert cli.main(["secret", "get", "shop-mail"]) == EXIT_RUNTIME
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no usable keyring backend" in err


# --- redaction -------------------------------------------------------------------------------


def test_redactor_replaces_registered_values() -> None:
    redactor = SecretRedactor()
    assert redactor.redact("nothing registered") == "nothing registered"
    redactor.register("abc")                     # too short to redact safely
    redactor.register("pass-word")
    redactor.register("pass-word-longer")
    assert redactor.redact("a pass-word-longer and pass-word, abc") == "a *** and ***, abc"


def test_resolved_secret_never_reaches_log_output_or_tracebacks() -> None:
    value = resolve_secret(SecretRef("env:SECRET_FOR_LOG_TEST"), account="shop-mail",
                           env={"SECRET_FOR_LOG_TEST": "s3cr3t-log-value"})
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    log = logging.getLogger("agent_tui.test_secrets.child")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("logging in with %s", value)
        log.warning(f"server said: AUTH failed for {value}")
        try:
            raise RuntimeError(f"connection string user:{value}@host")
        except RuntimeError:
            log.exception("connect failed")
    finally:
        log.removeHandler(handler)
    text = output.getvalue()
    assert "connect failed" in text and "RuntimeError" in text and "***" in text
    assert value not in text
    assert value not in redact(f"error: {value}")


def test_cli_error_text_is_redacted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    value = resolve_secret(SecretRef("env:SECRET_FOR_CLI_TEST"), account="a",
                           env={"SECRET_FOR_CLI_TEST": "s3cr3t-cli-value"})
    missing = tmp_path / value / "agent-tui.toml"   # an error message that happens to hold it
    assert cli.main(["--config", str(missing), "list"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and value not in err
