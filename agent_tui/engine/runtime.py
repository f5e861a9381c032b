"""The running engine: connectors built from the config, sync loops, the outbox sender.

The same engine serves the TUI (`Engine.run` as a background task), `sync`, `reply` and
`run --once`.
Connector modules are imported only for the account types that are configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_tui.config import Account, Config, EmailAccount, TelegramAccount, TwilioAccount
from agent_tui.engine.assignment import PRESENCE_RENEW_SECONDS, Presence, assigner_for
from agent_tui.engine.enrich import enrich_messages
from agent_tui.engine.outbox import FlushResult, OutboxSender
from agent_tui.engine.replies import ReplyResult, queue_reply
from agent_tui.engine.sync import Enricher, SyncResult, after_ingest, sync_account
from agent_tui.errors import AgentTuiError, UsageError
from agent_tui.model import Channel, InboundMessage
from agent_tui.sanitize import unfiltered
from agent_tui.secrets import resolve_account_secret
from agent_tui.store import OutboxRow, StoreBackend
from connectors.base import Connector, ConnectorError

if TYPE_CHECKING:
    from connectors.twilio_webhook import TwilioWebhookServer

log = logging.getLogger(__name__)

OUTBOX_INTERVAL = 30.0          # seconds between outbox flushes when nothing wakes it
RETRY_AFTER_ERROR = 60.0        # seconds before a failed account is synced again
RETRY_AFTER_STORE_ERROR = 5.0   # ... when the database was away (a restart is over in seconds)
WEBHOOK_CURSOR_KEY = "webhook"  # webhook messages move no cursor; the poll keeps its own


def build_connector(account: Account, secret: str) -> Connector:
    """The connector for one configured account (the secret already resolved)."""
    if isinstance(account, EmailAccount):
        from connectors.email import EmailConnector, EmailSettings

        return EmailConnector(EmailSettings(
            name=account.name, address=account.address, username=account.username,
            password=secret, imap_host=account.imap_host, imap_port=account.imap_port,
            imap_tls=account.imap_tls, smtp_host=account.smtp_host,
            smtp_port=account.smtp_port, smtp_tls=account.smtp_tls,
            folders=tuple(account.folders), sent_folder=account.sent_folder))
    if isinstance(account, TwilioAccount):
        from connectors.twilio import TwilioConnector, TwilioSettings

        return TwilioConnector(TwilioSettings(
            name=account.name, account_sid=account.account_sid, auth_token=secret,
            sms_from=account.sms_from, whatsapp_from=account.whatsapp_from,
            api_base=account.api_base, poll_interval=account.poll_interval,
            default_region=account.default_region, secret_ref=str(account.auth_token)))
    if isinstance(account, TelegramAccount):
        from connectors.telegram import TelegramConnector, TelegramSettings

        return TelegramConnector(TelegramSettings(
            name=account.name, token=secret, api_base=account.api_base))
    raise AgentTuiError(f"account {account.name!r}: unknown type")


def connector_class(channel: Channel) -> type[Connector]:
    """The connector that speaks `channel`, for what needs no account (`attachment_in_source`)."""
    if channel is Channel.EMAIL:
        from connectors.email import EmailConnector

        return EmailConnector
    if channel in (Channel.SMS, Channel.WHATSAPP):
        from connectors.twilio import TwilioConnector

        return TwilioConnector
    if channel is Channel.TELEGRAM:
        from connectors.telegram import TelegramConnector

        return TelegramConnector
    raise AgentTuiError(f"no connector speaks {channel}")


def connector_for(config: Config, account_name: str) -> Connector:
    """A connector for one configured account (NotFound, SecretError: AgentTuiError)."""
    account = config.account(account_name)
    return build_connector(account, resolve_account_secret(account))


def account_address(account: Account) -> str:
    if isinstance(account, EmailAccount):
        return account.address
    if isinstance(account, TwilioAccount):
        return account.sms_from or (account.whatsapp_from or "").removeprefix("whatsapp:")
    return account.name


def account_addresses(config: Config) -> dict[str, str]:
    """Our own address on each account, by account name (the sender of our replies)."""
    return {a.name: account_address(a) for a in config.accounts}


@dataclass(slots=True)
class Connectors:
    """The connectors that could be built, and why the others could not."""

    by_account: dict[str, Connector]
    errors: dict[str, str]
    addresses: dict[str, str]

    async def close(self) -> None:
        for connector in self.by_account.values():
            with contextlib.suppress(Exception):
                await connector.close()


def build_connectors(config: Config, only: str | None = None) -> Connectors:
    if only is not None:
        config.account(only)            # NotFound for a name that is not configured
    built: dict[str, Connector] = {}
    errors: dict[str, str] = {}
    for account in config.accounts:
        if only is not None and account.name != only:
            continue
        try:
            built[account.name] = build_connector(account, resolve_account_secret(account))
        except AgentTuiError as exc:
            errors[account.name] = str(exc)
    return Connectors(built, errors, account_addresses(config))


def enricher_for(config: Config, store: StoreBackend) -> Enricher:
    async def enrich(message_ids: list[int]) -> int:
        return await enrich_messages(store, config.enrichment, message_ids)

    return enrich


def _terminal_progress() -> Callable[[str, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(account: str, fetched: int) -> None:
        stderr = unfiltered(sys.stderr)
        stderr.write(f"\r{account}: {fetched} messages fetched ")
        stderr.flush()

    return show


async def sync_once(config: Config, store: StoreBackend, *, only: str | None = None,
                    progress: bool = True) -> list[SyncResult]:
    """Fetch everything new for every account (or one), side by side."""
    connectors = build_connectors(config, only)
    show = _terminal_progress() if progress else None
    try:
        results = list(await asyncio.gather(*(
            sync_account(store, connector, name, progress=show,
                         enrich=enricher_for(config, store),
                         assign=assigner_for(config.assignment, store),
                         region=config.agent.default_region)
            for name, connector in connectors.by_account.items())))
    finally:
        await connectors.close()
        if show:
            unfiltered(sys.stderr).write("\r\x1b[K")
    for name, error in connectors.errors.items():
        results.append(SyncResult(name, error=error, error_kind="config"))
    order = [a.name for a in config.accounts]
    return sorted(results, key=lambda r: order.index(r.account) if r.account in order else 0)


async def flush_outbox(config: Config, store: StoreBackend, *,
                       accounts: set[str] | None = None) -> FlushResult:
    connectors = build_connectors(config)
    try:
        sender = OutboxSender(store, connectors.by_account, connectors.addresses)
        return await sender.flush(accounts=accounts)
    finally:
        await connectors.close()


class Engine:
    """Keeps every account synced and the outbox flushed while the TUI runs.

    `present`: the agent (`[agent] name`, else the Unix user) is at work while it runs, so
    round-robin assignment may give them new conversations (agent_tui.engine.assignment);
    `sync --watch` runs without it.
    """

    def __init__(self, config: Config, store: StoreBackend, *, present: bool = True) -> None:
        self.config = config
        self.store = store
        self.agent_name = config.agent.who
        self.presence = Presence(store, self.agent_name) if present else None
        self._states: dict[str, str] = {a.name: "starting" for a in config.accounts}
        self._outbox_wake = asyncio.Event()
        self.webhook_urls: list[str] = []   # where Twilio webhooks are taken, once started
        self.started = asyncio.Event()      # set when webhooks listen and every loop runs
        self._connectors: Connectors | None = None

    def status(self) -> dict[str, str]:
        """Account -> "ok" | "syncing" | "retrying: ..." | "auth error: ..." | "busy: ..."."""
        return dict(self._states)

    def wake_outbox(self) -> None:
        self._outbox_wake.set()

    async def run(self) -> None:
        self._connectors = build_connectors(self.config)
        for name, error in self._connectors.errors.items():
            self._states[name] = f"config error: {error}"
        webhooks = await self._start_webhooks(set(self._connectors.by_account))
        tasks = [asyncio.create_task(self._account_loop(name, connector))
                 for name, connector in self._connectors.by_account.items()]
        tasks.append(asyncio.create_task(self._outbox_loop()))
        if self.presence is not None:
            self._renew_presence()
            tasks.append(asyncio.create_task(self._presence_loop()))
        self.started.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.presence is not None:
                with contextlib.suppress(AgentTuiError):
                    self.presence.release()
            for server in webhooks:
                await server.stop()
            await self._connectors.close()

    async def _start_webhooks(self, working: set[str]) -> list[TwilioWebhookServer]:
        """Twilio accounts with `webhook_port`: messages arrive at once instead of at the next
        poll (which stays, as the safety net). A port already taken (another agent-tui on this
        host has it) leaves the account to polling."""
        from connectors.twilio_webhook import TwilioWebhookServer, WebhookSettings

        servers: list[TwilioWebhookServer] = []
        for account in self.config.accounts:
            if not isinstance(account, TwilioAccount) or not account.webhook_port:
                continue
            if account.name not in working:
                continue        # its secret or settings failed: the state says why
            settings = WebhookSettings(auth_token=resolve_account_secret(account),
                                       default_region=account.default_region,
                                       public_base_url=account.webhook_public_url)
            server = TwilioWebhookServer(settings, functools.partial(self._take_webhook,
                                                                     account.name))
            try:
                url = await server.start(account.webhook_host, account.webhook_port)
            except OSError as exc:
                log.warning("account %s: webhook not started on %s:%s (%s); polling only",
                            account.name, account.webhook_host, account.webhook_port, exc)
                continue
            log.info("account %s: taking Twilio webhooks at %s", account.name, url)
            self.webhook_urls.append(url + settings.path)
            servers.append(server)
        return servers

    async def _take_webhook(self, account: str, message: InboundMessage) -> None:
        """A signed webhook's message (or delivery status): stored like a fetched one; the poll
        that finds it again is deduplicated by its SID."""
        outcome = self.store.ingest(account, [message], cursor_key=WEBHOOK_CURSOR_KEY,
                                    cursor=None)
        if outcome.new_message_ids:
            await after_ingest(self.store, outcome.new_message_ids,
                               enrich=enricher_for(self.config, self.store),
                               assign=assigner_for(self.config.assignment, self.store),
                               region=self.config.agent.default_region)
            self.wake_outbox()

    async def _account_loop(self, name: str, connector: Connector) -> None:
        while True:
            self._states[name] = "syncing"
            result = await sync_account(self.store, connector, name,
                                        enrich=enricher_for(self.config, self.store),
                                        assign=assigner_for(self.config.assignment, self.store),
                                        region=self.config.agent.default_region)
            if result.error_kind == "auth":
                self._states[name] = f"auth error: {result.error}"
            elif result.error_kind == "busy":
                self._states[name] = f"busy: {result.error}"
            elif result.error:
                self._states[name] = f"retrying: {result.error}"
            else:
                self._states[name] = "ok"
            if result.new:
                self.wake_outbox()
            if result.error:
                await asyncio.sleep(RETRY_AFTER_STORE_ERROR if result.error_kind == "store"
                                    else RETRY_AFTER_ERROR)
                continue
            try:
                await self._wait_for_news(connector)
            except ConnectorError as exc:
                self._states[name] = f"retrying: {exc}"
                await asyncio.sleep(RETRY_AFTER_ERROR)

    async def _wait_for_news(self, connector: Connector) -> None:
        """Until the service signals news (IDLE, long poll) or its polling interval passes."""
        async for _ in connector.listen():
            return
        await asyncio.sleep(getattr(connector, "poll_interval", 60.0))

    def _renew_presence(self) -> None:
        assert self.presence is not None
        try:
            if not self.presence.renew():
                log.warning("presence of %s not recorded in the store", self.agent_name)
        except AgentTuiError as exc:      # the store is away for a moment: try again later
            log.warning("presence of %s not renewed: %s", self.agent_name, exc)

    async def _presence_loop(self) -> None:
        """Keep this agent present (round-robin assignment) while the engine runs."""
        while True:
            await asyncio.sleep(PRESENCE_RENEW_SECONDS)
            self._renew_presence()

    async def _outbox_loop(self) -> None:
        assert self._connectors is not None
        sender = OutboxSender(self.store, self._connectors.by_account,
                              self._connectors.addresses)
        while True:
            try:
                await sender.flush()
            except AgentTuiError as exc:      # the store is away for a moment: next round
                log.warning("outbox flush failed: %s", exc)
            except Exception:  # the loop must survive anything one row does
                log.exception("outbox flush failed")
            self._outbox_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox_wake.wait(), OUTBOX_INTERVAL)


def build_engine(config: Config, store: StoreBackend, *, present: bool = True) -> Engine:
    return Engine(config, store, present=present)


async def reply_from_cli(config: Config, store: StoreBackend, conversation_id: int, *,
                         text: str | None, entry_id: str | None, send: bool) -> ReplyResult:
    """`agent-tui reply`: queue a reply (typed or from an entry), then flush its account."""
    conversation = store.get_conversation(conversation_id)
    if entry_id is not None:
        from agent_tui.engine.suggestions import render_entry_for

        rendered = render_entry_for(config, conversation, entry_id)
        if not rendered.complete:
            raise UsageError(f"entry {entry_id!r} cannot be filled for conversation "
                             f"{conversation_id}: missing {', '.join(rendered.missing)}")
        text = rendered.text
    author = config.agent.who
    outbox_id = queue_reply(store, conversation_id, text or "", author=author, entry_id=entry_id)
    if not send:
        return ReplyResult(outbox_id, conversation_id, "queued")
    return await _flush_one(config, store, store.outbox_get(outbox_id))


async def _flush_one(config: Config, store: StoreBackend, row: OutboxRow) -> ReplyResult:
    """Flush the row's account and report what became of this row."""
    flushed = await flush_outbox(config, store, accounts={row.account})
    for outcome in flushed.outcomes:
        if outcome.outbox_id == row.id:
            return ReplyResult(row.id, row.conversation_id, outcome.state, outcome.detail,
                               outcome.provider_id)
    return ReplyResult(row.id, row.conversation_id, "queued", "waiting for its retry time")


async def decide_outbox_row(config: Config, store: StoreBackend, outbox_id: int,
                            decision: str) -> ReplyResult:
    """A person's decision on a reply the outbox could not settle alone: `resend` it (uncertain
    or failed), `confirm` it went out (uncertain: the customer has it), or `cancel` it."""
    row = store.outbox_get(outbox_id)
    if decision == "resend":
        store.outbox_requeue(outbox_id)
        return await _flush_one(config, store, row)
    if decision == "confirm":
        provider_id = OutboxSender(store, {}, account_addresses(config)).confirm_sent(row)
        return ReplyResult(row.id, row.conversation_id, "sent", "confirmed by a person",
                           provider_id)
    if decision != "cancel":
        raise UsageError(f"unknown outbox decision {decision!r}")
    detail = f"cancelled by {config.agent.who}"
    store.outbox_cancel(outbox_id, detail)
    return ReplyResult(row.id, row.conversation_id, "cancelled", detail)
