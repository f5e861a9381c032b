"""connectors/email/mime.py: parsing real-world and hostile mail, and composing replies.

Corpus: every .eml under ../shared/data/mail-corpus must parse without an exception. For the
stalwart-mail-parser files, subject, From and the text body are compared with upstream's expected
parse (the .json next to each .eml, a serialised `mail_parser::Message`):
- subject: `parts[0].headers[name == "subject"].value.Text`, compared after clean_line.
- from: the first entry of `...[name == "from"].value.Address.List` (address lower-cased, name).
- text: every `text_body` part whose body is `Text` (HTML parts there are compared by their
  converted text only where listed below) must appear, whitespace-normalised and sanitised, in our
  text. Upstream concatenates differently from us (JMAP textBody semantics), so containment, not
  equality, is the comparison. Files where a comparison cannot apply are in TEXT_SKIPS with why.
"""

from __future__ import annotations

import email
import json
import re
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest

from agent_tui.model import Channel, Direction
from agent_tui.sanitize import clean_line, clean_text
from agent_tui.subjects import normalise_subject, reply_subject
from connectors.base import OutboundMessage
from connectors.email.mime import (
    attachment_bytes,
    build_reply,
    content_hash,
    decode_bytes,
    decode_header_value,
    new_message_id,
    parse_message,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"

# stalwart file -> {index of a text_body part: why our text cannot contain it}
TEXT_SKIPS: dict[str, dict[int, str]] = {
    # multipart/alternative of three text/plain parts: upstream lists all three, we show one
    # alternative (the first plain one), as a mail client does.
    "thirdparty/001": {2: "second alternative", 3: "third alternative"},
    # "ecO2dMOkIHZhYW4uCg== ignored": upstream also decodes the junk after the padding (to
    # U+FFFD); binascii stops at the padding. The text before it is compared by hand below.
    "thirdparty/002": {2: "junk after base64 padding decoded differently"},
    # The closing boundary follows "invalid" without a line break; by RFC 2046 a boundary must
    # start a line, so the stdlib keeps "--1--" in the text while upstream strips it.
    "thirdparty/005": {5: "boundary glued to the text"},
}


def _stalwart_expected(json_path: Path) -> dict[str, Any]:
    data = json.loads(json_path.read_text(encoding="utf-8"))
    top = data["parts"][0]["headers"]
    expected: dict[str, Any] = {"texts": {}}
    for header in top:
        if header["name"] == "subject":
            expected["subject"] = header["value"]["Text"]
        elif header["name"] == "from":
            first = header["value"]["Address"]["List"][0]
            expected["from"] = ((first["address"] or "").lower(), first["name"] or "")
    for index in data["text_body"]:
        body = data["parts"][index]["body"]
        if "Text" in body:
            expected["texts"][index] = body["Text"]
    return expected


def _squash(text: str) -> str:
    return " ".join(clean_text(text).split())


def _corpus_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "mail-corpus").rglob("*.eml"))
    if not files:
        pytest.fail("mail corpus is empty")
    return files


def test_every_corpus_mail_parses(shared_data: Path) -> None:
    files = _corpus_files(shared_data)
    assert len(files) == 78
    for path in files:
        raw = path.read_bytes()
        message = parse_message(raw)
        assert message.channel is Channel.EMAIL and message.direction is Direction.INBOUND
        assert message.provider_id, path
        assert message.sent_at.tzinfo is not None
        assert message.raw == raw
        for field in (message.subject, message.sender_name, message.text):
            assert "\x1b" not in field and "\x00" not in field, path
            field.encode("utf-8")                      # no lone surrogates left
        assert "\n" not in message.subject
        for attachment in message.attachments:
            assert "/" not in attachment.name and ".." not in attachment.name, path
            assert attachment.ref


