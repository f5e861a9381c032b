"""Property tests of connectors/email/mime.py `parse_message`, the parse every synced mail takes.

Random bytes, and real mail (tests/fixtures/mail, ../shared/data/mail-corpus) damaged the ways mail
arrives damaged: flipped bytes, cuts, lost or doubled header lines, broken boundaries, bogus
charsets, hostile encoded words, huge header lines, deep nesting. For every input the parse
- finishes within a second of CPU time,
- needs no catch-all: a "parse failed" defect means an exception escaped the real parse and the
  mail degraded to its raw text (parse_message's last resort, not a way of parsing),
- leaves no control character (C0 but tab and newline, C1, ESC) and no lone surrogate in what
  a person sees: subject, names, addresses, body text, attachment names and types, and the
  message ids (--json shows them, replies quote them),
- gives attachment refs that attachment_bytes finds again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.base import InboundMessage
from connectors.email.mime import attachment_bytes, parse_message
from tests.fuzzing import FUZZ, assert_clean_line, assert_clean_text, mutated, timed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
FIXTURE_MAILS = [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]
RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Fragments of mail as hostile or broken senders write it.
SNIPPETS = [
    b"Subject: =?utf-8?B?G1szMW1yZWQbWzBt?=\n",                   # ESC inside an encoded word
    b"Subject: =?utf-8?Q?=C2=9B31m_=E2=80=AE?=\n",               # 8-bit CSI, RLO
    b"Subject: \x1b]8;;http://evil\x07link\x1b]8;;\x07\n",
    b"Subject: \xc2\x9b31m\xed\xa0\x80\xff\n",                     # raw C1, a UTF-8 surrogate, junk
    b"Subject: =?rot13?Q?nop?= =?hex?Q?41?= =?base64?B?QUJD?=\n",  # codecs that are not charsets
    b"Subject: =?undefined?Q?x?= =?idna?Q?xn--?= =?punycode?Q?=FF?=\n",
    b"Subject: =?utf-16?B?2D3YPQ==?= =?utf-7?Q?+2D3-?= =?unicode-escape?Q?=5Cx1b?=\n",
    b"Subject: =?*?Q?x?= =?'?B?=?= =?utf-8*de?Q?=?=\n",
    b'From: "=?utf-8?Q?Ev=1B[2Jil?=" <evil@example.com>\n',
    b"From: =?utf-8?B?IltAY2xpY2s9YXBwLnF1aXRdIiw8Pg==?= <a@b.example>\n",
    b"From: <<<@>>>, ,,, \"\\\" <@\n",
    b"From: a\xc2\x9bb <x\x1b@y.example>\n",
    b"Reply-To: \x1b[31m@x\n",
    b"To: " + b"a@b.example, " * 50 + b"\n",
    b"Date: Mon, 1 Jan 99999 00:00:00 +9999\n",
    b"Date: 31 Feb 2026 25:61:61 -2400\n",
    b"Message-ID: <\xc2\x9b\xe2\x80\xae@x>\n",
    b"Content-Type: text/plain; charset=rot13\n",
    b"Content-Type: text/plain; charset=undefined\n",
    b"Content-Type: text/plain; charset=\"unicode-escape\"\n",
    b"Content-Type: text/plain; charset=utf-16\n",
    b"Content-Type: text/plain; charset=base64\n",
    b"Content-Type: text/plain; charset*=utf-8''%1B%5B31m\n",
    b"Content-Type: text/\x1b[31mplain\n",
    b"Content-Type: multipart/mixed; boundary=\"\"\n",
    b"Content-Type: multipart/mixed; boundary=--\n",
    b"Content-Type: multipart/alternative; boundary=\"a b\"\n",
    b"Content-Type: message/rfc822\n",
    b"Content-Type: multipart/digest; boundary=d\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"Content-Transfer-Encoding: x-uuencode\n",
    b"Content-Transfer-Encoding: \x1b[31m\n",
    b"Content-Disposition: attachment; filename*=utf-8''%1B%5B31m..%2F..%2Fetc%2Fpasswd\n",
    b"Content-Disposition: attachment; filename*0*=bogus''%FF; filename*1=\x1b\n",
    b"Content-Disposition: attachment; filename=\"=?utf-8?B?4oCuZXhlLnR4dA==?=\"\n",
    b"Content-Disposition: inline; filename=\n",
    b" folded continuation \x1b[2J\n",
    b"\n",
    b"\r\n",
    b"--\n",
    b"--=_\n",
    b"--a\n",
    b"--a--\n",
    b"begin 644 x.txt\n#0V%T\n`\nend\n",
    b"=\n=1B=5B=33=31=6D\n",
]


def _nested(depth: int, boundary: str, leaf: str) -> bytes:
    """Mail of `depth` nested multiparts (each boundary the same or its own) around one leaf."""
    lines = ["From: a@b.example", "Subject: nested"]
    for level in range(depth):
        mark = boundary if boundary else f"b{level}"
        lines += [f'Content-Type: multipart/mixed; boundary="{mark}"', "", f"--{mark}"]
    lines += [leaf, "", "body"]
    for level in reversed(range(depth)):
        lines.append(f"--{boundary if boundary else f'b{level}'}--")
    return "\n".join(lines).encode()


NESTED = st.builds(_nested, st.integers(1, 400), st.sampled_from(["", "same", "=_"]),
                   st.sampled_from(["Content-Type: text/plain; charset=utf-8",
                                    "Content-Type: message/rfc822\n\nSubject: inner",
                                    "Content-Type: text/html", ""]))


def check_parse(raw: bytes) -> InboundMessage:
    message = timed(lambda: parse_message(raw, fallback_date=RECEIVED))
    failed = [d for d in message.defects if d.startswith(("parse failed", "header parse failed"))]
    assert not failed, failed
    assert_clean_line(message.subject, "subject")
    assert_clean_line(message.sender_name, "sender name")
    for address in (message.sender, message.reply_to, *message.recipients):
        assert_clean_line(address, "address")
    for message_id in (message.provider_id, message.in_reply_to, *message.references):
        assert_clean_line(message_id, "message id")
    assert_clean_text(message.text, "text")
    for attachment in message.attachments:
        assert_clean_line(attachment.name, "attachment name")
        assert_clean_line(attachment.content_type, "attachment content type")
        assert isinstance(timed(lambda ref=attachment.ref: attachment_bytes(raw, ref)), bytes)
    return message


@FUZZ
@given(st.binary(max_size=4096))
# 8-bit bytes in a multipart that never splits: get_payload() had replaced them, and turning the
# payload back into bytes raised.
@example(b"Content-Type: multipart/digest; boundary=d\n\n\x87")
@example(b"Content-Type: multipart/mixed; boundary=d; charset=undefined\n\n\xff--d")
# Thousands of nested "name:" groups: the stdlib address parser recursed past the limit.
@example(b"From:" * 20000)
def test_random_bytes(raw: bytes) -> None:
    check_parse(raw)


@FUZZ
@given(st.lists(st.sampled_from(SNIPPETS), max_size=12).map(b"".join), st.binary(max_size=256))
# Codecs that are no charsets (rot13, base64) or always fail ("undefined"): the parse failed.
@example(b"Subject: =?rot13?Q?nop?= =?base64?B?QUJD?=\n", b"")
@example(b"Subject: =?undefined?Q?x?=\nContent-Type: text/plain; charset=undefined\n", b"\xff")
@example(b"Subject: =?utf-\x008?Q?x?=\n", b"")        # codecs.lookup: "embedded null character"
# A control sequence in an attachment's MIME type reached the attachment list.
@example(b"Content-Type: text/\x1b[31mplain\n", b"")
@example(b"Content-Type: application/pd\x00f\n", b"")
@example(b"Message-ID: <\xc2\x9b31m@x>\nIn-Reply-To: <a\xc2\x9b@x>\n", b"")  # 8-bit CSI in ids
# A damaged boundary parameter, the boundary recovered from the body: the parts' numbers did
# not lead attachment_bytes back to them.
@example(b"Content-Type: multipart/mixed; bounda\x00y=b\n", b"--b\nContent-Type: text/plain\n\n"
         b"hi\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; "
         b"filename=a.pdf\n\nPDF\n--b--\n")
def test_random_headers(headers: bytes, body: bytes) -> None:
    check_parse(headers + b"\n" + body)


@FUZZ
@given(mutated(FIXTURE_MAILS, SNIPPETS))
def test_mutated_fixtures(raw: bytes) -> None:
    check_parse(raw)


@FUZZ
@given(NESTED)
def test_deep_nesting(raw: bytes) -> None:
    check_parse(raw)


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> list[bytes]:
    mails = [path.read_bytes() for path in sorted((shared_data / "mail-corpus").rglob("*.eml"))]
    assert mails, "the mail corpus is empty"
    return mails


@FUZZ
@given(st.data())
def test_mutated_corpus(corpus: list[bytes], data: st.DataObject) -> None:
    check_parse(data.draw(mutated(corpus, SNIPPETS)))


def test_a_huge_address_list_of_nested_groups_parses_within_a_second() -> None:
    # The stdlib address parser is worse than linear on "name: <" groups: 640 kB took seconds.
    hostile = b"From: Customer <" * 40_000
    message = check_parse(b"From: a@b.example\nTo: " + hostile + b"\nCc: c@d.example\n\nhi\n")
    assert message.sender == "a@b.example" and message.text == "hi"
