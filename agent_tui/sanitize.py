"""Text from outside is data (DESIGN.md invariants 3 and 4).

One sanitiser at the connector -> store boundary, used again at store -> view: C0/C1 controls, ESC,
CSI/OSC/DCS sequences and bidi overrides are removed before anything is stored or displayed.
Rich/Textual markup is not touched here: views render text with `markup=False` / `Text(...)`.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import unicodedata
from collections.abc import Iterator
from typing import Any, TextIO

# ESC-introduced sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL|ST), DCS/SOS/PM/APC
# (ESC P|X|^|_ ... ST), and two-character escapes; the 8-bit C1 forms (0x9b CSI, 0x9d OSC, 0x90 DCS)
# likewise. An unterminated string sequence ends at the end of its line: with the introducer gone
# the rest is plain text, and a stray ESC ] in a mail must not swallow the whole body.
_ESCAPE_SEQUENCES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]                                  # CSI
  | (?:\x1b\]|\x9d)[^\n]*?(?:\x07|\x1b\\|\x9c|(?=\n)|$)               # OSC, ends at BEL or ST
  | (?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\n]*?(?:\x1b\\|\x9c|(?=\n)|$)  # DCS, SOS, PM, APC
  | \x1b[ -/]*[0-~]?                                                  # other ESC, or a lone ESC
    """,
    re.VERBOSE,
)

# Invisible format characters that can reorder, hide or disguise text, removed everywhere: bidi
# embeddings/overrides/isolates and marks (Trojan Source), zero-width space, word joiner and BOM,
# invisible math operators (U+2061-2064), deprecated format controls (U+206A-206F), the soft hyphen,
# the Mongolian vowel separator, interlinear annotation controls and the Hangul fillers, which
# render as nothing (names made of them look empty; a filler inside a word hides a spoof).
_INVISIBLE = (
    "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
    "\u200b\u2060-\u2064\u206a-\u206f\ufeff\u00ad\u180e\ufff9-\ufffb"
    "\u115f\u1160\u3164\uffa0"
)
_INVISIBLE_CHARS = re.compile(f"[{_INVISIBLE}]")

# Characters that are kept only in context (see _contextual):
# - Unicode tag characters, valid only inside an emoji subdivision flag (black flag, tag letters
#   or digits, cancel tag); anywhere else they carry hidden text (ASCII smuggling).
# - Variation selectors, valid after an emoji (or a keycap base before U+20E3) and the
#   ideographic ones after a CJK ideograph; elsewhere they hide data in "plain" text.
# - ZWJ/ZWNJ, needed between two characters of a script or two emoji, never next to ASCII, space
#   or each other (where they only split a word for a filter while it looks the same).
_CONTEXTUAL = re.compile(
    "\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f"  # subdivision flag
    "|[\U000e0000-\U000e007f]"
    "|[\ufe00-\ufe0f\U000e0100-\U000e01ef]"
    "|[\u200c\u200d]"
)

# Roughly the code points that have an emoji presentation (what a variation selector may follow).
_EMOJI_BASE = re.compile(
    "[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u25fe"
    "\u2600-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff]")
_CJK_IDEOGRAPH = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def _contextual(match: re.Match[str]) -> str:
    found = match.group()
    if len(found) > 1:                          # a whole subdivision flag: keep it
        return found
    text, start = match.string, match.start()
    before = text[start - 1] if start > 0 else ""
    after = text[start + 1] if start + 1 < len(text) else ""
    code = ord(found)
    if 0xE0000 <= code <= 0xE007F:
        return ""
    if found in "\u200c\u200d":
        # VS16 after an emoji (U+2764 U+FE0F U+200D U+1F525) counts as part of the emoji.
        if before in "\ufe0e\ufe0f" and start > 1:
            before = text[start - 2]
        if _joinable(before) and _joinable(after):
            return found
        return ""
    if before and _EMOJI_BASE.match(before):
        return found
    if found in "\ufe0e\ufe0f" and before and before in "0123456789#*" and after == "\u20e3":
        return found                            # keycap: 1 U+FE0F U+20E3
    if before and (code >= 0xE0100 or code <= 0xFE0D) and _CJK_IDEOGRAPH.match(before):
        return found
    return ""


def _joinable(char: str) -> bool:
    return bool(char) and ord(char) > 0x7F and not char.isspace() and char not in "\u200c\u200d"


# C0 controls except TAB and LF, DEL, and C1 controls.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Lone surrogates (undecodable bytes kept by `surrogateescape`) cannot be encoded for a terminal or
# the store: they become U+FFFD.
_SURROGATES = re.compile("[\ud800-\udfff]")


# Any character one of the passes below would change or look at; most text has none and is
# returned as is.
_NEEDS_CLEANING = re.compile(
    f"[\x00-\x08\x0b-\x1f\x7f-\x9f\r\u2028\u2029\ud800-\udfff{_INVISIBLE}"
    "\u200c\u200d\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef]")


