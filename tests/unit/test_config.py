"""The config loader: typed values, file resolution, and one-line errors naming file, line, key."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from agent_tui import cli
from agent_tui.config import (
    KNOWN_KEYS,
    EmailAccount,
    SecretRef,
    TelegramAccount,
    TomlLineIndex,
    TwilioAccount,
    default_store_path,
    load_config,
)
from agent_tui.errors import EXIT_USAGE, ConfigError, NotFound
from tests.conftest import REPO

EXAMPLE = REPO / "config.example.toml"

EMAIL = """\
[[account]]
name = "shop-mail"
type = "email"
address = "service@shop.example"
password = "env:MAIL_PASSWORD"
imap_host = "imap.shop.example"
smtp_host = "smtp.shop.example"
"""

TELEGRAM = """\
[[account]]
name = "shop-telegram"
type = "telegram"
token = "env:TELEGRAM_BOT_TOKEN"
"""


def write_config(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "agent-tui.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def config_error(tmp_path: Path, text: str, mode: int = 0o600) -> ConfigError:
    path = write_config(tmp_path, text, mode)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value


def line_of(text: str, fragment: str) -> int:
    """1-based number of the first line containing `fragment` (so tests need no line counting)."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


# --- the line index --------------------------------------------------------------------------


def test_line_index_finds_keys_in_tables_and_arrays_of_tables() -> None:
    text = (
        'top = 1\n'                     # 1
        '[automation]\n'                # 2
        'min_score = 0.5\n'             # 3
        '[[account]]\n'                 # 4
        'name = "a"\n'                  # 5
        'body = """\n'                  # 6
        'imap_tls = "inside a string"\n'  # 7
        '"""\n'                         # 8
        '[[account]]\n'                 # 9
        '  "imap_tls" = "tls"\n'        # 10
        'match = { channel = "sms" }\n'  # 11
        'site.url = "x"\n'              # 12
        '[account.extra]\n'             # 13
        'deep = 1\n'                    # 14
    )
    index = TomlLineIndex(text)
    assert index.line(("top",)) == 1
    assert index.line(("automation", "min_score")) == 3
    assert index.line(("account", 0)) == 4
    assert index.line(("account", 0, "name")) == 5
    assert index.line(("account", 1, "imap_tls")) == 10      # not the line inside the string
    assert index.line(("account", 0, "imap_tls")) == 4       # absent: falls back to its table
    assert index.line(("account", 1, "match", "channel")) == 11   # inline: its enclosing key
    assert index.line(("account", 1, "site", "url")) == 12
    assert index.line(("account", 1, "extra", "deep")) == 14
    assert index.line(("nowhere", "key")) is None


# --- the example file ------------------------------------------------------------------------


def test_example_config_passes_validation() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.warnings == ()
    assert {type(a) for a in config.accounts} == {EmailAccount, TwilioAccount, TelegramAccount}
    assert config.rules and config.rules[0].match["channel"] == ("email", "whatsapp")


def test_example_config_documents_every_known_key() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {"": set(data)}
    for section, value in data.items():
        if isinstance(value, dict):
            found[section] = set(value)
    found["rule"] = {key for rule in data["rule"] for key in rule}
    found["ui.view"] = {key for view in data["ui"]["view"] for key in view}
    found["assignment.rule"] = {key for rule in data["assignment"]["rule"] for key in rule}
    for account in data["account"]:
        found.setdefault(f"account.{account['type']}", set()).update(account)
    for section, keys in KNOWN_KEYS.items():
        undocumented = keys - found.get(section, set())
        assert not undocumented, f"config.example.toml lacks {section or 'top-level'} keys " \
            f"{sorted(undocumented)}"


# --- values ----------------------------------------------------------------------------------


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, EMAIL + TELEGRAM), env={})
    mail = config.account("shop-mail")
    assert isinstance(mail, EmailAccount)
    assert (mail.username, mail.imap_port, mail.imap_tls) == ("service@shop.example", 993,
                                                               "implicit")
    assert (mail.smtp_port, mail.smtp_tls, mail.folders) == (587, "starttls", ("INBOX",))
    assert mail.password == SecretRef("env:MAIL_PASSWORD")
    assert config.sla.minutes("whatsapp") == 15 and config.sla.minutes("email") == 240
    assert config.automation.min_score == 0.75 and not config.automation.auto_reply
    assert config.store.path == str(default_store_path())
    assert config.knowledge.path == tmp_path / "knowledge.toml"
    with pytest.raises(NotFound, match="shop-sms"):
        config.account("shop-sms")


