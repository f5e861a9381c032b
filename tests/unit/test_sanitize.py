"""The display-safety sanitiser (DESIGN.md invariants 3 and 4)."""

from __future__ import annotations

import pytest

from agent_tui.sanitize import (
    MAX_NAME_BYTES,
    NAME_MAX_BYTES,
    clean_line,
    clean_text,
    safe_filename,
)


@pytest.mark.parametrize(("hostile", "expected"), [
    ("a\x1b[31mred\x1b[0m", "ared"),                                    # CSI colour
    ("\x1b[2J\x1b[Hcleared", "cleared"),                                # CSI clear screen
    ("\x9b31mred", "red"),                                              # 8-bit CSI
    ("a\x1b]8;;http://evil\x07link\x1b]8;;\x07b", "alinkb"),            # OSC 8 hyperlink, BEL
    ("\x1b]0;title\x1b\\after", "after"),                               # OSC title, ST
    ("\x1b]52;c;ZXZpbA==\x07paste", "paste"),                           # OSC 52 clipboard write
    ("\x1bPqsixel\x1b\\ok", "ok"),                                      # DCS
    ("\x1b_apc\x1b\\ok", "ok"),                                         # APC
    ("lone\x1b", "lone"),
    ("bell\x07null\x00del\x7f", "bellnulldel"),
    ("c1\x85\x9f", "c1"),
    ("r\u202egnp.exe", "rgnp.exe"),                                     # RLO (Trojan Source)
    ("iso\u2066late\u2069", "isolate"),
    ("zero\u200bwidth\ufeff", "zerowidth"),
])
def test_clean_text_removes_terminal_control(hostile: str, expected: str) -> None:
    assert clean_text(hostile) == expected


def test_unterminated_osc_ends_at_the_line_end() -> None:
    # A terminal would swallow until BEL/ST; we drop only the rest of that line, not the mail.
    assert clean_text("x\x1b]0;title\nthe rest of the body") == "x\nthe rest of the body"


def test_line_structure_kept_and_normalised() -> None:
    assert clean_text("a\r\nb\rc\td\u2028e") == "a\nb\nc\td\ne"


def test_lone_surrogates_become_replacement_characters() -> None:
    cleaned = clean_text("caf\udce9")
    assert cleaned == "caf\ufffd"
    cleaned.encode("utf-8")                      # would raise with the surrogate left in


def test_markup_is_left_literal() -> None:
    # Escaping is the view's job (markup=False); the text itself must stay as the customer wrote it.
    assert clean_text("[@click=app.quit]win[/] [bold]x[/bold]") == \
        "[@click=app.quit]win[/] [bold]x[/bold]"


def test_emoji_sequences_survive() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_text(family) == family


def test_clean_line_collapses_whitespace() -> None:
    assert clean_line("  Re:\n\tyour \x1b[1morder\r\n  ") == "Re: your order"


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc/passwd", "____etc_passwd"),
    ("a\\b", "a_b"),
    ("..", "_"),
    ("...", "_"),
    (".bashrc", "bashrc"),
    ("-rf .txt", "rf .txt"),
    ("C:\\Windows\\evil.dll", "C__Windows_evil.dll"),
    ("in\x1b[31mvoice\x00.pdf", "invoice.pdf"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ("new\nline.txt", "new line.txt"),
    ("", "attachment"),
    ("\x1b[0m", "attachment"),
])
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_has_no_separator_or_parent_reference() -> None:
    for hostile in ("../x", "..\\x", "a/../../b", "/abs/path", "x/..", "....//....//y"):
        name = safe_filename(hostile)
        assert "/" not in name and "\\" not in name and ".." not in name
        assert not name.startswith(".")


@pytest.mark.parametrize(("name", "extension"), [
    ("x" * 500 + ".pdf", ".pdf"),
    ("ä" * 300 + ".pdf", ".pdf"),                   # 2 bytes a character
    ("€" * 300 + ".tar.gz", ".tar.gz"),             # 3 bytes
    ("😀" * 300 + ".jpeg", ".jpeg"),                # 4 bytes
    ("a" + "😀" * 300, ""),                         # the cut falls inside a character
    ("Rechnung " * 40 + ".PDF", ".PDF"),
    ("ü" * 300 + ".not an extension", ""),
])
def test_safe_filename_is_cut_to_bytes_keeping_the_extension(name: str, extension: str) -> None:
    safe = safe_filename(name)
    encoded = safe.encode()                         # valid UTF-8, or this raises
    assert MAX_NAME_BYTES - 4 < len(encoded) <= MAX_NAME_BYTES
    assert encoded.decode() == safe and safe.endswith(extension)
    assert name.startswith(safe.removesuffix(extension).rstrip())
    assert MAX_NAME_BYTES + len(" (9999)") <= NAME_MAX_BYTES     # room for a copy number


@pytest.mark.parametrize(("name", "expected"), [
    ("-rf", "rf"),
    ("--help.txt", "help.txt"),
    ("-.bashrc", "bashrc"),                         # the dash went, then the dot came first
    (".-rf", "rf"),
    (" . -x", "x"),
    ("..-", "_-"),
    ("a/b", "a_b"),
    ("x.", "x"),
    ("\u202e-rf", "rf"),
    ("\u202e\u202d", "attachment"),
    ("\x00\x07\x1b]0;title\x07", "attachment"),
])
def test_safe_filename_never_starts_with_a_dash_or_dot(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_a_cut_name_never_starts_or_ends_badly() -> None:
    for name in ("-" + "ö" * 300 + ".txt", "." * 3 + "é" * 400, "x" + " ." * 300 + "y"):
        safe = safe_filename(name)
        assert len(safe.encode()) <= MAX_NAME_BYTES
        assert safe[0] not in "-. " and safe[-1] not in ". " and ".." not in safe, safe


def test_the_fallback_is_made_safe_too() -> None:
    assert safe_filename("", fallback="../-video-7.mp4") == "__-video-7.mp4"
    assert safe_filename("", fallback="") == "attachment"


def test_safe_filename_fallback() -> None:
    assert safe_filename("///", fallback="part-2") == "___"
    assert safe_filename(" . ", fallback="part-2") == "part-2"