def test_stalwart_subject_from_and_text(shared_data: Path) -> None:
    root = shared_data / "mail-corpus" / "stalwart-mail-parser"
    compared = 0
    for json_path in sorted(root.rglob("*.json")):
        key = f"{json_path.parent.name}/{json_path.stem}"
        expected = _stalwart_expected(json_path)
        message = parse_message(json_path.with_suffix(".eml").read_bytes())
        if "subject" in expected:
            assert message.subject == clean_line(expected["subject"]), key
            compared += 1
        if "from" in expected:
            assert (message.sender, message.sender_name) == expected["from"], key
            compared += 1
        ours = _squash(message.text)
        for index, text in expected["texts"].items():
            if index in TEXT_SKIPS.get(key, {}):
                continue
            assert _squash(text) in ours, f"{key} text part {index}"
            compared += 1
    assert compared >= 60                               # the comparisons did run


def test_stalwart_base64_with_trailing_junk(shared_data: Path) -> None:
    raw = (shared_data / "mail-corpus" / "stalwart-mail-parser" / "thirdparty" / "002.eml")
    assert "päivää\n\nyötä vaan." in parse_message(raw.read_bytes()).text


def test_stalwart_html_bodies_are_converted(shared_data: Path) -> None:
    # 016 and 018 have only an HTML body (upstream's text_body points at the HTML part).
    root = shared_data / "mail-corpus" / "stalwart-mail-parser" / "thirdparty"
    for name in ("016", "018"):
        message = parse_message((root / f"{name}.eml").read_bytes())
        assert message.text == "Search for höhö"
        assert message.html.lstrip().startswith("<html>")


def test_corpus_real_world_details(shared_data: Path) -> None:
    ruby = shared_data / "mail-corpus" / "ruby-mail"

    def parse(relative: str) -> Any:
        return parse_message((ruby / relative).read_bytes())

    # Unquoted boundary with "=" in it (Outlook Express): policy.default would lose every part.
    outlook = parse("mime_emails/raw_email_with_illegal_boundary.eml")
    assert outlook.text.startswith("Hello\nThis is an outlook test")
    # Raw ISO-2022-JP (7-bit with escapes) in a header and a body.
    assert parse("rfc2822/example14.eml").subject == "Re: TEST テストテスト"
    assert parse("multi_charset/japanese_iso_2022.eml").text == "すみません。"
    # RFC 6532 UTF-8 headers.
    utf8 = parse("rfc6532/utf8_headers.eml")
    assert (utf8.subject, utf8.sender_name) == ("Säying Hello", "Jöhn Doe")
    # Raw UTF-8 in a filename parameter.
    assert [a.name for a in parse("attachment_emails/attachment_nonascii_filename.eml")
            .attachments] == ["ciële.txt"]
    # A Date in the year 3609 does not jump the queue.
    bad_time = parse("plain_emails/raw_email_bad_time.eml")
    assert bad_time.sent_at <= datetime.now(UTC) + timedelta(days=1)
    assert any("future" in d for d in bad_time.defects)
    bounce = parse("multipart_report_emails/multi_address_bounce1.eml")
    assert bounce.auto.bounce


# ---- own hostile fixtures ----------------------------------------------------------------------

def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_escape_sequences_bidi_and_markup_in_subject_name_and_body() -> None:
    message = parse_message(fixture("escapes.eml"))
    assert message.subject == "Refund now [@click=app.quit]win gpj.exe"
    assert message.sender == "eve@example.org"
    assert message.sender_name == "Eve Blink liam"
    assert message.text.splitlines() == [
        "Hello red and a link.",
        "Title change:  done.",
        "Clipboard:  done.",
        "Bidi: invoicefdp.exe",
        "Markup: [@click=app.quit]Click me[/] and [bold red]loud[/]",
        "8-bit CSI as C1: red",
    ]


def test_escape_inside_an_encoded_display_name() -> None:
    message = parse_message(fixture("escape_in_name.eml"))
    assert message.sender == "mallory@example.org"
    assert message.sender_name == "Mallory nimda"


def test_attachment_names_are_safe_and_decoded() -> None:
    message = parse_message(fixture("attachment_names.eml"))
    assert message.text == "see attached"
    assert [(a.name, a.ref) for a in message.attachments] == [
        ("____etc_passwd", "2"),
        ("a_b", "3"),
        ("evil name.txt", "4"),                 # ESC sequence, newline and BEL gone
        ("€ rates.pdf", "5"),                   # RFC 2231
        ("über lange Namen.txt", "6"),          # RFC 2231 continuations
        ("invoicefdp.exe", "7"),                # raw UTF-8 with a bidi override
        ("hidden", "8"),                        # no leading dot
        ("Büro.png", "9"),                      # RFC 2047 in a name= parameter
    ]
    assert all(a.size == len(b"secret") for a in message.attachments)
    raw = fixture("attachment_names.eml")
    assert attachment_bytes(raw, "5") == b"secret"


