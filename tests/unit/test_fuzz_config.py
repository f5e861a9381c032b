"""Property tests of agent_tui.config `load_config`: a broken config file is a one-line ConfigError.

Random text and bytes, and config.example.toml and the test configs damaged: byte flips, cuts,
lines lost, doubled or swapped, values replaced by TOML literals of every type and hostile
content (huge numbers, control characters, `~user` paths, broken URLs, regexes, time zones),
hostile keys and table headers. For every input `load_config` finishes within a second of CPU
time and either returns a Config or raises ConfigError whose message is one line of printable
text naming the file; nothing else escapes to become a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given

from agent_tui.config import Config, load_config
from agent_tui.errors import ConfigError
from tests.conftest import REPO
from tests.fuzzing import (
    FUZZ,
    RANDOM_FILE,
    assert_one_line_naming,
    each_value_at_each_key,
    mutated,
    timed,
    toml_lines,
)
from tests.unit.test_config import EMAIL, ERROR_CASES, TELEGRAM
from tests.unit.test_config_ui import ERROR_CASES as UI_ERROR_CASES
from tests.unit.test_config_ui import VIEWS

SEEDS = [(REPO / "config.example.toml").read_bytes(),
         *(text.encode() for text in (EMAIL, TELEGRAM, VIEWS)),
         *(case[0].encode() for case in [*ERROR_CASES.values(), *UI_ERROR_CASES.values()])]

# TOML values of each type, hostile where the loader reads further than the type.
VALUES = [
    b'""', b'" "', b'"\\u001b[31mred"', b'"a\\nb"', b'"\\u0085\\u2028\\u202e"', b'"\\U0001F600"',
    b'"\\u0000"', b"0", b"-1", b"70000", b"9223372036854775807", b"-9223372036854775808",
    b"1e308", b"inf", b"-inf", b"nan", b"0.0000001", b"true", b"false",
    b"1979-05-27", b"1979-05-27T07:32:00Z", b"1979-05-27T07:32:00", b"07:32:00",
    b"[]", b'[1, "a"]', b"[[]]", b"[{}]", b"{}", b"{ a = 1 }", b'{ channel = ["fax"] }',
    b'"~nosuchuser/agent.db"', b'"~"', b'"~/x"', b'"/"', b'"../../etc/passwd"',
    b'"env:"', b'"cmd:"', b'"keyring:"', b'"env: "', b'"plaintext"', b'"postgresql://"',
    b'"http://example.com"', b'"http://[::1"', b'"https://"', b'"http://[::1]:99999/"',
    b'"https://user:pw@host:0/"', b'"http://127.0.0.1:-1"',
    b'"+999999999999999999999"', b'"whatsapp:"', b'"ACx"', b'"AC"',
    b"'(('", b"'a{99999999999}'", b"'(?P<'", b"'" + b"(" * 400 + b")" * 400 + b"'",
    b"'(?<=a+)b'", b"'\\\\'", b"'[\\\\'",
    b'"Europe"', b'"Europe/"', b'"/etc/passwd"', b'"Europe/../../etc/passwd"', b'"UTC\\u0000"',
    b'"' + b"a" * 300 + b'"', b'"..//.."', b'"."',
    b'"\\"unclosed"', b'"round-robin"', b'"Mon-Fri 25:00-99:99"',
    b'"ctrl+"', b'",,"', b'"x,\\u001b"',
]

# Lines: hostile keys, table headers, TOML syntax edges.
LINES = [
    b'"\\U0001F600" = 1', b'"a\\nb" = 1', b'"\\u001b[2J" = 1', b'"\\u202e" = 1', b"'a\"b' = 1",
    b'"\\u0085" = "x"', b"a.b.c = 1", b'a."b\\nc" = 1', b" = 1", b"=", b"x = 1", b"x = 2",
    b"[agent]", b"[store]", b"[knowledge]", b"[automation]", b"[sla]", b"[enrichment]",
    b"[privacy]", b"[ui]", b"[ui.keymap]", b"[serve]", b"[assignment]", b"[[assignment.rule]]",
    b"[[account]]", b"[[rule]]", b"[[ui.view]]", b'["\\u001b"]', b'[["a\\nb"]]', b"[a.b.c]",
    b'inbox."\\u001b" = "x"', b'"inbox.close" = "\\u001b"', b'type = "twilio"',
    b'type = "telegram"', b'type = "email"', b"allow_plaintext_secrets = true",
    b'password = "hunter2"', b"'''", b'"""', b'x = """', b"# \x1b[31m", b"\xff\xfe", b"\x00",
    b"\r", b"\t",
]


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config") / "agent-tui.toml"


def check_load(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    path.chmod(0o600)
    try:
        config = timed(lambda: load_config(path, env={}))
    except ConfigError as error:
        assert_one_line_naming(str(error), str(path))
    else:
        assert isinstance(config, Config)


@FUZZ
@given(RANDOM_FILE)
def test_random_text(config_path: Path, content: bytes) -> None:
    check_load(config_path, content)


KEYS = [b"name", b"path", b"type", b"timezone", b"order_regex", b"command", b"url", b"password",
        b"min_score", b"x"]


@FUZZ
@given(toml_lines(LINES, KEYS, VALUES))
# A TOML escape JSON lacks, in a quoted key: the line index raised JSONDecodeError.
@example(b'"\\U0001F600" = 1')
# A line break or a control sequence in a key went into the message as it was.
@example(b'"a\\nb" = 1')
@example(b'[agent]\n"\\u001b[2J" = 1')
@example(b'[[ui.view]]\nname = "\\u202e"\n[[ui.view]]\nname = "\\u202e"')
def test_random_lines(config_path: Path, content: bytes) -> None:
    check_load(config_path, content)


@FUZZ
@given(mutated(SEEDS, LINES, values=VALUES))
def test_mutated_configs(config_path: Path, content: bytes) -> None:
    check_load(config_path, content)


def _blocks(text: bytes) -> list[bytes]:
    """The example's tables, each a config of its own (the top-level keys are one)."""
    return [block for block in re.split(rb"(?m)^(?=\[)", text) if block.strip()]


def test_every_example_key_takes_every_hostile_value(tmp_path: Path) -> None:
    """Not random: each key of config.example.toml, in its table alone, with each of VALUES
    (some 5,700 small configs), so a value that breaks one key cannot hide from the sampling."""
    path = tmp_path / "agent-tui.toml"
    loads = 0
    for block in _blocks(SEEDS[0]):
        for content in each_value_at_each_key(block, VALUES):
            check_load(path, content)
            loads += 1
    assert loads > 5000
