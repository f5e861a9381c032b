"""The display-safety sanitiser (DESIGN.md invariants 3 and 4)."""

from __future__ import annotations

import pytest

from agent_tui.sanitize import clean_line, clean_text, safe_filename


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


def test_safe_filename_keeps_the_extension_when_shortened() -> None:
    name = safe_filename("x" * 500 + ".pdf")
    assert len(name) == 200
    assert name.endswith(".pdf")


def test_safe_filename_fallback() -> None:
    assert safe_filename("///", fallback="part-2") == "___"
    assert safe_filename(" . ", fallback="part-2") == "part-2"
