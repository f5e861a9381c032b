"""Load and check a knowledge file (TOML, one `[[entry]]` per answer; format in DESIGN.md)."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent_tui.errors import ConfigError, one_line

KNOWN_KEYS = frozenset({"id", "title", "lang", "keywords", "examples", "body", "short",
                        "channels", "auto"})
CHANNELS = frozenset({"email", "sms", "whatsapp", "telegram"})
# Filled from the contact, the agent and the conversation: always available when rendering.
BUILTIN_FIELDS = frozenset({"contact.name", "contact.first_name", "agent.name",
                            "conversation.subject"})
# Namespaces enrichment fills (a regex finds order.number; a command or endpoint the rest).
ENRICHMENT_NAMESPACES = ("order.", "customer.", "enrichment.")
SMS_LIMIT = 160

_PLACEHOLDER = re.compile(r"\{([^{}\s]*)\}")
_VALID_NAME = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+\Z")
_HEADER = re.compile(r"^\s*\[\[\s*entry\s*\]\]\s*(?:#.*)?$")
_TABLE = re.compile(r"^\s*\[")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_TOML_LINE = re.compile(r"at line (\d+)")

_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOP"
            "QRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXTENDED = set("^{}\\[~]|€")


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    title: str
    body: str
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    short: str = ""
    lang: str = ""
    channels: tuple[str, ...] = ()       # empty: every channel
    auto: bool = False
    line: int = 0                        # line of the `[[entry]]` header

    def placeholders(self) -> list[str]:
        return placeholders_in(self.body) + [
            p for p in placeholders_in(self.short) if p not in placeholders_in(self.body)]


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    path: Path
    entries: tuple[Entry, ...]
    sha256: str
    lang: str = ""                       # the language most entries declare; "" when none does

    def get(self, entry_id: str) -> Entry | None:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        return None


Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Severity
    file: str
    line: int | None
    entry_id: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        entry = f" entry '{self.entry_id}'" if self.entry_id else ""
        return one_line(f"{where}:{entry} {self.severity}: {self.message}")


def placeholders_in(text: str) -> list[str]:
    """Placeholder names in order of first use; `{{` and `}}` are literal braces."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(text.replace("{{", "").replace("}}", "")):
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


def gsm7_length(text: str) -> int | None:
    """Septets the text needs in one GSM-7 SMS, or None when it needs UCS-2 (70 per SMS)."""
    length = 0
    for char in text:
        if char in _GSM7:
            length += 1
        elif char in _GSM7_EXTENDED:
            length += 2
        else:
            return None
    return length


@dataclass
class _Located:
    index: int
    header_line: int
    key_lines: dict[str, int] = field(default_factory=dict)


def _locate_entries(text: str) -> list[_Located]:
    """Where each `[[entry]]` and its keys start: tomllib gives values, not line numbers."""
    located: list[_Located] = []
    current: _Located | None = None
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        if _HEADER.match(line):
            current = _Located(len(located), number)
            located.append(current)
            continue
        if _TABLE.match(line):
            current = None
            continue
        key = _KEY.match(line)
        if key and current is not None:
            current.key_lines.setdefault(key.group(1), number)
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1:
                in_multiline = quote
                break
    return located


def _string_list(raw: Any) -> tuple[str, ...] | None:
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    return None