def test_attachment_bytes_on_nested_parts_and_errors(shared_data: Path) -> None:
    raw = (shared_data / "mail-corpus" / "stalwart-mail-parser" / "thirdparty" / "019.eml") \
        .read_bytes()
    message = parse_message(raw)
    by_name = {a.name: a for a in message.attachments}
    image = attachment_bytes(raw, by_name["kigaaldcbanejcbi.png"].ref)
    assert image.startswith(b"\x89PNG") and len(image) == by_name["kigaaldcbanejcbi.png"].size
    with pytest.raises(LookupError):
        attachment_bytes(raw, "9.9")
    with pytest.raises(LookupError):
        attachment_bytes(raw, "x")


def test_single_part_attachment_ref(shared_data: Path) -> None:
    raw = (shared_data / "mail-corpus" / "ruby-mail" / "attachment_emails"
           / "attachment_only_email.eml").read_bytes()
    (attachment,) = parse_message(raw).attachments
    assert (attachment.name, attachment.ref) == ("blah.gz", "1")
    data = attachment_bytes(raw, "1")
    assert data and len(data) == attachment.size


def test_cp1252_bytes_labelled_latin1() -> None:
    message = parse_message(fixture("cp1252_labelled_latin1.eml"))
    assert message.subject == "Preis € und “Zitat”"
    assert message.text == "Der Preis: 10 € – „großartig“, sagt Müller."


@pytest.mark.parametrize("name", ["undeclared_8bit_utf8.eml", "undeclared_8bit_cp1252.eml"])
def test_undeclared_8bit(name: str) -> None:
    message = parse_message(fixture(name))
    assert message.subject == "Bestellung für Müller"
    assert message.text == "Grüße aus Köln – € 5"


def test_decode_bytes_fallbacks() -> None:
    assert decode_bytes("Grüße".encode(), None) == "Grüße"
    assert decode_bytes("Grüße".encode("cp1252"), "us-ascii") == "Grüße"
    assert decode_bytes(b"\x93quoted\x94", "iso-8859-1") == "“quoted”"
    assert decode_bytes("Grüße".encode("cp1252"), "x-no-such-charset") == "Grüße"
    assert decode_bytes("Grüße".encode("cp1252"), "utf-8") == "Grüße"   # mislabelled cp1252
    assert decode_bytes(b"ok \xc3\xa4 \xff", "utf-8") == "ok ä \ufffd"    # UTF-8, one bad byte
    assert decode_bytes("스티해".encode("cp949"), "ks_c_5601-1987") == "스티해"


def test_broken_base64_keeps_what_decodes() -> None:
    message = parse_message(fixture("broken_base64.eml"))
    assert message.text.startswith("Hallo Welt, die Lieferung kam nicht")
    assert any("base64" in d for d in message.defects)


def test_missing_closing_boundary() -> None:
    message = parse_message(fixture("missing_closing_boundary.eml"))
    assert message.text == "The first part is readable."
    assert [(a.name, a.size) for a in message.attachments] == [("cut.pdf", 9)]
    assert "part 1: missing closing boundary" in message.defects


def test_sixty_levels_of_nesting() -> None:
    message = parse_message(fixture("nested_60.eml"))
    assert message.subject == "deep"
    assert any("nesting deeper" in d for d in message.defects)


def test_thousands_of_levels_do_not_recurse() -> None:
    depth = 5000
    raw = "From: a@example.org\nSubject: deeper\nContent-Type: multipart/mixed; boundary=l0\n\n"
    raw += "".join(f"--l{i}\nContent-Type: multipart/mixed; boundary=l{i + 1}\n\n"
                   for i in range(depth))
    message = parse_message(raw.encode())
    assert message.subject == "deeper"
    assert any("boundaries" in d for d in message.defects)


