"""The world the CLI end-to-end tests run `agent-tui` in: real local servers and a config file.

Dovecot (IMAP) and the aiosmtpd sink come from tests/integration/conftest.py; the Twilio and
Telegram look-alikes are aiohttp servers, so they serve from an event loop in a background thread
while the test thread runs the CLI, which starts its own `asyncio.run`. The config names every
secret as an `env:` reference (the values are set with monkeypatch), so a test can check that no
secret value reaches stdout, stderr or `--json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent_tui.cli import main
from agent_tui.demo.fakes.telegram_server import FakeTelegram
from agent_tui.demo.fakes.twilio_server import DEFAULT_ACCOUNT_SID, FakeTwilio
from tests.fakes.dovecot import Dovecot
from tests.fakes.smtp_sink import SmtpSink

T = TypeVar("T")

MAIL_PASSWORD_ENV = "AGENT_TUI_E2E_MAIL_PASSWORD"
TWILIO_TOKEN_ENV = "AGENT_TUI_E2E_TWILIO_TOKEN"
TELEGRAM_TOKEN_ENV = "AGENT_TUI_E2E_TELEGRAM_TOKEN"
SHOP_NUMBER = "+493012345678"
CUSTOMER_NUMBER = "+4917012345678"
WHATSAPP_CUSTOMER = "+4915112345678"
TELEGRAM_USER = 4242

# A routine question ("opening-hours": no placeholder but the agent's name) and one whose answer
# needs an order lookup nobody configured ("tracking": {order.tracking_url} stays unfilled).
KNOWLEDGE = """\
[[entry]]
id = "opening-hours"
title = "Öffnungszeiten"
lang = "de"
keywords = ["öffnungszeiten", "geöffnet", "erreichbar", "hotline"]
examples = ["Wann haben Sie geöffnet?", "Wie sind Ihre Öffnungszeiten?",
            "Wann ist die Hotline erreichbar?"]
body = \"\"\"Guten Tag,

unser Service ist Montag bis Freitag von 9 bis 18 Uhr für Sie da.

Viele Grüße
{agent.name}\"\"\"
short = "Unser Service ist Mo-Fr 9-18 Uhr erreichbar. {agent.name}"
auto = true

[[entry]]
id = "tracking"
title = "Wo ist meine Bestellung?"
lang = "de"
keywords = ["bestellung", "paket", "sendungsverfolgung", "tracking"]
examples = ["Wo bleibt meine Bestellung?", "Wann kommt mein Paket an?"]
body = "Ihre Sendung können Sie hier verfolgen: {order.tracking_url}"
short = "Sendungsverfolgung: {order.tracking_url}"
auto = true

[[entry]]
id = "refund"
title = "Rückerstattung"
lang = "de"
keywords = ["rückerstattung", "erstattung", "storno", "geld zurück"]
examples = ["Wann bekomme ich mein Geld zurück?", "Ich möchte eine Rückerstattung."]
body = "Die Erstattung dauert fünf Werktage."
auto = false
"""

ROUTINE_QUESTION = "Hallo, wann haben Sie geöffnet? Wie sind Ihre Öffnungszeiten?"
TRACKING_QUESTION = "Wo bleibt meine Bestellung? Mein Paket ist noch nicht da."

AUTOMATION_ON = """\
[automation]
auto_reply = true
min_score = 0.75
window_hours = 24
"""


class BackgroundLoop:
    """An asyncio loop in a daemon thread, for servers that must outlive one `asyncio.run`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="e2e-fakes")
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        self.loop.close()


