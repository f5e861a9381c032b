"""Sending what the outbox holds, without ever sending a reply twice (invariant 2).

A reply is written to the outbox (`queued`) before any network call. Sending claims a row
(`queued -> sending`), calls the connector, and records the outcome. A row found in `sending` at the
start of a flush was left by a crashed process: it is reconciled with the provider first (mail: our
own Message-ID in Sent; Twilio: list by to/from/body/time; Telegram: cannot tell, so a person
decides) and only retried when the provider shows it did not go out.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_tui.errors import UsageError
from agent_tui.model import Channel, Direction, InboundMessage, OutboxState
from agent_tui.store import OutboxRow, StoreBackend
from connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    OutboundMessage,
    PermanentError,
    TransientError,
    UncertainDelivery,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with jitter; a provider's Retry-After wins when it is longer."""
    delay: timedelta = min(BASE_DELAY * (2 ** max(attempts - 1, 0)), MAX_DELAY)
    delay = delay * (0.75 + random.random() / 2)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def message_id_for(idempotency_key: str, from_address: str) -> str:
    """Our mail Message-ID, derived from the outbox key so that a reconcile can find it in Sent."""
    domain = from_address.rpartition("@")[2] or "agent-tui.invalid"
    return f"{idempotency_key}@{domain}"


def outbound_from_row(row: OutboxRow, from_address: str = "") -> OutboundMessage:
    p: dict[str, Any] = row.payload
    channel = Channel(p["channel"])
    return OutboundMessage(
        channel=channel,
        to=p["to"],
        text=p["text"],
        idempotency_key=row.idempotency_key,
        subject=p.get("subject", ""),
        in_reply_to=p.get("in_reply_to", ""),
        references=list(p.get("references", [])),
        message_id=(message_id_for(row.idempotency_key, from_address)
                    if channel is Channel.EMAIL else ""),
        automatic=bool(p.get("automatic", False)),
        extra={k: v for k, v in p.items() if k in ("last_inbound_at", "chat_id", "template")},
    )


@dataclass(slots=True)
class SendOutcome:
    outbox_id: int
    conversation_id: int
    account: str
    state: str          # sent | retry | failed | uncertain | reconciled
    detail: str = ""
    provider_id: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"outbox_id": self.outbox_id, "conversation_id": self.conversation_id,
                "account": self.account, "state": self.state, "detail": self.detail or None,
                "provider_id": self.provider_id or None}


@dataclass(slots=True)
class FlushResult:
    outcomes: list[SendOutcome] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)


