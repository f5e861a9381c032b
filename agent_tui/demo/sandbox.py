"""The sandbox: every server the demo needs, the seeded history, and the customers who keep writing.

All of it runs in one background thread with its own asyncio loop, so it serves the TUI (Textual's
loop in the main thread) and the headless mode alike, and `stop()` ends every server and task it
started. The connectors reach the servers over loopback exactly as they reach real services.

What the customers receive (our replies, by mail through the SMTP server, by SMS/WhatsApp through
the Twilio look-alike, by Telegram through its look-alike) is recorded as `Delivery` objects and
written to `customers.log` in the demo directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from imapclient import IMAPClient

from agent_tui.demo import scenario
from agent_tui.demo.fakes.telegram_server import FakeTelegram
from agent_tui.demo.fakes.twilio_server import FakeTwilio
from agent_tui.demo.scenario import Customer, Message
from agent_tui.demo.servers import (
    DeliveredMail,
    EnrichmentServer,
    ImapServer,
    SmtpServer,
)
from agent_tui.errors import AgentTuiError
from agent_tui.sanitize import clean_line, clean_text

log = logging.getLogger(__name__)

T = TypeVar("T")

STARTUP_TIMEOUT = 60.0         # seconds for servers plus seeded history
STOP_TIMEOUT = 15.0
WATCH_INTERVAL = 1.0           # seconds between looks at the look-alikes' sent messages
SEED_BATCH = 50                # mails per MULTIAPPEND
SENT_FOLDER = "Sent"


class DemoError(AgentTuiError):
    """The sandbox could not start (a server failed); exit 1."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A reply that reached a demo customer."""

    channel: str
    to: str
    text: str
    subject: str = ""
    message_id: str = ""             # mail: the reply's Message-ID
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def log_line(self) -> str:
        # Our replies may quote a customer: shown on a terminal, so sanitised like any view.
        first = clean_line(self.text)[:100]
        about = f" {clean_line(self.subject)!r}" if self.subject else ""
        return f"reply arrived at {self.channel} customer {self.to}:{about} {first}"


@dataclass(slots=True)
class SandboxOptions:
    seed: int = 7
    history_conversations: int = 160
    opening_wave: bool = True
    live_interval: tuple[float, float] | None = (20.0, 45.0)   # None: no customers write live
    thanks_probability: float = 0.4   # a customer thanks for a reply
    thanks_delay: float = 20.0


def _mail_delivery(mail: DeliveredMail, recipient: str) -> Delivery:
    message = mail.message
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return Delivery("email", recipient, str(text), str(message.get("Subject", "")),
                    str(message.get("Message-ID", "")))