@dataclass(slots=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def run_cli(*args: str) -> CliResult:
    """`agent-tui ARGS` in this process, as a script calls it; stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:         # argparse usage errors
            code = int(exit_.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


def customer_mail(*, sender: str, to: str, subject: str, body: str, message_id: str,
                  name: str = "Erika Muster", headers: dict[str, str] | None = None,
                  date: datetime | None = None) -> bytes:
    """A plain-text mail as a customer (or a robot, given `headers`) sends it, dated now."""
    mail = EmailMessage()
    mail["From"] = f"{name} <{sender}>" if name else sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(date or datetime.now(UTC))
    mail["Message-ID"] = f"<{message_id}>"
    for key, value in (headers or {}).items():
        mail[key] = value
    mail.set_content(body)
    return bytes(mail)


@dataclass
class Shop:
    """One configured agent-tui installation: its directory, config file and mail account."""

    root: Path
    mail_user: str
    mail_password: str
    dovecot: Dovecot
    sink: SmtpSink
    twilio: FakeTwilio | None = None
    telegram: FakeTelegram | None = None
    loop: BackgroundLoop | None = None
    config_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "agent-tui.toml"
        (self.root / "knowledge.toml").write_text(KNOWLEDGE, encoding="utf-8")

    @property
    def store_path(self) -> Path:
        return self.root / "data" / "agent.db"

    def write_config(self, *, automation: str = AUTOMATION_ON, extra: str = "",
                     mail_password_env: str = MAIL_PASSWORD_ENV) -> Path:
        accounts = [f"""\
[[account]]
name = "shop-mail"
type = "email"
address = "{self.mail_user}"
password = "env:{mail_password_env}"
imap_host = "{self.dovecot.host}"
imap_port = {self.dovecot.port}
imap_tls = "none"
smtp_host = "{self.sink.host}"
smtp_port = {self.sink.port}
smtp_tls = "none"
"""]
        if self.twilio is not None:
            accounts.append(f"""\
[[account]]
name = "shop-sms"
type = "twilio"
account_sid = "{DEFAULT_ACCOUNT_SID}"
auth_token = "env:{TWILIO_TOKEN_ENV}"
sms_from = "{SHOP_NUMBER}"
whatsapp_from = "whatsapp:{SHOP_NUMBER}"
api_base = "{self.twilio.base_url}"
""")
        if self.telegram is not None:
            accounts.append(f"""\
[[account]]
name = "shop-telegram"
type = "telegram"
token = "env:{TELEGRAM_TOKEN_ENV}"
api_base = "{self.telegram.base_url}"
""")
        self.config_path.write_text(f"""\
[agent]
name = "Mia"
language = "de"

[store]
path = "data/agent.db"

[knowledge]
path = "knowledge.toml"

{automation}
{extra}
{chr(10).join(accounts)}""", encoding="utf-8")
        return self.config_path

    def cli(self, *args: str) -> CliResult:
        return run_cli("--config", str(self.config_path), *args)

    def deliver(self, raw: bytes) -> None:
        self.dovecot.deliver(raw, user=self.mail_user)

    def mail_from_customer(self, number: int, body: str, *, sender: str = "erika@example.org",
                           subject: str = "Frage", headers: dict[str, str] | None = None,
                           name: str = "Erika Muster") -> str:
        """Deliver a customer's mail to this shop's INBOX; returns its Message-ID."""
        message_id = f"m{number}.{self.mail_user.partition('@')[0]}@example.org"
        self.deliver(customer_mail(sender=sender, to=self.mail_user, subject=subject, body=body,
                                   message_id=message_id, name=name, headers=headers))
        return message_id

    def sms_from_customer(self, body: str, number: str = CUSTOMER_NUMBER) -> None:
        assert self.twilio is not None
        self.twilio.add_inbound(number, SHOP_NUMBER, body)

    def whatsapp_from_customer(self, body: str, number: str = WHATSAPP_CUSTOMER) -> None:
        assert self.twilio is not None
        self.twilio.add_inbound(f"whatsapp:{number}", f"whatsapp:{SHOP_NUMBER}", body)

    def telegram_from_customer(self, body: str, user_id: int = TELEGRAM_USER) -> None:
        assert self.telegram is not None and self.loop is not None
        telegram = self.telegram

        async def add() -> None:
            telegram.add_text(user_id, "Kim", body)

        self.loop.run(add())

    def sent_to(self, address: str) -> list[EmailMessage]:
        return [m.message for m in self.sink.received if address in m.recipients]


@contextlib.contextmanager
def chat_fakes(loop: BackgroundLoop, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[tuple[FakeTwilio, FakeTelegram]]:
    """FakeTwilio and FakeTelegram serving from `loop`; their tokens set in the environment."""
    twilio, telegram = FakeTwilio(), FakeTelegram()
    loop.run(twilio.start())
    loop.run(telegram.start())
    monkeypatch.setenv(TWILIO_TOKEN_ENV, twilio.auth_token)
    monkeypatch.setenv(TELEGRAM_TOKEN_ENV, telegram.token)
    try:
        yield twilio, telegram
    finally:
        loop.run(telegram.stop())
        loop.run(twilio.stop())