def clean_text(text: str) -> str:
    """Neutralise terminal control and invisible characters in a body of text; keeps tabs and
    newlines, and the joiners and selectors that emoji and scripts need."""
    if _NEEDS_CLEANING.search(text) is None:
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\n").replace("\u2029", "\n")   # line/paragraph separators
    if _NEEDS_CLEANING.search(text) is None:
        return text         # only line endings (CRLF mail): the passes below would change nothing
    text = _SURROGATES.sub("\ufffd", text)
    text = _ESCAPE_SEQUENCES.sub("", text)
    text = _INVISIBLE_CHARS.sub("", text)
    text = _CONTROLS.sub("", text)
    return _CONTEXTUAL.sub(_contextual, text)


def clean_line(text: str) -> str:
    """Like clean_text, for one-line fields (subject, name): whitespace runs become one space."""
    return " ".join(clean_text(text).split())


def clean_json(value: Any) -> Any:
    """`value` with every string in it, keys too, through clean_text: JSON escapes C0 controls
    but not C1, bidi or invisible characters, and scripts print what they read."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


class TerminalSafeStream(io.TextIOBase):
    """A text stream that passes everything written through clean_text before `target` sees it:
    the one boundary between the plain CLI's output and a terminal. Our own control sequences (a
    progress line) go to `target` directly."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(clean_text(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:               # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")


def unfiltered(stream: TextIO) -> TextIO:
    """The stream under a TerminalSafeStream, for our own progress lines (\\r, erase line)."""
    return stream.target if isinstance(stream, TerminalSafeStream) else stream


@contextlib.contextmanager
def terminal_safe_output() -> Iterator[None]:
    """sys.stdout and sys.stderr through TerminalSafeStream for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout = TerminalSafeStream(saved[0])
    sys.stderr = TerminalSafeStream(saved[1])
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved


# type "/" subtype, each an RFC 2045 token (without the characters no registered type uses).
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
OCTET_STREAM = "application/octet-stream"


def safe_mime_type(value: str, fallback: str = OCTET_STREAM) -> str:
    """A media type as shown and stored: `type/subtype` in lower case, parameters dropped, or
    `fallback` when the sender's value is no media type at all (RFC 2045 treats an unknown type
    as application/octet-stream). Senders put anything there: a value with an escape sequence
    or any other character outside a token is not cleaned into something plausible."""
    candidate = value.split(";", 1)[0].strip().lower()
    return candidate if _MIME_TYPE.fullmatch(candidate) else fallback


_UNSAFE_NAME_CHARS = re.compile(r'[/\\:*?"<>|]')
# File systems limit a name in bytes, not characters: 255 on ext4, XFS, btrfs, ZFS and APFS. A saved
# file may get a copy number, " (9999)" at the most (agent_tui.engine.files), so a safe name leaves
# room for it.
NAME_MAX_BYTES = 255
COPY_NUMBER_ROOM = len(" (9999)")
MAX_NAME_BYTES = NAME_MAX_BYTES - COPY_NUMBER_ROOM
# What a shortened name keeps, and what a copy number goes before: ".pdf", ".tar.gz".
_EXTENSION = re.compile(r"(?:\.tar)?\.\w{1,10}$", re.IGNORECASE)
DEFAULT_NAME = "attachment"


def split_extension(name: str) -> tuple[str, str]:
    """"report.pdf" -> ("report", ".pdf"), "a.tar.gz" -> ("a", ".tar.gz"), "README" -> ("README",
    ""); "v1.2 notes" has none (an extension is short and has no space)."""
    found = _EXTENSION.search(name)
    if found is None or found.start() == 0:
        return name, ""
    return name[:found.start()], found.group()


def safe_filename(name: str, fallback: str = DEFAULT_NAME) -> str:
    """An attachment name that is safe to create in a directory (invariant 4).

    No path separators, no `..`, no leading dot or dash, no control or bidi characters, at most
    MAX_NAME_BYTES of UTF-8 (cut on a character boundary, keeping the extension). `fallback`
    (made safe the same way) if nothing is left."""
    return _safe_name(name) or _safe_name(fallback) or DEFAULT_NAME


def _safe_name(name: str) -> str:
    name = unicodedata.normalize("NFC", clean_line(name))
    name = _UNSAFE_NAME_CHARS.sub("_", name).replace("..", "_")
    # A leading dash would read as an option to the command a person opens the file with, a
    # leading dot hides the file; trailing dots and spaces vanish on some file systems.
    name = name.lstrip(" .-").rstrip(" .")
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, extension = split_extension(name)
    room = MAX_NAME_BYTES - len(extension.encode())
    # A cut through a multi-byte character leaves an incomplete last one: "ignore" drops it.
    stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .")
    return stem + extension