class Sandbox:
    """Start with `start()` (blocks until everything is up and seeded), end with `stop()`."""

    def __init__(self, directory: Path, options: SandboxOptions | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.options = options or SandboxOptions()
        self._report = report
        self._rng = random.Random(self.options.seed)
        self.orders = scenario.orders()
        self.imap = ImapServer(scenario.SHOP_MAIL, scenario.SHOP_MAIL_PASSWORD)
        self.smtp = SmtpServer(self._on_mail)
        self.enrichment = EnrichmentServer(self.orders)
        self.twilio = FakeTwilio()
        self.telegram = FakeTelegram(token=scenario.TELEGRAM_TOKEN)
        self.twilio_base = ""
        self.telegram_base = ""
        self.telegram_token = scenario.TELEGRAM_TOKEN
        self._deliveries: list[Delivery] = []
        self._written: list[Message] = []
        self.history: list[Message] = []         # what was seeded, before start() returned
        self._lock = threading.RLock()      # re-entered by wait_until's condition
        self._arrived = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._seen_twilio: set[str] = set()
        self._seen_telegram = 0
        self._log_file = directory / "customers.log"

    # --- what the outside sees ------------------------------------------------------------

    @property
    def channels(self) -> tuple[str, ...]:
        return scenario.CHANNELS

    @property
    def ports(self) -> dict[str, int]:
        found = {"imap": self.imap.port, "smtp": self.smtp.port,
                 "enrichment": self.enrichment.port}
        for name, base in (("twilio", self.twilio_base), ("telegram", self.telegram_base)):
            if base:
                found[name] = int(base.rsplit(":", 1)[1].split("/")[0])
        return found

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def written(self) -> list[Message]:
        """Live customer messages written so far (not the seeded history)."""
        with self._lock:
            return list(self._written)

    def wait_for_deliveries(self, count: int, timeout: float) -> list[Delivery]:
        """Block until at least `count` replies reached customers, or the timeout passes."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self._deliveries) >= count, timeout)
            return list(self._deliveries)

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Block until `condition()` holds, checked whenever a message is written or a reply
        arrives; False if the timeout passes first."""
        with self._arrived:
            return self._arrived.wait_for(condition, timeout)

    def wait_for_written(self, count: int, timeout: float) -> list[Message]:
        """Block until customers wrote at least `count` live messages, or the timeout passes."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self._written) >= count, timeout)
            return list(self._written)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._thread_main, name="agent-tui-demo-sandbox",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            self.stop()
            raise DemoError(f"the demo servers did not start within {STARTUP_TIMEOUT:.0f} s")
        if self._error is not None:
            self.stop()
            raise DemoError(f"the demo servers could not start: {self._error}") from self._error

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):     # the loop ended in the meantime
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine in the sandbox's loop from another thread and return its result."""
        if self._loop is None:
            coroutine.close()
            raise DemoError("the sandbox is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start_customers(self) -> None:
        """The opening wave (all channels, all kinds), then a message now and then."""
        self.call(self._start_customers())

    def write(self, message: Message) -> None:
        """Have a customer write one message now."""
        self.call(self._write(message))

    # --- inside the loop ------------------------------------------------------------------

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self._start_servers()
            await self._seed_history()
        except Exception as exc:  # reported to start(), which raises DemoError
            self._error = exc
        self._ready.set()
        try:
            if self._error is None:
                self._tasks.append(asyncio.create_task(self._watch_lookalikes()))
                await self._stopping.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._stop_servers()

    async def _start_servers(self) -> None:
        await self.imap.start()
        await self.smtp.start()
        await self.enrichment.start()
        self.twilio_base = await self.twilio.start()
        self.telegram_base = await self.telegram.start()
        await asyncio.to_thread(self._prepare_mailbox)

    async def _stop_servers(self) -> None:
        for server in (self.telegram, self.twilio, self.enrichment, self.smtp, self.imap):
            with contextlib.suppress(Exception):
                await server.stop()

    # --- mail ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _imap_client(self) -> Iterator[IMAPClient]:
        client = IMAPClient(self.imap.host, port=self.imap.port, ssl=False, timeout=10)
        try:
            client.login(scenario.SHOP_MAIL, scenario.SHOP_MAIL_PASSWORD)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def _prepare_mailbox(self) -> None:
        with self._imap_client() as client:
            if not client.folder_exists(SENT_FOLDER):
                client.create_folder(SENT_FOLDER)

    def _append_mails(self, folder: str, messages: Sequence[Message]) -> None:
        with self._imap_client() as client:
            for start in range(0, len(messages), SEED_BATCH):
                batch = messages[start:start + SEED_BATCH]
                client.multiappend(folder, [
                    {"msg": m.mail_bytes(), "date": m.sent_at,
                     "flags": (b"\\Seen",) if m.outbound or m.kind == "thanks" else ()}
                    for m in batch])

    # --- seeding --------------------------------------------------------------------------

    async def _seed_history(self) -> None:
        now = datetime.now(UTC)
        messages = scenario.history(self._rng, now, self.options.history_conversations)
        self.history = messages
        mail = [m for m in messages if m.customer.channel == "email"]
        await asyncio.to_thread(self._append_mails, "INBOX", [m for m in mail if not m.outbound])
        await asyncio.to_thread(self._append_mails, SENT_FOLDER, [m for m in mail if m.outbound])
        # Only what customers wrote: the Twilio connector reads inbound messages (our own are
        # looked at only to follow their delivery status).
        for message in messages:
            if message.customer.channel in ("sms", "whatsapp") and not message.outbound:
                self._twilio_add(message)
        self._seen_twilio = {m.sid for m in self.twilio.messages}
        self._event(f"seeded {len(messages)} messages of history over the past "
                    f"{scenario.HISTORY_DAYS} days")

    def _shop_twilio_address(self, customer: Customer) -> str:
        return (f"whatsapp:{scenario.SHOP_NUMBER}" if customer.channel == "whatsapp"
                else scenario.SHOP_NUMBER)

    def _twilio_add(self, message: Message) -> None:
        self.twilio.add_inbound(message.customer.twilio_address,
                                self._shop_twilio_address(message.customer), message.text,
                                message.sent_at)

    # --- live customers -------------------------------------------------------------------

    async def _start_customers(self) -> None:
        if self.options.opening_wave:
            for message in scenario.opening_wave(self._rng):
                await self._write(message)
        if self.options.live_interval is not None:
            self._tasks.append(asyncio.create_task(self._keep_writing(
                self.options.live_interval)))

    async def _keep_writing(self, interval: tuple[float, float]) -> None:
        for message in scenario.live_messages(self._rng):
            # The pace of the simulated customers, not synchronisation.
            await asyncio.sleep(self._rng.uniform(*interval))
            await self._write(message)

    async def _write(self, message: Message) -> None:
        channel = message.customer.channel
        if channel == "email":
            await asyncio.to_thread(self._append_mails, "INBOX", [message])
        elif channel in ("sms", "whatsapp"):
            self._twilio_add(message)
        else:
            self.telegram.add_text(int(message.customer.address), message.customer.first_name,
                                   message.text)
        with self._arrived:
            self._written.append(message)
            self._arrived.notify_all()
        subject = f" {clean_line(message.subject)!r}" if message.subject else ""
        author = clean_line(message.sender_name or message.customer.name)
        self._event(f"{author} wrote on {channel} ({message.kind}){subject}")

    # --- what reaches the customers -------------------------------------------------------

    def _on_mail(self, mail: DeliveredMail) -> None:
        for recipient in mail.recipients:
            self._delivered(_mail_delivery(mail, recipient))

    async def _watch_lookalikes(self) -> None:
        while True:
            self._collect_twilio()
            self._collect_telegram()
            await asyncio.sleep(WATCH_INTERVAL)

    def _collect_twilio(self) -> None:
        for record in list(self.twilio.messages):
            if record.sid in self._seen_twilio or record.direction == "inbound":
                continue
            self._seen_twilio.add(record.sid)
            channel = "whatsapp" if record.to.startswith("whatsapp:") else "sms"
            self._delivered(Delivery(channel, record.to.removeprefix("whatsapp:"), record.body))

    def _collect_telegram(self) -> None:
        sent = list(self.telegram.sent)
        for record in sent[self._seen_telegram:]:
            self._delivered(Delivery("telegram", str(record.chat_id), record.text))
        self._seen_telegram = len(sent)

    def _customer(self, channel: str, address: str) -> Customer | None:
        for customer in scenario.CUSTOMERS:
            if customer.channel == channel and customer.address.lower() == address.lower():
                return customer
        return None

    def _delivered(self, delivery: Delivery) -> None:
        with self._arrived:
            self._deliveries.append(delivery)
            self._arrived.notify_all()
        self._event(delivery.log_line())
        with self._log_file.open("a", encoding="utf-8") as out:
            subject = clean_line(delivery.subject)
            out.write(f"{delivery.at:%Y-%m-%d %H:%M:%S} to {delivery.channel} {delivery.to}"
                      f"{f' subject {subject!r}' if subject else ''}\n")
            out.writelines(f"    | {line}\n" for line in clean_text(delivery.text).splitlines())
        customer = self._customer(delivery.channel, delivery.to)
        if customer is not None and self._rng.random() < self.options.thanks_probability:
            thanks = scenario.thanks_for(customer, self._rng, subject=delivery.subject,
                                         in_reply_to=delivery.message_id)
            self._tasks.append(asyncio.create_task(self._write_later(thanks)))

    async def _write_later(self, message: Message) -> None:
        await asyncio.sleep(self.options.thanks_delay)     # a person takes a moment to answer
        await self._write(message)

    def _event(self, text: str) -> None:
        log.info("demo: %s", text)
        if self._report is not None:
            self._report(text)