def test_nul_bytes() -> None:
    message = parse_message(fixture("nul_bytes.eml"))
    assert message.subject == "nul in subject"
    assert message.text == "beforeafter\nsecondline"


def test_two_megabyte_line() -> None:
    line = b"x" * 2_000_000
    message = parse_message(b"From: a@example.org\nSubject: long\n\n" + line + b"\nend\n")
    assert message.text == line.decode() + "\nend"


def test_html_only_mail() -> None:
    message = parse_message(fixture("html_only.eml"))
    assert message.text == (
        "Hallo Frau Müller,\n\nIhre Bestellung ist da.\nZweite Zeile\n\n[Logo]\n\n"
        "Details: hier (https://shop.example/o/123) oder help@shop.example\n\n"
        "- eins\n- zwei\n\n[@click=app.quit]x[/] <tag>")
    assert "alert" not in message.text and "color" not in message.text
    assert "tracker.example" not in message.text
    assert message.html.startswith("<html>")


@pytest.mark.parametrize(("name", "flag"), [
    ("auto_replied.eml", "auto_submitted"),
    ("precedence_bulk.eml", "bulk"),
    ("list_mail.eml", "list_mail"),
    ("null_sender.eml", "null_sender"),
    ("bounce_report.eml", "bounce"),
])
def test_auto_flag_fixtures(name: str, flag: str) -> None:
    flags = parse_message(fixture(name)).auto
    assert getattr(flags, flag)
    assert flags.any


def test_auto_submitted_no_is_a_person() -> None:
    assert not parse_message(fixture("auto_submitted_no.eml")).auto.any


@pytest.mark.parametrize(("header", "flag"), [
    ("Auto-Submitted: auto-generated", "auto_submitted"),
    ("Auto-Submitted: No", None),
    ("X-Autoreply: yes", "auto_submitted"),
    ("X-Autorespond: on", "auto_submitted"),
    ("X-Loop: shop", "auto_submitted"),
    ("X-Auto-Response-Suppress: All", "auto_submitted"),
    ("Precedence: junk", "bulk"),
    ("Precedence: auto_reply", "bulk"),
    ("Precedence: list", "list_mail"),
    ("List-Unsubscribe: <https://x.example/u>", "list_mail"),
    ("Return-Path: <>", "null_sender"),
    ("Return-Path: <someone@example.org>", None),
    ("Content-Type: multipart/report; report-type=delivery-status; boundary=x", "bounce"),
])
def test_auto_flag_header_variants(header: str, flag: str | None) -> None:
    raw = f"From: a@example.org\nSubject: s\n{header}\n\nbody\n".encode()
    flags = parse_message(raw).auto
    if flag is None:
        assert not flags.any
    else:
        assert getattr(flags, flag), header


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.org", "postmaster@example.org"])
def test_bounce_senders(sender: str) -> None:
    assert parse_message(f"From: {sender}\nSubject: s\n\nbody\n".encode()).auto.bounce


def test_split_encoded_words() -> None:
    message = parse_message(fixture("split_encoded_words.eml"))
    # "ü" is cut between two base64 words; "–" between two Q words; whitespace between encoded
    # words is dropped (RFC 2047 6.2), plain words keep theirs.
    assert message.subject == "Grüße aus Köln– Müller und Grüße"
    assert message.reply_to == "joerg@example.org"


def test_decode_header_value_cases() -> None:
    assert decode_header_value("=?utf-8?q?a?= =?utf-8?q?b?=") == "ab"
    assert decode_header_value("=?utf-8?q?a?= plain =?utf-8?q?b?=") == "a plain b"
    assert decode_header_value("=?UTF-8?B?w7w=?=") == "ü"
    assert decode_header_value("=?utf-8*de?q?=C3=BC?=") == "ü"               # RFC 2231 language
    assert decode_header_value("=?x-unknown?q?M=FCller?=") == "Müller"
    assert decode_header_value("=?utf-8?b?broken!?=") == decode_header_value("=?utf-8?b?broken?=")
    assert decode_header_value("no words =? here") == "no words =? here"


