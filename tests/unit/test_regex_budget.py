"""No pattern can be driven into backtracking by a message (issue 17).

Every built-in pattern of the headless packages is run, the way the code runs it, on long runs of
whitespace after the words the patterns look for; a pattern from the config runs with a budget.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import time

import pytest

import agent_tui
import connectors
from agent_tui.insight.urgency import assess
from agent_tui.knowledge.enrichment import (
    CONFIG_REGEX_SECONDS,
    DEFAULT_ORDER_REGEX,
    extract_fields,
)
from agent_tui.limits import ANALYSIS_CHARS

# Patterns the code only ever anchors at the start of a line or a string (`match`, `fullmatch`):
# searched at every position they would be quadratic, but nothing searches them.
ANCHORED = {
    ("agent_tui.config", "_ARRAY_HEADER"), ("agent_tui.config", "_TABLE_HEADER"),
    ("agent_tui.config", "_KEY_LINE"), ("agent_tui.config", "_TOML_POSITION"),
    ("connectors.email.mime", "_SIMPLE_ADDRESS"),
}

HINTS = ["order", "Bestellung Nr.", "invoice no", "Auftrag #", "on Mon", "am 3.", "wrote",
         "schrieb", ">", "--", "_", "Re:", "AW:", "=?utf-8?q?", "x@y", '"', "<", "a.", "!", "+49"]
RUNS = [" ", "\t", "\n", " \t\n", "\r\n"]
LENGTH = 20_000


def _patterns() -> list[tuple[str, str, re.Pattern[str]]]:
    found = []
    for package in (agent_tui, connectors):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.startswith(("agent_tui.ui", "agent_tui.demo")) or \
                    info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if isinstance(value, re.Pattern) and value.pattern:
                    found.append((info.name, name, value))
    found.append(("agent_tui.knowledge.enrichment", "DEFAULT_ORDER_REGEX",
                  re.compile(DEFAULT_ORDER_REGEX)))
    return found


PATTERNS = _patterns()


def test_the_walk_finds_the_patterns_that_read_messages() -> None:
    names = {(module, name) for module, name, _ in PATTERNS}
    assert ("agent_tui.knowledge.enrichment", "DEFAULT_ORDER_REGEX") in names
    assert ("agent_tui.engine.contacts", "_QUOTE_START") in names
    assert ("agent_tui.sanitize", "_ESCAPE_SEQUENCES") in names
    assert names >= ANCHORED, "an anchored pattern was renamed: update ANCHORED"


@pytest.mark.parametrize(("module", "name", "pattern"), PATTERNS,
                         ids=[f"{m}.{n}" for m, n, _ in PATTERNS])
def test_builtin_pattern_is_linear_on_whitespace_runs(module: str, name: str,
                                                     pattern: re.Pattern[str]) -> None:
    run = pattern.match if (module, name) in ANCHORED else pattern.search
    slowest = 0.0
    for hint in HINTS:
        for ws in RUNS:
            text: str | bytes = hint + ws * (LENGTH // len(ws)) + "x"
            if isinstance(pattern.pattern, bytes):
                text = text.encode()
            start = time.process_time()
            run(text)               # type: ignore[arg-type]
            slowest = max(slowest, time.process_time() - start)
    # Linear: 20,000 characters take about a millisecond; the old order pattern took minutes.
    assert slowest < 0.1, f"{module}.{name} took {slowest:.2f}s on one whitespace run"


def test_default_order_pattern_still_finds_numbers_across_whitespace() -> None:
    for text, number in [("order 12345", "12345"), ("Order No. 12345", "12345"),
                         ("Bestellung Nr.12345", "12345"), ("order number: 1234", "1234"),
                         ("order #AB-123456", "AB-123456"), ("Bestellnummer:\t998877", "998877"),
                         ("Rechnung\n\nNr. 20241", "20241"), ("invoice no.: 55555", "55555")]:
        assert extract_fields(text, DEFAULT_ORDER_REGEX) == {"order.number": number}, text


def test_configured_pattern_that_backtracks_gives_up_and_names_itself(
        caplog: pytest.LogCaptureFixture) -> None:
    evil = r"(\s*)*order\s*\s*\s*(\d+)"
    text = "order" + " " * 5_000 + "!"
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert extract_fields(text, evil) == {}
    assert time.monotonic() - start < CONFIG_REGEX_SECONDS + 1.0
    assert any(repr(evil) in record.getMessage() and "gave up" in record.getMessage()
               for record in caplog.records)


def test_configured_pattern_still_works_within_its_budget() -> None:
    assert extract_fields("Ticket A-77123 please", r"A-(\d{5})") == {"order.number": "77123"}


def test_enrichment_reads_only_the_head_of_a_huge_text() -> None:
    text = "x" * (ANALYSIS_CHARS + 10) + " order 12345"
    assert extract_fields(text, DEFAULT_ORDER_REGEX) == {}
    assert extract_fields("order 12345 " + text, DEFAULT_ORDER_REGEX) == {"order.number": "12345"}


@pytest.mark.parametrize("ws", [" ", "\t", "\n", " \t\n"])
def test_urgency_on_a_huge_whitespace_mail_is_fast(ws: str) -> None:
    hostile = "".join(hint + ws * 100_000 for hint in ("dringend", "order", "sofort", "!!"))
    start = time.process_time()
    assess(hostile, subject=hostile)
    assert time.process_time() - start < 1.0
