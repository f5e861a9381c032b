"""Property tests of agent_tui/knowledge/loader.py over damaged knowledge files.

Random text and bytes, and the example knowledge files damaged: byte flips, cuts, lines lost,
doubled or swapped, values replaced by TOML literals of every type and hostile content
(placeholders, control characters, huge strings), hostile keys and headers. For every input,
within a second of CPU time:
- `load_knowledge` returns a KnowledgeBase or raises ConfigError with a one-line message naming
  the file;
- `check_knowledge` (`agent-tui knowledge check`) returns its problems, each one printable line
  naming the file, and raises nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given

from agent_tui.errors import ConfigError
from agent_tui.knowledge.loader import KnowledgeBase, check_knowledge, load_knowledge
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

SEEDS = [path.read_bytes() for path in sorted((REPO / "examples").glob("knowledge.*.toml"))]

VALUES = [
    b'""', b'" "', b'"\\u001b[31mred"', b'"a\\nb"', b'"\\u0085\\u2028\\u202e"', b'"\\u0000"',
    b"0", b"-1", b"1e308", b"inf", b"nan", b"true", b"1979-05-27", b"07:32:00",
    b"[]", b'[1, "a"]', b"[[]]", b"[{}]", b'["", " "]', b'["fax", "a\\nb"]', b"{}", b"{ a = 1 }",
    b'"{order.number}"', b'"{contact.name"', b'"{}"', b'"{{}}"', b'"{\\u001b}"', b'"{a.b\\nc}"',
    b'"{evil.field}"', b'"{order.\\u202e}"', b'"{Order.Number}"', b'"' + b"{a.b}" * 2000 + b'"',
    b'"' + "€".encode() * 200 + b'"', b'"' + b"x" * 200 + b'"', b'["email", "sms"]',
    b'"""\n"""', b"'''\n'''", b'"""a\n\\\n  b"""',
]

LINES = [
    b"[[entry]]", b"[[ entry ]] # x", b"[entry]", b"[other]", b"[[entry.sub]]", b"entry = 1",
    b"entry = []", b"entry = [1, 2]", b'entry = ["a"]', b"entry = [{}]", b'entry = [{ id = 1 }]',
    b'id = "dup"', b'id = "\\u001b[2J"', b'id = "a\\nb"', b'id = ""', b"id = 1",
    b'"\\u001b" = 1', b'"a\\nb" = 1', b'"\\U0001F600" = 1', b"auto = true", b"auto = 1",
    b'channels = ["fax\\n", "\\u001b"]', b'body = "{x}"', b'short = "' + b"x" * 400 + b'"',
    b'lang = "\\u202e"', b"'''", b'"""', b'body = """', b"# \x1b[31m", b"\xff\xfe", b"\x00",
    b"\r", b"\t", b"x = 1", b"x = 2",
]


@pytest.fixture(scope="module")
def knowledge_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-knowledge") / "knowledge.toml"


def check_files(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        knowledge = timed(lambda: load_knowledge(path))
    except ConfigError as error:
        assert_one_line_naming(str(error), str(path))
    else:
        assert isinstance(knowledge, KnowledgeBase)
    for problem in timed(lambda: check_knowledge(path)):
        assert_one_line_naming(str(problem), str(path))


@FUZZ
@given(RANDOM_FILE)
def test_random_text(knowledge_path: Path, content: bytes) -> None:
    check_files(knowledge_path, content)


KEYS = [b"id", b"title", b"lang", b"keywords", b"examples", b"body", b"short", b"channels",
        b"auto", b"x"]


@FUZZ
@given(toml_lines(LINES, KEYS, VALUES))
# `entry` an array of non-tables: AttributeError.
@example(b"entry = [1, 2]")
# A control sequence or a line break from the file went into the problem or error as it was.
@example(b'"\\u001b" = 1\n[[entry]]\nid = "x"\nbody = "b"')
@example(b'[[entry]]\nid = "a\\nb"')
@example(b'[[entry]]\nid = "x"\nbody = "b"\nchannels = ["fax\\n\\u001b[2J"]')
def test_random_lines(knowledge_path: Path, content: bytes) -> None:
    check_files(knowledge_path, content)


@FUZZ
@given(mutated(SEEDS, LINES, values=VALUES))
def test_mutated_examples(knowledge_path: Path, content: bytes) -> None:
    check_files(knowledge_path, content)


_ENTRY = re.compile(rb"(?ms)^\[\[entry\]\].*?(?=^\[\[entry\]\]|\Z)")


def test_every_key_of_an_example_entry_takes_every_hostile_value(tmp_path: Path) -> None:
    """Not random: each key of the first entry of each example file, that entry alone, with
    each of VALUES, so a value that breaks one key cannot hide from the sampling."""
    path = tmp_path / "knowledge.toml"
    loads = 0
    for seed in SEEDS:
        entry = _ENTRY.search(seed)
        assert entry is not None
        for content in each_value_at_each_key(entry.group(), VALUES):
            check_files(path, content)
            loads += 1
    assert loads > 500