def test_threading_headers_and_addresses() -> None:
    message = parse_message(fixture("threading.eml"))
    assert message.provider_id == "reply-2@example.org"
    assert message.in_reply_to == "ours-1@shop.example"
    assert message.references == ["root@example.org", "ours-1@shop.example"]
    assert message.recipients == ["service@shop.example", "other@example.net", "boss@example.org"]
    assert message.reply_to == "orders@example.org"
    assert message.sent_at == datetime(2025, 3, 4, 14, 30, tzinfo=UTC)


def test_missing_message_id_and_broken_date() -> None:
    raw = fixture("no_message_id_bad_date.eml")
    internal_date = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    message = parse_message(raw, fallback_date=internal_date)
    assert message.provider_id == f"hash:{message.content_hash}"
    assert message.sent_at == internal_date
    assert "missing or broken Date" in message.defects


def test_content_hash_ignores_transport_headers_and_line_endings() -> None:
    raw = fixture("no_message_id_bad_date.eml")
    relayed = (b"Received: from mx by mx2; Mon, 1 Jan 2025\n\tcontinued\nDelivered-To: x@y\n"
               b"X-Spam-Score: 3\n" + raw).replace(b"\n", b"\r\n")
    assert content_hash(relayed) == content_hash(raw)
    assert content_hash(raw.replace(b"who am I", b"who are you")) != content_hash(raw)


def test_never_raises_on_garbage() -> None:
    for raw in (b"", b"\x00\xff" * 100, b"Content-Type: multipart/mixed\n\n--", b"\n\n\n",
                b"From: <>\nDate: \nMessage-ID: <>\n\n", b"Subject: =?utf-8?b?=?=\n\n"):
        message = parse_message(raw)
        assert message.provider_id
        message.text.encode("utf-8")


# ---- build_reply ---------------------------------------------------------------------------------

def outbound(**kwargs: Any) -> OutboundMessage:
    values: dict[str, Any] = {"channel": Channel.EMAIL, "to": "Customer <customer@example.org>",
                              "text": "Hallo,\nIhr Paket ist unterwegs. Grüße\n",
                              "idempotency_key": "k1", "subject": "AW: Re: Bestellung 4711",
                              "in_reply_to": "<reply-2@example.org>",
                              "references": ["root@example.org", "ours-1@shop.example"]}
    values.update(kwargs)
    return OutboundMessage(**values)


def test_build_reply_threading_and_identity() -> None:
    mail = build_reply(outbound(), from_addr="service@shop.example", from_name="Shop Service")
    assert mail["Subject"] == "Re: Bestellung 4711"
    assert mail["From"] == "Shop Service <service@shop.example>"
    assert mail["To"] == "Customer <customer@example.org>"
    assert mail["In-Reply-To"] == "<reply-2@example.org>"
    assert mail["References"] == \
        "<root@example.org> <ours-1@shop.example> <reply-2@example.org>"
    assert str(mail["Message-ID"]).endswith("@shop.example>")
    assert mail["Date"] is not None
    assert mail["Auto-Submitted"] is None
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content() == "Hallo,\nIhr Paket ist unterwegs. Grüße\n"


def test_build_reply_keeps_a_given_message_id() -> None:
    mail = build_reply(outbound(message_id="<fixed-1@shop.example>"),
                       from_addr="service@shop.example")
    assert mail["Message-ID"] == "<fixed-1@shop.example>"
    mail = build_reply(outbound(message_id="fixed-2@shop.example"),
                       from_addr="service@shop.example")
    assert mail["Message-ID"] == "<fixed-2@shop.example>"


def test_build_reply_automatic_headers() -> None:
    mail = build_reply(outbound(automatic=True), from_addr="service@shop.example")
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"


