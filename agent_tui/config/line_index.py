"""Where each key of a TOML file is: tomllib reports no line numbers for values, so the
config's errors find the line of a key path here."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import TypeAlias

KeyPath: TypeAlias = tuple[str | int, ...]


_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED_KEY})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED_KEY})\s*=")
_KEY_PARTS = re.compile(_KEY_PART)


def key_assigned(line: str) -> str | None:
    """The dotted key a TOML line assigns (`imap_tls = ...` -> "imap_tls"), or None."""
    key = _KEY_LINE.match(line)
    return key.group(1).strip() if key else None


def _split_dotted(dotted: str) -> list[str]:
    parts = []
    for raw in _KEY_PARTS.findall(dotted):
        if raw.startswith('"'):
            # A TOML basic string, escapes and all (\U0001F600 is no JSON): tomllib reads it.
            try:
                parts.append(next(iter(tomllib.loads(f"{raw} = 0"))))
            except tomllib.TOMLDecodeError:
                parts.append(raw[1:-1])
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return parts


class TomlLineIndex:
    """Maps key paths such as ("account", 1, "imap_tls") to 1-based line numbers in TOML text.

    Array-of-tables entries are addressed by their 0-based index, as tomllib returns them. A key
    given inline (`match = { channel = "sms" }`) resolves to the line of its enclosing key, and a
    table with no line of its own to its header. Lines inside multi-line strings are skipped.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        array_counts: dict[tuple[str, ...], int] = {}
        current: KeyPath = ()
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if (array := _ARRAY_HEADER.match(line)) is not None:
                names = _split_dotted(array.group(1))
                parent = self._with_indexes(names[:-1], array_counts)
                index = array_counts.get(tuple(names), -1) + 1
                array_counts[tuple(names)] = index
                current = (*parent, names[-1], index)
                self._lines.setdefault(current, number)
            elif (table := _TABLE_HEADER.match(line)) is not None:
                current = self._with_indexes(_split_dotted(table.group(1)), array_counts)
                self._lines.setdefault(current, number)
            elif (key := _KEY_LINE.match(line)) is not None:
                self._lines.setdefault((*current, *_split_dotted(key.group(1))), number)
                value = line[key.end():]
                for quotes in ('"""', "'''"):
                    if value.count(quotes) % 2 == 1:
                        in_string = quotes
                        break

    @staticmethod
    def _with_indexes(names: Sequence[str], array_counts: Mapping[tuple[str, ...], int]) -> KeyPath:
        """Turn a dotted table name into a key path, inserting the current array indexes."""
        path: list[str | int] = []
        for depth, name in enumerate(names):
            path.append(name)
            index = array_counts.get(tuple(names[: depth + 1]))
            if index is not None:
                path.append(index)
        return tuple(path)

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, else of its nearest enclosing key or table; None at top level."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None
