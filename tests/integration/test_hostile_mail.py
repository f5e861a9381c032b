"""Hostile mail through the product as a user runs it (issue 17): `sync`, `list --json`,
`show --json` and plain `show` against a real Dovecot.

Nothing a sender writes reaches the terminal as control (ESC, C0/C1, bidi, invisible characters),
in any field: text, names, subject, Content-Type and its parameters, attachment types and names,
defect notes. And a mail built to make patterns backtrack costs no more CPU than an ordinary one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cli_harness import Shop

pytestmark = pytest.mark.integration

# What must never reach a terminal or a script: C0 (but tab and newline), DEL, C1, bidi controls,
# zero-width and other invisible characters, tag characters.
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b\u2060-\u2064"
                       "\u206a-\u206f\u00ad\u3164\ufeff\U000e0000-\U000e007f]")

ESC = "\x1b"


def _mail(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


def hostile_mails(shop_address: str) -> list[bytes]:
    boundary = "b0undary"
    with_attachment = _mail(
        f"From: =?utf-8?q?Eve_=1B]0;pwned=07?= <eve@example.org>\n"
        f"To: {shop_address}\nSubject: =?utf-8?b?SGFsbG8bWzMxbSDigK4gdGFn?= \xf3\xa0\x81\x81\n"
        f"Message-ID: <hostile-1@example.org>\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n"
        f"MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n',
        (f"--{boundary}\r\n"
         'Content-Type: text/plain; charset="utf-8\x1b[2J"; format="\x1b]52;c;ZXZpbA==\x07"\r\n'
         "\r\n"
         "Bitte sehen Sie \x1b[31mrot\x1b[0m und \x9b1m und \u202egnp.exe\r\n"
         f"--{boundary}\r\n"
         'Content-Type: application/x\x1b[31mevil; name="in\x1b[1mvoice\u202e.pdf"\r\n'
         'Content-Disposition: attachment; filename="..\\..\\in\x1b[1mvoice\u202efdp.exe"\r\n'
         "Content-Transfer-Encoding: base64\r\n\r\nSGFsbG8=\r\n"
         f"--{boundary}\r\n"
         'Content-Type: image/png\x1b]8;;http://evil\x07; name="\x07bell.png"\r\n'
         "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
         f"--{boundary}--\r\n").encode())
    hints = ["Bestellung", "Bestellnummer", "order", "order no", "invoice", "Rechnung Nr",
             "Auftrag", "am Montag schrieb", "On Monday wrote", ">", "-- "]
    runs = [" ", "\t", "\n", " \t\n"]
    whitespace = "".join(hint + runs[n % len(runs)] * 100_000 for n, hint in enumerate(hints))
    subject_runs = "order" + " " * 100_000 + "Nr" + "\t" * 100_000
    backtracking = _mail(
        f"From: Bob <bob@example.org>\nTo: {shop_address}\nSubject: {subject_runs}\n"
        f"Message-ID: <hostile-2@example.org>\nDate: Mon, 30 Nov 2026 10:01:00 +0000\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n",
        whitespace.encode("utf-8"))
    return [with_attachment, backtracking]


@pytest.fixture
def configured_shop(shop: Shop) -> Shop:
    # A configured order pattern as a shop writes one, and urgency/enrichment on every message.
    shop.write_config(extra='[enrichment]\norder_regex = "(?i)bestellung\\\\s*(\\\\d{4,})"\n')
    return shop


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_hostile_mail_never_reaches_the_terminal_and_never_freezes_sync(
        configured_shop: Shop) -> None:
    shop = configured_shop
    for raw in hostile_mails(shop.mail_user):
        shop.deliver(raw)

    start = time.process_time()
    synced = shop.cli("sync")
    cpu = time.process_time() - start
    assert synced.code == 0, synced.err
    assert "shop-mail: 2 new" in synced.out
    # Parsing, storing, urgency, enrichment and contact hints of 1.2 MB of whitespace runs after
    # every hint word: linear work. The old order pattern needed minutes here.
    assert cpu < 1.5, f"sync took {cpu:.2f}s of CPU"

    listed = shop.cli("list", "--json")
    assert listed.code == 0
    conversations = listed.json()["conversations"]
    assert len(conversations) == 2
    for conversation in conversations:
        shown = shop.cli("show", str(conversation["id"]), "--json")
        assert shown.code == 0, shown.err
        for text in _strings(shown.json()):
            assert not FORBIDDEN.search(text), f"control character in show --json: {text!r}"
        plain = shop.cli("show", str(conversation["id"]))
        assert plain.code == 0, plain.err
        assert not FORBIDDEN.search(plain.out), f"control character in show: {plain.out!r}"
        assert not FORBIDDEN.search(plain.err)
    for text in _strings(listed.json()):
        assert not FORBIDDEN.search(text), f"control character in list --json: {text!r}"

    [eve] = [c for c in conversations if c["contact"]["address"] == "eve@example.org"]
    message = shop.cli("show", str(eve["id"]), "--json").json()["messages"][0]
    attachments = {a["name"]: a["content_type"] for a in message["attachments"]}
    # A media type that is none falls back to application/octet-stream; parameters are dropped.
    assert list(attachments.values()) == ["application/octet-stream"] * 2
    assert all(not name.startswith((".", "-")) and "/" not in name and "\\" not in name
               for name in attachments)
    assert "rot" in message["text"] and ESC not in message["text"]