@pytest.mark.parametrize(("subject", "expected"), [
    ("Bestellung", "Re: Bestellung"),
    ("Re: Bestellung", "Re: Bestellung"),
    ("RE: re: AW: Bestellung", "Re: Bestellung"),
    ("Re[2]: AW(3): Antw: SV: VS: Bestellung", "Re: Bestellung"),
    ("Fwd: Bestellung", "Re: Fwd: Bestellung"),
    ("Re: [Shop] Re: Bestellung", "Re: [Shop] Re: Bestellung"),
    ("", "Re:"),
    ("Re:", "Re:"),
    ("Regarding the order", "Re: Regarding the order"),
])
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(("subject", "expected"), [
    ("Re: AW: Fwd: WG:  Bestellung   4711", "bestellung 4711"),
    ("Antw: SV: Bestellung 4711", "bestellung 4711"),
    ("BESTELLUNG 4711", "bestellung 4711"),
    ("Fw: Re[3]: Bestellung 4711", "bestellung 4711"),
    ("Review: order", "review: order"),
])
def test_normalise_subject(subject: str, expected: str) -> None:
    assert normalise_subject(subject) == expected


def test_new_message_id() -> None:
    first = new_message_id("service@shop.example")
    assert first.endswith("@shop.example") and not first.startswith("<")
    assert new_message_id("service@shop.example") != first
    assert new_message_id("a@b.example", domain="mail.example").endswith("@mail.example")


def test_long_reference_chains_are_trimmed_keeping_root_and_parent() -> None:
    refs = [f"m{i}@example.org" for i in range(80)]
    mail = build_reply(outbound(references=refs, in_reply_to="last@example.org"),
                       from_addr="service@shop.example")
    sent = str(mail["References"]).split()
    assert sent[0] == "<m0@example.org>" and sent[-1] == "<last@example.org>"
    assert len(sent) == 50


def test_reply_round_trips_through_the_parser() -> None:
    mail = build_reply(outbound(automatic=True), from_addr="service@shop.example",
                       from_name="Shop Service")
    raw = mail.as_bytes()
    assert email.message_from_bytes(raw, policy=policy.default)["Subject"] == "Re: Bestellung 4711"
    parsed = parse_message(raw)
    assert parsed.provider_id == str(mail["Message-ID"]).strip("<>")
    assert parsed.sender == "service@shop.example" and parsed.sender_name == "Shop Service"
    assert parsed.recipients == ["customer@example.org"]
    assert parsed.subject == "Re: Bestellung 4711"
    assert parsed.in_reply_to == "reply-2@example.org"
    assert parsed.references == ["root@example.org", "ours-1@shop.example", "reply-2@example.org"]
    assert parsed.text == "Hallo,\nIhr Paket ist unterwegs. Grüße"
    assert parsed.auto.auto_submitted
    assert parsed.defects == []


def test_reply_with_long_lines_and_non_ascii_round_trips() -> None:
    text = ("Sehr geehrte Frau Müller, " * 20).strip() + "\n\n-- \nShop\n"
    mail = build_reply(outbound(text=text, subject="Grüße"), from_addr="service@shop.example")
    assert mail["Content-Transfer-Encoding"] in ("quoted-printable", "base64", "8bit")
    parsed = parse_message(mail.as_bytes())
    assert parsed.subject == "Re: Grüße"
    assert parsed.text == text.rstrip("\n")


# ---- the structure fast path (connectors/email/mimesplit.py) -----------------------------------

def _same_tree(fast: email.message.Message, slow: email.message.Message, path: str = "1") -> None:
    assert type(fast) is type(slow), path
    for attr in ("_headers", "preamble", "epilogue", "_default_type", "_unixfrom", "_charset"):
        assert getattr(fast, attr) == getattr(slow, attr), (path, attr)
    assert ([(type(d), str(d)) for d in fast.defects]
            == [(type(d), str(d)) for d in slow.defects]), path
    if isinstance(slow._payload, list):
        assert isinstance(fast._payload, list) and len(fast._payload) == len(slow._payload), path
        for index, (a, b) in enumerate(zip(fast._payload, slow._payload, strict=True), 1):
            _same_tree(a, b, f"{path}.{index}")
    else:
        assert fast._payload == slow._payload, path


