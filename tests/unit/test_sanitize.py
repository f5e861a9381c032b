"""The display-safety sanitiser (DESIGN.md invariants 3 and 4)."""

from __future__ import annotations

import sys

import pytest

from agent_tui.sanitize import (
    MAX_NAME_BYTES,
    NAME_MAX_BYTES,
    clean_json,
    clean_line,
    clean_text,
    safe_filename,
    safe_mime_type,
    terminal_safe_output,
    unfiltered,
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


# Invisible characters, one row per class (issue 17): what is removed, and what emoji and scripts
# need kept.
@pytest.mark.parametrize(("text", "expected"), [
    # Unicode tag characters hide ASCII text ("ASCII smuggling") ...
    ("pay\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065ment", "payment"),
    ("\U000e0001\U000e0065\U000e006elang tag", "lang tag"),
    # ... but a subdivision flag (England) is a black flag, tag letters and a cancel tag.
    ("\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f ok",
     "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f ok"),
    ("\U0001f3f4\U000e0067\U000e0062 unterminated", "\U0001f3f4 unterminated"),
    # Invisible math operators and deprecated format controls.
    ("x\u2061y\u2062z\u2063w\u2064", "xyzw"),
    ("a\u206ab\u206bc\u206cd\u206de\u206ff", "abcdef"),
    # Soft hyphen, Mongolian vowel separator, interlinear annotation.
    ("pass\u00adword", "password"),
    ("a\u180eb", "ab"),
    ("\ufff9annotated\ufffa\ufffb", "annotated"),
    # Hangul fillers: a "blank" name.
    ("\u3164\u3164", ""),
    ("\u115f\u1160name\uffa0", "name"),
    # Variation selectors after no emoji carry hidden data ...
    ("a\ufe0fb\ufe0ec", "abc"),
    ("secret\U000e0100\U000e0101", "secret"),
    # ... and stay after an emoji, in a keycap, and as ideographic variants after a CJK ideograph.
    ("\u2764\ufe0f thanks", "\u2764\ufe0f thanks"),
    ("\u263a\ufe0e", "\u263a\ufe0e"),
    ("1\ufe0f\u20e3", "1\ufe0f\u20e3"),
    ("\u845b\U000e0100", "\u845b\U000e0100"),
    # ZWJ/ZWNJ: kept inside emoji sequences and scripts, removed next to ASCII or each other.
    ("\u2764\ufe0f\u200d\U0001f525", "\u2764\ufe0f\u200d\U0001f525"),
    ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
     "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),
    ("\u0915\u094d\u200d\u0937", "\u0915\u094d\u200d\u0937"),
    ("pay\u200dpal", "paypal"),
    ("pay\u200cpal", "paypal"),
    ("\u200dstart", "start"),
    ("\U0001f468\u200d\u200d\U0001f469", "\U0001f468\U0001f469"),
])
def test_clean_text_removes_invisible_characters(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_clean_text_leaves_ordinary_text_untouched() -> None:
    text = "Grüße aus Köln – Bestellung #12345 🎉\n\tZeile zwei"
    assert clean_text(text) is text


@pytest.mark.parametrize(("value", "expected"), [
    ("application/PDF", "application/pdf"),
    ("text/plain; charset=utf-8", "text/plain"),
    ("image/svg+xml", "image/svg+xml"),
    ("application/x\x1b[31mevil", "application/octet-stream"),
    ("image/png\x1b]8;;http://evil\x07", "application/octet-stream"),
    ("text/\u202ehtml", "application/octet-stream"),
    ("no-slash", "application/octet-stream"),
    ("", "application/octet-stream"),
    ("a/b/c", "application/octet-stream"),
])
def test_safe_mime_type(value: str, expected: str) -> None:
    assert safe_mime_type(value) == expected


def test_safe_mime_type_fallback_is_the_callers() -> None:
    assert safe_mime_type("\x1b[0m", "audio/ogg") == "audio/ogg"


def test_clean_json_cleans_every_string_and_key() -> None:
    assert clean_json({"a\x1b[1m": ["x\x9b2J", {"k": "\u202ey"}], "n": 3, "none": None}) == \
        {"a": ["x", {"k": "y"}], "n": 3, "none": None}


def test_terminal_safe_output_filters_stdout_and_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with terminal_safe_output():
        print("subject \x1b]0;title\x07here")
        print("err \x1b[2J", file=sys.stderr)
    captured = capsys.readouterr()
    assert captured.out == "subject here\n" and captured.err == "err \n"


def test_our_own_progress_lines_pass_under_the_filter(capsys: pytest.CaptureFixture[str]) -> None:
    with terminal_safe_output():
        unfiltered(sys.stderr).write("\r\x1b[K3/10")
    assert capsys.readouterr().err == "\r\x1b[K3/10"
