"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

Switches make it misbehave for the next N messages: answer a 4xx or 5xx to DATA, or drop the
connection right after the data arrived (the message is recorded: the server got it, the client
never heard so - the uncertain case of invariant 2).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from agent_tui.loopback import free_port


@dataclass(slots=True)
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(slots=True)
class _Failure:
    remaining: int
    code: int = 0            # 0: drop the connection after DATA instead of answering
    text: str = ""


@dataclass
class SinkHandler:
    received: list[ReceivedMail] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        with self.lock:
            failure = self.failures[0] if self.failures else None
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self.failures.pop(0)
            if failure is None or failure.code == 0:
                self.received.append(ReceivedMail(str(envelope.mail_from),
                                                  list(envelope.rcpt_tos), bytes(data)))
                self.arrived.notify_all()
        if failure is None:
            return "250 OK queued"
        if failure.code == 0:
            transport = server.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return "250 OK (never seen by the client)"
        return f"{failure.code} {failure.text}"


class SmtpSink:
    """aiosmtpd on 127.0.0.1, with optional AUTH (PLAIN/LOGIN over plaintext, loopback only)."""

    host = "127.0.0.1"

    def __init__(self, users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.users = dict(users or {})
        self.port = port or free_port()
        self.handler = SinkHandler()
        kwargs: dict[str, Any] = {}
        if self.users:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False,
                          auth_required=False)
        self._controller = Controller(self.handler, hostname=self.host, port=self.port,
                                      **kwargs)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode()
            if self.users.get(user) == auth_data.password.decode():
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def received(self) -> list[ReceivedMail]:
        with self.handler.lock:
            return list(self.handler.received)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()
            self.handler.failures.clear()

    def fail_next(self, count: int, code: int, text: str = "try again later") -> None:
        """Answer `code text` to the DATA of the next `count` messages (they are not recorded)."""
        with self.handler.lock:
            self.handler.failures.append(_Failure(count, code, text))

    def drop_after_data_next(self, count: int = 1) -> None:
        """Record the next `count` messages, then drop the connection instead of answering."""
        with self.handler.lock:
            self.handler.failures.append(_Failure(count))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived (or the timeout passes)."""
        with self.handler.arrived:
            self.handler.arrived.wait_for(lambda: len(self.handler.received) >= count, timeout)
            return list(self.handler.received)