def _structure_variants(raw: bytes) -> list[bytes]:
    """The mail with LF and CRLF line ends, and with the edits that make boundaries irregular."""
    lf = raw.replace(b"\r\n", b"\n")
    crlf = lf.replace(b"\n", b"\r\n")
    variants = [raw, lf, crlf]
    for boundary in set(re.findall(rb'boundary="?([^";\r\n]+)', raw, re.IGNORECASE)):
        line = b"\n--" + boundary
        for edit in (b"", b"--", b" ", b"-- ", b"x", b"\n--" + boundary, b"\n\n"):
            variants.append(lf.replace(line + b"\n", line + edit + b"\n", 1))
            variants.append(crlf.replace(line.replace(b"\n", b"\r\n") + b"\r\n",
                                         (line + edit).replace(b"\n", b"\r\n") + b"\r\n", 1))
        variants.append(lf.rsplit(line, 1)[0])                    # no closing boundary
        variants.append(lf.replace(line, b"\r" + line, 1))        # a bare CR
        crlf_line = b"\r\n--" + boundary
        variants += [crlf.replace(crlf_line, line, 1),            # a bare LF before a boundary
                     crlf.replace(crlf_line + b"\r\n", crlf_line + b"\n", 1),
                     lf.replace(line + b"\n", line + b"\r\n", 1),
                     crlf.replace(crlf_line, b"\r" + crlf_line, 1)]
    variants += [lf.replace(b"\n\n", b"\nno header here\n\n", 1), b"\n" + lf, lf + b"\n--x--",
                 lf.replace(b"\n\n", b"\n", 1), b"From someone\n" + lf]
    return variants


def test_structure_fast_path_builds_the_stdlib_tree(shared_data: Path) -> None:
    from email.parser import BytesParser

    from connectors.email.mimesplit import parse_structure

    stdlib = BytesParser(policy=policy.compat32)
    files = _corpus_files(shared_data) + sorted(p for p in FIXTURES.rglob("*") if p.is_file())
    taken = 0
    for path in files:
        for raw in _structure_variants(path.read_bytes()):
            fast = parse_structure(raw)
            if fast is not None:
                taken += 1
                _same_tree(fast, stdlib.parsebytes(raw), f"{path.name}")
    assert taken > 100          # the fast path is really used


def test_attachment_size_without_decoding_matches_decoded_length() -> None:
    import base64

    from connectors.email.mime import _decoded_payload, _payload_size

    payloads = []
    for length in range(0, 20):
        encoded = base64.b64encode(bytes(range(length))).decode()
        wrapped = "\r\n".join(encoded[i:i + 6] for i in range(0, len(encoded), 6))
        payloads += [encoded, wrapped + "\r\n", encoded.rstrip("="), encoded + "=", " " + encoded,
                     encoded + "\n=", "=" + encoded, encoded.replace("A", "-")]
    for payload in payloads:
        for cte in ("base64", " Base64", "quoted-printable"):
            fast, slow = email.message.Message(), email.message.Message()
            for part in (fast, slow):
                part["Content-Transfer-Encoding"] = cte
                part.set_payload(payload)
            assert _payload_size(fast) == len(_decoded_payload(slow)), (payload, cte)
            assert [type(d) for d in fast.defects] == [type(d) for d in slow.defects]


def test_simple_address_fast_path_agrees_with_getaddresses(shared_data: Path) -> None:
    import random
    from email.utils import getaddresses

    from connectors.email.mime import _simple_addresses

    texts = {str(value) for path in _corpus_files(shared_data)
             for name in ("from", "to", "cc", "reply-to", "sender")
             for value in email.message_from_bytes(path.read_bytes()).get_all(name, [])}
    rng = random.Random(7)
    characters = [*"abXY éü'-_+!#%&*/=?^`{|}~\x00\xa0.\"\\,;:()<>[]@\t", "  "]
    addresses = ["a@b.c", "a.b@c-d.e", "A_B+c@X.org", "a..b@c", "a@b.", ".a@b", "a b@c"]
    for _ in range(5000):
        name = "".join(rng.choice(characters) for _ in range(rng.randint(0, 6)))
        address = rng.choice(addresses)
        texts |= {address, f" <{address}>", f"{name} <{address}>", f'"{name}"<{address}> ',
                  f"{name}<{address}>x"}
    taken = 0
    for text in sorted(texts):
        fast = _simple_addresses([text])
        if fast is not None:
            taken += 1
            assert fast == getaddresses([text]), text
    assert taken > 1000