class OutboxSender:
    """Flushes the outbox through the configured connectors."""

    def __init__(self, store: StoreBackend, connectors: Mapping[str, Connector],
                 addresses: Mapping[str, str], *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.connectors = connectors
        self.addresses = addresses
        self.clock = clock

    async def flush(self, *, accounts: set[str] | None = None) -> FlushResult:
        result = FlushResult()
        for stuck in self.store.outbox_stuck_sending():
            if accounts is None or stuck.account in accounts:
                result.outcomes.append(await self._reconcile(stuck))
        while (row := self.store.outbox_claim_next(self.clock(), accounts=accounts)) is not None:
            result.outcomes.append(await self._send(row))
        return result

    def _connector(self, row: OutboxRow) -> Connector | None:
        return self.connectors.get(row.account)

    async def _reconcile(self, row: OutboxRow) -> SendOutcome:
        connector = self._connector(row)
        outcome = SendOutcome(row.id, row.conversation_id, row.account, "uncertain")
        if connector is None:
            outcome.detail = f"account {row.account!r} is not configured"
            self.store.outbox_mark_uncertain(row.id, outcome.detail)
            return outcome
        out = outbound_from_row(row, self.addresses.get(row.account, ""))
        attempted = row.attempted_at or self.clock()
        try:
            provider_id = await connector.reconcile(out, attempted)
        except UncertainDelivery as exc:
            outcome.detail = str(exc)
            self.store.outbox_mark_uncertain(row.id, outcome.detail)
            return outcome
        except ConnectorError as exc:
            # Cannot ask the provider now: leave the row in `sending`; the next flush asks again.
            outcome.state, outcome.detail = "retry", f"reconcile postponed: {exc}"
            return outcome
        if provider_id:
            self._record_sent(row, out, provider_id)
            outcome.state, outcome.provider_id = "reconciled", provider_id
            outcome.detail = "found at the provider after a crash; not sent again"
            return outcome
        self.store.outbox_retry_later(row.id, "not found at the provider after a crash",
                                      self.clock())
        outcome.state, outcome.detail = "retry", "not sent before the crash; queued again"
        return outcome

    async def _send(self, row: OutboxRow) -> SendOutcome:
        connector = self._connector(row)
        outcome = SendOutcome(row.id, row.conversation_id, row.account, "failed")
        if connector is None:
            outcome.detail = f"account {row.account!r} is not configured"
            self.store.outbox_mark_failed(row.id, outcome.detail)
            return outcome
        out = outbound_from_row(row, self.addresses.get(row.account, ""))
        try:
            provider_id = await connector.send(out)
        except TransientError as exc:
            if row.attempts >= MAX_ATTEMPTS:
                outcome.detail = f"gave up after {row.attempts} attempts: {exc}"
                self.store.outbox_mark_failed(row.id, outcome.detail)
                return outcome
            when = self.clock() + retry_delay(row.attempts, exc.retry_after)
            self.store.outbox_retry_later(row.id, str(exc), when)
            outcome.state, outcome.detail = "retry", str(exc)
            return outcome
        except AuthError as exc:
            # Credentials are fixed by a person; keep the reply queued, try again later.
            when = self.clock() + MAX_DELAY
            self.store.outbox_retry_later(row.id, str(exc), when)
            outcome.state, outcome.detail = "retry", str(exc)
            return outcome
        except UncertainDelivery as exc:
            self.store.outbox_mark_uncertain(row.id, str(exc))
            outcome.state, outcome.detail = "uncertain", str(exc)
            return outcome
        except (PermanentError, ConnectorError) as exc:
            self.store.outbox_mark_failed(row.id, str(exc))
            outcome.detail = str(exc)
            return outcome
        self._record_sent(row, out, provider_id)
        outcome.state, outcome.provider_id = "sent", provider_id
        return outcome

    def confirm_sent(self, row: OutboxRow) -> str:
        """A person checked: this uncertain reply did go out. Record it as sent, in its
        conversation too, under our own Message-ID (mail) or a stand-in id (chat)."""
        if row.state is not OutboxState.UNCERTAIN:
            raise UsageError(f"outbox row {row.id} is {row.state}; only an uncertain reply "
                             "can be confirmed as sent")
        out = outbound_from_row(row, self.addresses.get(row.account, ""))
        provider_id = out.message_id or f"outbox:{row.idempotency_key}"
        self._record_sent(row, out, provider_id)
        return provider_id

    def _record_sent(self, row: OutboxRow, out: OutboundMessage, provider_id: str) -> None:
        """Mark the row sent and show the reply in its conversation at once."""
        now = self.clock()
        self.store.outbox_mark_sent(row.id, provider_id)
        sender = self.addresses.get(row.account, row.account)
        own = InboundMessage(
            channel=out.channel, provider_id=provider_id, direction=Direction.OUTBOUND,
            sender=sender, sender_name=str(row.payload.get("author", "")), recipients=[out.to],
            sent_at=now, subject=out.subject, text=out.text, in_reply_to=out.in_reply_to,
            references=list(out.references), delivery_status="sent",
            thread_key=str(row.payload.get("thread_key", "")),
            extra={"conversation_id": row.conversation_id, "outbox_id": row.id},
        )
        self.store.record_outbound(row.account, own, conversation_id=row.conversation_id)
        if out.automatic:
            contact_id = row.payload.get("contact_id")
            if contact_id is not None:
                self.store.record_auto_reply(int(contact_id), now)
