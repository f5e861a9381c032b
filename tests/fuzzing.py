"""Shared parts of the property tests (hypothesis) over the parsers of outside input.

One settings profile (bounded and reproducible: a fixed seed and no example database, so CI runs
the same examples every time; FUZZ_EXAMPLES=N runs N per test on a random seed instead), a
strategy that mutates real seed files the way damaged or hostile input differs from them, TOML
line strategies, and a clock for the one-second-per-input budget. The clock is ours, not
hypothesis' `deadline`: process time, so a busy CI machine does not fail the test, but the budget
stays the honest one second.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# FUZZ_EXAMPLES=5000 for a deeper run on a random seed (locally, when a parser changed).
_DEEP_EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "")
FUZZ = settings(max_examples=int(_DEEP_EXAMPLES or 200), derandomize=not _DEEP_EXAMPLES,
                deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SECONDS_PER_INPUT = 1.0

# C0 controls but tab and newline, DEL, C1 (ESC is C0): what must never reach a terminal.
TEXT_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
LINE_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")

_T = TypeVar("_T")


def timed(function: Callable[[], _T]) -> _T:
    """function(), asserting it took less than a second of this process' CPU time."""
    start = time.process_time()
    try:
        return function()
    finally:
        spent = time.process_time() - start
        assert spent < SECONDS_PER_INPUT, f"took {spent:.2f} s of CPU time"


def assert_clean_text(value: str, what: str) -> None:
    found = TEXT_CONTROLS.search(value)
    assert found is None, f"{what} holds control character {found.group()!r}"
    value.encode("utf-8")           # no lone surrogates: the store and the terminal need UTF-8


def assert_clean_line(value: str, what: str) -> None:
    found = LINE_CONTROLS.search(value)
    assert found is None, f"{what} holds control character {found.group()!r}"
    value.encode("utf-8")


def assert_one_line_naming(message: str, path: str) -> None:
    """A user-facing error: one line of printable text (no line break of any kind, no control,
    bidi or other format character), naming the file."""
    assert message.isprintable(), f"not one printable line: {message!r}"
    assert path in message, f"does not name {path}: {message!r}"


# ---- mutations ----------------------------------------------------------------------------------

MAX_MUTATED_SIZE = 300_000


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], snippets: Sequence[bytes],
            values: Sequence[bytes] = (), max_mutations: int = 4) -> bytes:
    """A seed with one to `max_mutations` damages: byte flips, cuts, deleted, duplicated, swapped
    or hugely repeated lines and spans, inserted snippets (hostile fragments of the format) or
    random bytes, and (with `values`) what follows the `=` of a `key = value` line replaced."""
    data = bytearray(draw(st.sampled_from(seeds)))
    mutations = _MUTATIONS + ((_replace_value,) * 3 if values else ())
    for _ in range(draw(st.integers(1, max_mutations))):
        mutation = draw(st.sampled_from(mutations))
        data = mutation(draw, data, values if mutation is _replace_value else snippets)
        if len(data) > MAX_MUTATED_SIZE:
            del data[MAX_MUTATED_SIZE:]
    return bytes(data)


def _position(draw: st.DrawFn, data: bytearray) -> int:
    return draw(st.integers(0, len(data)))


def _line_starts(data: bytearray) -> list[int]:
    return [0, *(m.end() for m in re.finditer(rb"\n", data))]


def _line_span(draw: st.DrawFn, data: bytearray) -> tuple[int, int]:
    starts = _line_starts(data)
    index = draw(st.integers(0, len(starts) - 1))
    end = starts[index + 1] if index + 1 < len(starts) else len(data)
    return starts[index], end


def _flip(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    if data:
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return data


def _truncate(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    return data[:_position(draw, data)]


def _delete_span(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    start = _position(draw, data)
    del data[start:start + draw(st.integers(1, 64))]
    return data


def _delete_line(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    start, end = _line_span(draw, data)
    del data[start:end]
    return data


def _duplicate_line(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    start, end = _line_span(draw, data)
    data[start:start] = data[start:end]
    return data


def _swap_lines(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    (a, b), (c, d) = sorted([_line_span(draw, data), _line_span(draw, data)])
    if b <= c:
        data[a:d] = data[c:d] + data[b:c] + data[a:b]
    return data


def _repeat_span(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    """One span many times over: huge header lines, long runs the parsers may be slow on."""
    start = _position(draw, data)
    span = bytes(data[start:start + draw(st.integers(1, 40))]) or b"x"
    times = draw(st.integers(100, MAX_MUTATED_SIZE // (2 * len(span))))
    data[start:start] = span * times
    return data


def _insert_snippet(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    snippet = draw(st.sampled_from(snippets) | st.binary(min_size=1, max_size=16))
    at = draw(st.sampled_from(_line_starts(data))) if draw(st.booleans()) else \
        _position(draw, data)
    data[at:at] = snippet
    return data


def _replace_line(draw: st.DrawFn, data: bytearray, snippets: Sequence[bytes]) -> bytearray:
    start, end = _line_span(draw, data)
    data[start:end] = draw(st.sampled_from(snippets)) + b"\n"
    return data


_ASSIGNMENT = re.compile(rb"^([ \t]*[^=\n]+=[ \t]*)[^\n]*", re.MULTILINE)


def _replace_value(draw: st.DrawFn, data: bytearray, values: Sequence[bytes]) -> bytearray:
    lines = list(_ASSIGNMENT.finditer(data))
    if lines:
        line = draw(st.sampled_from(lines))
        data[line.start():line.end()] = line.group(1) + draw(st.sampled_from(values))
    return data


_MUTATIONS = (_flip, _truncate, _delete_span, _delete_line, _duplicate_line, _swap_lines,
              _repeat_span, _insert_snippet, _insert_snippet, _replace_line)


# ---- TOML files ---------------------------------------------------------------------------------

RANDOM_FILE = st.text(max_size=2000).map(str.encode) | st.binary(max_size=2000)


def toml_lines(lines: Sequence[bytes], keys: Sequence[bytes],
               values: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Files of up to 20 lines: the given ones, and `key = value` of the given keys and values."""
    assignments = st.builds(lambda key, value: key + b" = " + value,
                            st.sampled_from(keys), st.sampled_from(values))
    return st.lists(st.sampled_from(lines) | assignments, max_size=20).map(b"\n".join)


_VALUE_LINE = re.compile(rb"(?m)^([A-Za-z_\"][^=\n#]*=[ \t]*)[^\n]*")


def each_value_at_each_key(text: bytes, values: Sequence[bytes]) -> Iterator[bytes]:
    """`text` once for each `key = value` line and each of `values`, that value in its place."""
    for line in _VALUE_LINE.finditer(text):
        for value in values:
            yield text[:line.start()] + line.group(1) + value + text[line.end():]