def test_twilio_numbers_are_normalised_to_e164(tmp_path: Path) -> None:
    text = """\
[[account]]
name = "sms"
type = "twilio"
account_sid = "AC123"
auth_token = "env:TWILIO_AUTH_TOKEN"
sms_from = "030 12345678"
whatsapp_from = "+49 30 12345678"
api_base = "http://127.0.0.1:8080/"
"""
    account = load_config(write_config(tmp_path, text), env={}).accounts[0]
    assert isinstance(account, TwilioAccount)
    assert account.sms_from == "+493012345678"
    assert account.whatsapp_from == "whatsapp:+493012345678"
    assert account.api_base == "http://127.0.0.1:8080"
    assert account.poll_interval == 20.0


def test_relative_and_home_paths_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sub = tmp_path / "conf"
    sub.mkdir()
    text = '[knowledge]\npath = "kb/answers.toml"\n[store]\npath = "~/data/agent.db"\n'
    config = load_config(write_config(sub, text), env={})
    assert config.knowledge.path == sub / "kb" / "answers.toml"
    assert config.store.path == str(tmp_path / "home" / "data" / "agent.db")
    pg = load_config(write_config(sub, '[store]\npath = "postgresql://u@db/agent"\n'), env={})
    assert pg.store.path == "postgresql://u@db/agent" and pg.store.is_postgres


# --- where the file comes from ---------------------------------------------------------------


def test_config_option_beats_environment_which_beats_platform_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    platform_file = tmp_path / "xdg" / "agent-tui" / "agent-tui.toml"
    platform_file.parent.mkdir(parents=True)
    platform_file.write_text('[agent]\nname = "platform"\n')
    from_env = tmp_path / "env.toml"
    from_env.write_text('[agent]\nname = "env"\n')
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[agent]\nname = "explicit"\n')
    env = {"AGENT_TUI_CONFIG": str(from_env)}
    assert load_config(explicit, env=env).agent.name == "explicit"
    assert load_config(None, env=env).agent.name == "env"
    assert load_config(None, env={}).agent.name == "platform"
    platform_file.unlink()
    default = load_config(None, env={})
    assert default.path is None and default.accounts == ()


def test_a_named_file_that_is_missing_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml.*not found.*AGENT_TUI_CONFIG") as info:
        load_config(None, env={"AGENT_TUI_CONFIG": str(tmp_path / "nope.toml")})
    assert info.value.exit_code == EXIT_USAGE


# --- errors: file, line, key -----------------------------------------------------------------


def test_invalid_enum_message_has_the_documented_form(tmp_path: Path) -> None:
    text = EMAIL + EMAIL.replace("shop-mail", "other") + 'imap_tls = "tls"\n'
    error = config_error(tmp_path, text)
    line = len(text.splitlines())
    assert str(error) == (f"{tmp_path / 'agent-tui.toml'}:{line}: [[account]] #2 'imap_tls': "
                          'expected one of implicit, starttls, none, got "tls"')
    assert (error.line, error.key) == (line, "imap_tls")


ERROR_CASES = {
    "syntax": ('[agent]\nname = "Mia"\nlanguage = \n', "language =", "language",
               "syntax error at column 12"),
    "unknown key with suggestion": (EMAIL + 'imap_hots = "x"\n', "imap_hots", "imap_hots",
                                    "did you mean 'imap_host'"),
    "unknown section": ('[automaton]\nauto_reply = true\n', "[automaton]", "automaton",
                        "did you mean 'automation'"),
    "wrong type": (EMAIL + 'imap_port = "993"\n', "imap_port", "imap_port",
                   'expected an integer, got "993"'),
    "boolean is not a number": ('[automation]\nmin_score = true\n', "min_score", "min_score",
                                "expected a number"),
    "out of range": ('[automation]\nmin_score = 7\n', "min_score", "min_score", "between 0 and 1"),
    "missing required key": (EMAIL.replace('imap_host = "imap.shop.example"\n', ""),
                             "[[account]]", "[[account]] #1 'imap_host'", "missing required key"),
    "duplicate account": (EMAIL + TELEGRAM.replace("shop-telegram", "shop-mail"),
                          'name = "shop-mail"', "name",
                          'duplicate account name "shop-mail"'),
    "unknown account type": (EMAIL.replace('"email"', '"imap"'), "type", "type",
                             'expected one of email, twilio, telegram, got "imap"'),
    "tls none to a remote host": (EMAIL + 'smtp_tls = "none"\n', "smtp_tls", "smtp_tls",
                                  "loopback"),
    "plain http to a remote host": (TELEGRAM + 'api_base = "http://api.telegram.org"\n',
                                    "api_base", "api_base", "use https"),
    "time zone": ('[automation]\ntimezone = "Mars/Olympus"\n', "timezone", "timezone",
                  "unknown time zone"),
    "rule channel": ('[[rule]]\nname = "r"\nmatch = { channel = ["fax"] }\n'
                     'actions = { tag = "x" }\n', "match", "match.channel",
                     "expected one of email"),
    "rule without actions": ('[[rule]]\nname = "r"\n', "[[rule]]", "[[rule]] #1",
                             "at least one action"),
    "bad regex": ('[enrichment]\norder_regex = "(unclosed"\n', "order_regex", "order_regex",
                  "invalid regular expression"),
    "not finite": ('[enrichment]\ntimeout = inf\n', "timeout", "timeout", "got inf"),
    "batch budget": ('[enrichment]\nbatch_timeout = 0\n', "batch_timeout", "batch_timeout",
                     "at least 0.1"),
    "single table for an array": ('[account]\nname = "x"\n', "[account]", "account",
                                  "expected [[account]] tables, got a table"),
    "webhook port": ('[[account]]\nname = "t"\ntype = "twilio"\naccount_sid = "AC1"\n'
                     'auth_token = "env:T"\nsms_from = "+493012345678"\nwebhook_port = 70000\n',
                     "webhook_port", "webhook_port", "expected a port 1-65535"),
    "twilio without sender": ('[[account]]\nname = "t"\ntype = "twilio"\naccount_sid = "AC1"\n'
                              'auth_token = "env:T"\n', "[[account]]", "[[account]] #1",
                              "sms_from"),
}


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_each_error_names_file_line_and_key(tmp_path: Path,
                                            case: tuple[str, str, str | None, str]) -> None:
    text, line_fragment, key, message = case   # the error is on the last line with the fragment
    error = config_error(tmp_path, text)
    expected_line = max(n for n, line in enumerate(text.splitlines(), 1) if line_fragment in line)
    assert f"agent-tui.toml:{expected_line}:" in str(error)
    assert error.line == expected_line
    if key is not None:
        assert key in str(error)
    assert message in str(error)
    assert error.exit_code == EXIT_USAGE


