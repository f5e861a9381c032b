"""What every connector offers: the protocol, the outbound message, fetch batches and errors.

A connector talks to one account on one service. It knows nothing of the store or the UI: the engine
hands it a cursor, gets back messages plus the next cursor, and stores both in one transaction
(DESIGN.md invariant 1). `InboundMessage` and `Cursor` live in `agent_tui.model`, beside the
types the store keeps them as, so the store needs nothing from here.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent_tui.model import Channel, Cursor, InboundMessage


@dataclass(slots=True)
class OutboundMessage:
    """A reply to send. Built from an outbox row; `idempotency_key` is stable across retries."""

    channel: Channel
    to: str
    text: str
    idempotency_key: str
    subject: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    message_id: str = ""             # mail: our own Message-ID, made before the first attempt
    automatic: bool = False          # adds Auto-Submitted: auto-replied on mail
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class FetchBatch:
    messages: list[InboundMessage]
    cursor: Cursor
    done: bool                       # False while more batches remain for this fetch
    # provider ids of messages fetched before that another client has read since (mail: \\Seen)
    read_elsewhere: list[str] = field(default_factory=list)


class ConnectorError(Exception):
    """Base of every connector error. Messages name the account, never a secret."""


class AuthError(ConnectorError):
    """Credentials refused: retrying will not help until the user fixes them."""


class TransientError(ConnectorError):
    """Network trouble, timeouts, 429 and 5xx: retry later with backoff."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """The service refused this message for good (SMTP 5xx, invalid number, window closed)."""


class ConflictError(ConnectorError):
    """Another poller holds the account (Telegram 409)."""


class UncertainDelivery(ConnectorError):
    """We cannot tell whether a send went through; a person must decide (never resend blindly)."""


class Connector(abc.ABC):
    """One account on one service."""

    name: str

    @abc.abstractmethod
    def fetch(self, cursor: Cursor | None) -> AsyncIterator[FetchBatch]:
        """Yield batches of new messages after `cursor`, each with the cursor that covers it."""

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> str:
        """Send one message and return the provider's id for it."""

    @abc.abstractmethod
    async def reconcile(self, message: OutboundMessage, attempted_at: datetime) -> str | None:
        """After a crash in `sending`: the provider id if the message did go out, else None.

        Raises UncertainDelivery when the service cannot tell (Telegram).
        """

    async def listen(self) -> AsyncIterator[None]:
        """Yield whenever the service signals news (IDLE, long poll); default: never."""
        if False:  # pragma: no cover - an async generator that yields nothing
            yield None

    @abc.abstractmethod
    async def check(self) -> str:
        """Log in and return a one-line summary for `doctor`; raise ConnectorError on failure."""

    async def fetch_attachment(self, ref: str) -> bytes:
        """The bytes of an attachment the service keeps (`AttachmentInfo.ref`)."""
        raise ConnectorError(f"account {self.name!r}: this service keeps no attachments to fetch")

    @classmethod
    def attachment_in_source(cls, source: bytes, ref: str) -> bytes:
        """The bytes of the attachment `ref` (`AttachmentInfo.ref`) inside a message's source as
        the store keeps it (`InboundMessage.raw`); LookupError with a reason if there is none.

        A class method: it needs no connection and no credentials. Mail carries its attachments
        in its source; chat media stay at the service (`fetch_attachment`)."""
        raise LookupError("this service's messages carry no attachments in their source")

    async def delete_remote(self, provider_ids: list[str], *, dry_run: bool = False) -> int:
        """Delete these messages at the service (erasure, Art. 17); returns how many were found
        (and, unless `dry_run`, deleted). Services that cannot delete raise ConnectorError."""
        raise ConnectorError(f"account {self.name!r}: this service cannot delete messages")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