def _check(path: Path, text: str, enrichment_fields: Collection[str] | None,
           ) -> tuple[list[Problem], list[Entry]]:
    file = str(path)
    problems: list[Problem] = []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _TOML_LINE.search(str(exc))
        problems.append(Problem("error", file, int(line.group(1)) if line else None, None,
                                f"not valid TOML: {exc}"))
        return problems, []
    unknown_top = sorted(set(data) - {"entry"})
    if unknown_top:
        problems.append(Problem("warning", file, None, None,
                                f"unknown top-level keys ignored: {', '.join(unknown_top)}"))
    raw_entries = data.get("entry", [])
    if not isinstance(raw_entries, list) or not raw_entries:
        problems.append(Problem("error", file, None, None, "no [[entry]] tables"))
        return problems, []
    if not all(isinstance(raw, dict) for raw in raw_entries):   # `entry = [1, 2]`
        problems.append(Problem("error", file, None, None, "'entry' must be [[entry]] tables"))
        return problems, []
    located = _locate_entries(text)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        where = located[index] if index < len(located) else _Located(index, 0)
        header = where.header_line or None

        def line_of(key: str, where: _Located = where, header: int | None = header) -> int | None:
            return where.key_lines.get(key, header)

        raw_id = raw.get("id")
        entry_id = raw_id if isinstance(raw_id, str) and raw_id.strip() else None
        label = entry_id or f"#{index + 1}"

        def problem(severity: Severity, key: str | None, message: str,
                    label: str = label, line_of: Any = line_of, header: int | None = header,
                    ) -> None:
            problems.append(Problem(severity, file, line_of(key) if key else header, label,
                                    message))

        if entry_id is None:
            problem("error", "id", "'id' is missing or not a non-empty string")
        elif entry_id in seen:
            problem("error", "id", f"duplicate id (first at line {seen[entry_id]})")
        else:
            seen[entry_id] = line_of("id") or 0
        for key in sorted(set(raw) - KNOWN_KEYS):
            problem("warning", key, f"unknown key '{key}' ignored")
        body = raw.get("body")
        if not isinstance(body, str) or not body.strip():
            problem("error", "body", "'body' is missing or empty")
            body = ""
        strings: dict[str, str] = {}
        for key in ("title", "short", "lang"):
            value = raw.get(key, "")
            if not isinstance(value, str):
                problem("error", key, f"'{key}' must be a string")
                value = ""
            strings[key] = value
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("keywords", "examples", "channels"):
            value = _string_list(raw.get(key, []))
            if value is None:
                problem("error", key, f"'{key}' must be a list of strings")
                value = ()
            lists[key] = tuple(v for v in value if v.strip())
        if not lists["keywords"] and not lists["examples"]:
            problem("warning", "keywords",
                    "no keywords and no examples: only the title and body can match")
        else:
            for key in ("keywords", "examples"):
                if not lists[key]:
                    problem("warning", key if key in raw else None, f"no {key}")
        bad_channels = sorted(set(lists["channels"]) - CHANNELS)
        if bad_channels:
            problem("error", "channels", f"unknown channels {', '.join(bad_channels)} "
                    f"(known: {', '.join(sorted(CHANNELS))})")
        auto = raw.get("auto", False)
        if not isinstance(auto, bool):
            problem("error", "auto", "'auto' must be true or false")
            auto = False
        for key, value in (("body", body), ("short", strings["short"])):
            for name in placeholders_in(value):
                if not _VALID_NAME.match(name):
                    problem("error", key, f"malformed placeholder {{{name}}} "
                            "(write {{ and }} for literal braces)")
                elif name not in BUILTIN_FIELDS and not name.startswith(ENRICHMENT_NAMESPACES):
                    problem("error", key, f"unknown placeholder {{{name}}} (known: "
                            f"{', '.join(sorted(BUILTIN_FIELDS))}, order.*, customer.*)")
                elif auto and name not in BUILTIN_FIELDS and (
                        enrichment_fields is not None and name not in enrichment_fields):
                    problem("error", "auto", f"auto = true but nothing fills {{{name}}}")
        if strings["short"]:
            septets = gsm7_length(strings["short"])
            if septets is None and len(strings["short"]) > 70:
                problem("warning", "short", f"'short' has {len(strings['short'])} characters "
                        "outside GSM-7: over one SMS (70)")
            elif septets is not None and septets > SMS_LIMIT:
                problem("warning", "short",
                        f"'short' is {septets} GSM-7 characters: over one SMS ({SMS_LIMIT})")
        if entry_id is not None:
            entries.append(Entry(
                id=entry_id, title=strings["title"] or entry_id, body=body,
                keywords=lists["keywords"], examples=lists["examples"], short=strings["short"],
                lang=strings["lang"], channels=lists["channels"], auto=auto,
                line=header or 0))
    return problems, entries


def check_knowledge(path: str | Path, *,
                    enrichment_fields: Collection[str] | None = None) -> list[Problem]:
    """Every problem of the file; `enrichment_fields` (when known) lets `auto` entries be checked
    against what enrichment can actually fill."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem("error", str(path), None, None, f"cannot read: {exc}")]
    return _check(path, text, enrichment_fields)[0]


def load_knowledge(path: str | Path) -> KnowledgeBase:
    """The file's entries; ConfigError naming file:line and entry id on the first error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read knowledge file: {exc.strerror or exc}",
                          path=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("knowledge file is not UTF-8", path=str(path)) from None
    problems, entries = _check(path, text, None)
    for problem in problems:
        if problem.severity == "error":
            raise ConfigError(problem.message, path=problem.file, line=problem.line,
                              section=f"entry '{problem.entry_id}'" if problem.entry_id else None)
    langs = [entry.lang for entry in entries if entry.lang]
    lang = max(set(langs), key=langs.count) if langs else ""
    return KnowledgeBase(path=path, entries=tuple(entries),
                         sha256=hashlib.sha256(raw).hexdigest(), lang=lang)