def test_tls_none_is_allowed_to_loopback(tmp_path: Path) -> None:
    text = EMAIL.replace("imap.shop.example", "127.0.0.1").replace("smtp.shop.example",
                                                                   "localhost")
    text += 'imap_tls = "none"\nsmtp_tls = "none"\n'
    mail = load_config(write_config(tmp_path, text), env={}).accounts[0]
    assert isinstance(mail, EmailAccount)
    assert (mail.imap_port, mail.smtp_port) == (143, 25)


# --- plaintext secrets -----------------------------------------------------------------------

PLAIN = EMAIL.replace('"env:MAIL_PASSWORD"', '"hunter2-plain"')


def test_plaintext_secret_is_refused_without_opt_in(tmp_path: Path) -> None:
    error = config_error(tmp_path, PLAIN)
    assert f"agent-tui.toml:{line_of(PLAIN, 'password')}:" in str(error)
    assert "'password'" in str(error) and "keyring:agent-tui/shop-mail" in str(error)
    assert "hunter2" not in str(error)


def test_plaintext_secret_with_opt_in_warns_and_never_shows(tmp_path: Path) -> None:
    text = "allow_plaintext_secrets = true\n" + PLAIN
    config = load_config(write_config(tmp_path, text), env={})
    assert len(config.warnings) == 1 and "'password'" in config.warnings[0]
    assert f":{line_of(text, 'password')}:" in config.warnings[0]
    mail = config.accounts[0]
    assert isinstance(mail, EmailAccount) and mail.password.scheme == "plain"
    for shown in (repr(config), str(mail.password), f"{mail.password}", *config.warnings):
        assert "hunter2" not in shown


def test_per_account_opt_in(tmp_path: Path) -> None:
    text = PLAIN + "allow_plaintext_secrets = true\n"
    assert load_config(write_config(tmp_path, text), env={}).warnings


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_plaintext_secret_in_a_group_readable_file_is_refused(tmp_path: Path) -> None:
    text = "allow_plaintext_secrets = true\n" + PLAIN
    error = config_error(tmp_path, text, mode=0o640)
    path = tmp_path / "agent-tui.toml"
    assert f"{path}:{line_of(text, 'password')}:" in str(error)
    assert f"chmod 600 {path}" in str(error) and "hunter2" not in str(error)
    # references hold no secret, so a world-readable file with only references is fine
    assert load_config(write_config(tmp_path, EMAIL, mode=0o644), env={}).accounts


def test_wrong_type_in_a_secret_field_does_not_echo_the_value(tmp_path: Path) -> None:
    error = config_error(tmp_path, EMAIL.replace('"env:MAIL_PASSWORD"', "987654321"))
    assert "expected a string, got an integer" in str(error)
    assert "987654321" not in str(error)


# --- through the command line ----------------------------------------------------------------


def test_cli_reports_a_config_error_in_one_line_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EMAIL + 'imap_tls = "tls"\n'
    path = write_config(tmp_path, text)
    assert cli.main(["--config", str(path), "list"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"agent-tui.toml:{len(text.splitlines())}:" in err and "'imap_tls'" in err
