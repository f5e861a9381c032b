"""Text from outside is data (DESIGN.md invariants 3 and 4).

One sanitiser at the connector -> store boundary, used again at store -> view: C0/C1 controls, ESC,
CSI/OSC/DCS sequences and bidi overrides are removed before anything is stored or displayed.
Rich/Textual markup is not touched here: views render text with `markup=False` / `Text(...)`.
"""

from __future__ import annotations

import re
import unicodedata

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

# Bidi embedding/override/isolate controls (Trojan Source) and other invisible format characters
# that can reorder or hide text. Zero-width joiner (U+200D) stays: emoji sequences need it.
_BIDI_AND_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b\u2060\ufeff]")

# C0 controls except TAB and LF, DEL, and C1 controls.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Lone surrogates (undecodable bytes kept by `surrogateescape`) cannot be encoded for a terminal or
# the store: they become U+FFFD.
_SURROGATES = re.compile("[\ud800-\udfff]")


# Any character one of the passes below would change; most text has none and is returned as is.
_NEEDS_CLEANING = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\r\u2028\u2029\ud800-\udfff"
    "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b\u2060\ufeff]")


def clean_text(text: str) -> str:
    """Neutralise terminal control in a body of text; keeps tabs and newlines."""
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
    text = _BIDI_AND_INVISIBLE.sub("", text)
    return _CONTROLS.sub("", text)


def clean_line(text: str) -> str:
    """Like clean_text, for one-line fields (subject, name): whitespace runs become one space."""
    return " ".join(clean_text(text).split())


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
