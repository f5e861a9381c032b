"""The mail connector: IMAP in (imapclient, IDLE), SMTP out (aiosmtplib), MIME in mime.py.

Cursor (JSON): {folder: {"uidvalidity": int, "last_uid": int, "highestmodseq": int}} for every
fetched folder (the configured ones plus Sent, whose mail comes back as OUTBOUND so a thread shows
both sides). Each batch's cursor covers exactly the messages in it (invariant 1).

Flags: every fetched message carries `extra = {"folder", "uid", "uidvalidity", "flags"}`. Flag
changes of already fetched messages (via CONDSTORE, when the server has it) are reported in
`EmailFetchBatch.flag_changes` as `FlagChange(folder, uid, message_id, flags)` - no message is
re-sent to the store for them, so store dedupe is untouched; the ones now \\Seen also go into
`FetchBatch.read_elsewhere`, and a message fetched already \\Seen comes with `read = True`.

Sending: before SMTP, a copy of the reply is appended to Sent marked \\Draft ("pending"); once
SMTP accepted it the mark is removed, when SMTP refused it the copy is deleted. `reconcile` reads
the copies of our own Message-ID in Sent: one without the mark means sent, only marked ones mean a
crash while SMTP had the mail (UncertainDelivery: a person decides), none means never sent. So no
crash can make the outbox send a reply twice (invariant 2). Fetching skips pending copies in Sent.
Only when the server refuses the APPEND itself (quota) does the reply go out without that trace.
A connection lost during DATA raises UncertainDelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from agent_tui.model import Direction
from connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    Cursor,
    FetchBatch,
    InboundMessage,
    OutboundMessage,
    TransientError,
    UncertainDelivery,
)
from connectors.email import imap, smtp
from connectors.email.endpoint import Endpoint, is_loopback
from connectors.email.imap import FolderState, FolderStatus, RawMessage
from connectors.email.mime import build_reply, parse_message

log = logging.getLogger(__name__)

PENDING_FLAG = imap.DRAFT.decode()     # marks our copy in Sent while SMTP has not answered

__all__ = ["EmailConnector", "EmailFetchBatch", "EmailSettings", "FlagChange", "is_loopback"]


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """Everything the connector needs; the engine maps the config's [[account]] to it."""

    name: str
    address: str
    username: str
    password: str = field(repr=False)          # already resolved from its secret reference
    imap_host: str = "localhost"
    imap_port: int = 993
    imap_tls: str = "implicit"                 # implicit | starttls | none (loopback only)
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_tls: str = "starttls"
    folders: tuple[str, ...] = ("INBOX",)
    sent_folder: str = "Sent"                  # "" to neither read nor append a Sent copy
    display_name: str = ""                     # From: display name of replies
    timeout: float = 30.0                      # seconds: connect and every server reply
    batch_size: int = 200                      # messages per UID FETCH
    idle_renew: float = 540.0                  # re-IDLE after this many seconds (< 29 min)
    poll_interval: float = 60.0                # STATUS poll without IDLE; other folders' check
    parallel_parse_min: int = 1000             # new messages from which parsing uses processes

    @property
    def imap(self) -> Endpoint:
        return Endpoint(self.name, "IMAP", self.imap_host, self.imap_port, self.imap_tls,
                        self.username, self.password, self.timeout)

    @property
    def smtp(self) -> Endpoint:
        return Endpoint(self.name, "SMTP", self.smtp_host, self.smtp_port, self.smtp_tls,
                        self.username, self.password, self.timeout)

    @property
    def fetch_folders(self) -> tuple[str, ...]:
        folders = list(dict.fromkeys(self.folders))
        if self.sent_folder and self.sent_folder not in folders:
            folders.append(self.sent_folder)
        return tuple(folders)


@dataclass(frozen=True, slots=True)
class FlagChange:
    folder: str
    uid: int
    message_id: str          # the provider id, without brackets ("" if the mail has none)
    flags: tuple[str, ...]   # e.g. ("\\Answered", "\\Seen")

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags

    @property
    def answered(self) -> bool:
        return "\\Answered" in self.flags


@dataclass(slots=True)
class EmailFetchBatch(FetchBatch):
    flag_changes: list[FlagChange] = field(default_factory=list)


PARENT_CHECK_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def parse_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for parsing a big sync; they end with this process."""
    # spawn, not fork: this process has threads (IMAP connections, IDLE).
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent_pid: int) -> None:
    """In a parse worker: end when the process that started it ends, however it ends.

    A killed `sync` must not leave workers behind that hold its stdout open (a pipeline after
    it would never end). Linux's PR_SET_PDEATHSIG signals at once; a thread that watches the
    parent's pid covers the rest (other systems, and a parent that died before this ran).
    """
    import ctypes
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(PARENT_CHECK_SECONDS)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _consume_exception(future: asyncio.Future[Any]) -> None:
    """An abandoned prefetch must not warn about an exception nobody retrieved."""
    if not future.cancelled():
        future.exception()


def parse_raw_messages(raws: list[RawMessage], folder: str, uidvalidity: int, outbound: bool,
                       keep_raw: bool) -> list[InboundMessage]:
    """Parse fetched mail (in a thread or a worker process) and note where it came from."""
    parsed = []
    for raw in raws:
        if outbound and PENDING_FLAG in raw.flags:
            continue        # a reply being sent right now: the outbox records it
        message = parse_message(raw.body, fallback_date=raw.internaldate)
        if outbound:
            message.direction = Direction.OUTBOUND
        message.extra.update(folder=folder, uid=raw.uid, uidvalidity=uidvalidity,
                             flags=list(raw.flags))
        message.read = "\\Seen" in raw.flags
        if not keep_raw:
            message.raw = b""       # the parent has the bytes: do not send them back
        parsed.append(message)
    return parsed


def _attach_raw(messages: list[InboundMessage], raws: list[RawMessage]) -> None:
    bodies = {raw.uid: raw.body for raw in raws}
    for message in messages:
        message.raw = bodies[message.extra["uid"]]


def _recipient_address(to: str) -> str:
    _, address = email.utils.parseaddr(to)
    return address or to.strip()


class EmailConnector(Connector):
    """One mail account: a fetch connection, a command connection (APPEND, SEARCH), an IDLE one."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._fetcher = imap.ImapSession(settings.imap, f"imap-fetch-{settings.name}")
        self._commands = imap.ImapSession(settings.imap, f"imap-cmd-{settings.name}")
        self._watcher: imap.IdleWatcher | None = None
        self._fetch_lock = asyncio.Lock()
        # UIDNEXT as of the last fetch, per folder: lets the IDLE thread notice mail that arrived
        # while it was not idling.
        self._seen_uidnext: dict[str, int] = {}

    @property
    def poll_interval(self) -> float:
        return self.settings.poll_interval

    # ---- receiving ---------------------------------------------------------------------------

    async def fetch(self, cursor: Cursor | None) -> AsyncGenerator[FetchBatch, None]:
        async with self._fetch_lock:
            # One batch of look-ahead so that the last one can say done=True.
            held: EmailFetchBatch | None = None
            async for batch in self._batches(dict(cursor or {})):
                if held is not None:
                    yield held
                held = batch
            if held is None:
                held = EmailFetchBatch([], dict(cursor or {}), done=True)
            held.done = True
            yield held

    async def _batches(self, cursor: Cursor) -> AsyncIterator[EmailFetchBatch]:
        states = {folder: FolderState.from_json(cursor[folder])
                  for folder in self.settings.fetch_folders if folder in cursor}

        def snapshot() -> Cursor:
            merged = dict(cursor)      # keeps folders no longer configured, harmlessly
            merged.update({folder: state.to_json() for folder, state in states.items()})
            return merged

        for folder in self.settings.fetch_folders:
            try:
                status = await self._fetcher.run(
                    f"examining {folder!r}", imap.examine, folder)
            except ConnectorError as exc:
                if folder != self.settings.sent_folder or "exist" not in str(exc).lower():
                    raise
                log.info("%s", exc)    # no Sent folder yet: the first APPEND creates it
                continue
            state = states.setdefault(folder, FolderState())
            before = state.to_json() if folder in cursor else None
            if state.uidvalidity != status.uidvalidity:
                if state.uidvalidity:
                    log.warning("%s", self.settings.imap.describe(
                        f"UIDVALIDITY of {folder!r} changed: reading the folder again"))
                state = states[folder] = FolderState(status.uidvalidity)
            old = FolderState(state.uidvalidity, state.last_uid, state.highestmodseq)
            async for messages in self._new_messages(folder, status, old.last_uid):
                state.last_uid = max(state.last_uid, *(m.extra["uid"] for m in messages))
                yield EmailFetchBatch(messages, snapshot(), done=False)
            flag_changes: list[FlagChange] = []
            if self._fetcher.condstore and status.highestmodseq:
                if old.highestmodseq and old.last_uid and status.highestmodseq > old.highestmodseq:
                    changed = await self._fetcher.run(
                        f"reading flag changes in {folder!r}",
                        imap.changed_flags, old.highestmodseq, old.last_uid)
                    flag_changes = [FlagChange(folder, s.uid, s.message_id, s.flags)
                                    for s in changed]
                state.highestmodseq = status.highestmodseq
            self._seen_uidnext[folder] = max(status.uidnext, state.last_uid + 1)
            if flag_changes or state.to_json() != before:
                read = [c.message_id for c in flag_changes if c.seen and c.message_id]
                yield EmailFetchBatch([], snapshot(), done=False, read_elsewhere=read,
                                      flag_changes=flag_changes)

    async def _new_messages(self, folder: str, status: FolderStatus,
                            last_uid: int) -> AsyncIterator[list[InboundMessage]]:
        if status.uidnext and status.uidnext <= last_uid + 1:
            return          # UIDNEXT says nothing new: no SEARCH needed
        uids = await self._fetcher.run(f"searching {folder!r}", imap.uids_after, last_uid)
        size = max(1, self.settings.batch_size)
        chunks = [uids[i:i + size] for i in range(0, len(uids), size)]

        def fetch_chunk(index: int) -> asyncio.Future[list[RawMessage]]:
            future = asyncio.ensure_future(self._fetcher.run(
                f"fetching from {folder!r}", imap.fetch_messages, chunks[index]))
            future.add_done_callback(_consume_exception)
            return future

        # The next chunk is fetched while earlier ones are parsed and stored. A big initial
        # sync parses in worker processes (MIME parsing is CPU-bound, the GIL would serialise
        # it); a few new messages are parsed in a thread.
        workers = min(os.cpu_count() or 1, 4)
        pool = None
        if workers > 1 and len(uids) >= self.settings.parallel_parse_min:
            pool = parse_pool(workers)
        loop = asyncio.get_running_loop()
        outbound = folder == self.settings.sent_folder
        in_flight: deque[tuple[list[RawMessage], asyncio.Future[list[InboundMessage]]]] = deque()
        depth = workers + 1 if pool else 1
        upcoming = fetch_chunk(0) if chunks else None
        try:
            for index in range(len(chunks)):
                assert upcoming is not None
                raws = await upcoming
                upcoming = fetch_chunk(index + 1) if index + 1 < len(chunks) else None
                if pool is not None:
                    parsing = loop.run_in_executor(pool, parse_raw_messages, raws, folder,
                                                   status.uidvalidity, outbound, False)
                else:
                    parsing = asyncio.ensure_future(asyncio.to_thread(
                        parse_raw_messages, raws, folder, status.uidvalidity, outbound, True))
                parsing.add_done_callback(_consume_exception)
                in_flight.append((raws, parsing))
                while in_flight and (len(in_flight) >= depth or upcoming is None):
                    done_raws, done = in_flight.popleft()
                    messages = await done
                    if pool is not None:
                        _attach_raw(messages, done_raws)
                    if messages:
                        yield messages
        finally:
            if upcoming is not None:
                upcoming.cancel()
            for _, parsing in in_flight:
                parsing.cancel()
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    async def listen(self) -> AsyncGenerator[None, None]:
        """Yield on news: IDLE on the first folder, STATUS for the others; polls without IDLE.

        The IDLE connection outlives a cancelled or finished listen(), so that news arriving
        between two listen() calls is kept; close() ends it.
        """
        watcher = self.watch()
        while await watcher.wait():
            yield None

    def watch(self) -> imap.IdleWatcher:
        """Start the IDLE thread now if it is not running (listen() does this itself)."""
        if self._watcher is None or self._watcher.stopped:
            folders = self.settings.fetch_folders
            self._watcher = imap.IdleWatcher(
                self.settings.imap, folder=folders[0], status_folders=folders[1:],
                renew_after=self.settings.idle_renew, poll_interval=self.settings.poll_interval,
                known_uidnext=lambda folder: self._seen_uidnext.get(folder, 0))
            self._watcher.start()
        return self._watcher

    # ---- sending -------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str:
        reply = build_reply(message, from_addr=self.settings.address,
                            from_name=self.settings.display_name)
        message_id = str(reply["Message-ID"] or "").strip().strip("<>")
        raw = smtp.flatten(reply)
        pending = await self._file_pending_copy(raw)
        try:
            await smtp.send_message(self.settings.smtp, raw, sender=self.settings.address,
                                    recipients=[_recipient_address(message.to)])
        except UncertainDelivery:
            raise           # the pending copy stays: reconcile() reports it as uncertain
        except ConnectorError:
            if pending:
                await self._settle_pending_copy(message_id, delivered=False)
            raise
        if pending:
            await self._settle_pending_copy(message_id, delivered=True)
        return message_id

    async def _file_pending_copy(self, raw: bytes) -> bool:
        """APPEND the reply to Sent marked pending; False when there is no Sent folder or the
        server refused the copy (the reply then goes out without the trace reconcile reads)."""
        folder = self.settings.sent_folder
        if not folder:
            return False
        try:
            await self._commands.run(
                f"appending to {folder!r}", imap.append_message, folder, raw,
                datetime.now(UTC), (imap.SEEN, imap.DRAFT))
        except (TransientError, AuthError):
            raise           # the server is unreachable: the reply waits in the outbox
        except ConnectorError as exc:
            log.warning("sending without a copy in Sent: %s", exc)
            return False
        return True

    async def _settle_pending_copy(self, message_id: str, *, delivered: bool) -> None:
        try:
            await self._commands.run(
                f"updating the copy in {self.settings.sent_folder!r}",
                imap.settle_pending_copies, self.settings.sent_folder, message_id, delivered)
        except ConnectorError as exc:
            # The SMTP outcome is what counts; the outbox records it either way.
            log.warning("the copy in Sent still looks pending: %s", exc)

    async def reconcile(self, message: OutboundMessage, attempted_at: datetime) -> str | None:
        message_id = message.message_id.strip().strip("<>")
        folder = self.settings.sent_folder
        if not message_id or not folder:
            raise UncertainDelivery(self.settings.imap.describe(
                "cannot tell whether the reply went out (no Message-ID or no Sent folder)"))
        copies = await self._commands.run(
            f"searching {folder!r}", imap.copies_of, folder, message_id)
        if any(PENDING_FLAG not in flags for flags in copies.values()):
            return message_id
        if copies:
            raise UncertainDelivery(self.settings.imap.describe(
                f"the process stopped while SMTP had the reply <{message_id}>; it may have "
                f"been delivered (its copy in {folder!r} is still marked \\Draft)"))
        return None

    async def delete_remote(self, provider_ids: list[str], *, dry_run: bool = False) -> int:
        """Delete the mails with these Message-IDs from every fetched folder (INBOX, Sent...)."""
        return await self._commands.run(
            "deleting mail", imap.delete_message_ids, self.settings.fetch_folders,
            provider_ids, dry_run)

    # ---- doctor --------------------------------------------------------------------------------

    async def check(self) -> str:
        imap_line = await asyncio.to_thread(self._check_imap)
        smtp_line = await smtp.check(self.settings.smtp)
        return f"{imap_line}; {smtp_line}"

    def _check_imap(self) -> str:
        endpoint = self.settings.imap
        client = imap.connect(endpoint)
        try:
            with imap.imap_errors(endpoint, "examining folders"):
                counts = [f"{folder} {self._count(client, folder)}"
                          for folder in self.settings.fetch_folders]
                features = [c for c in ("IDLE", "CONDSTORE") if client.has_capability(c)]
        finally:
            imap.disconnect(client)
        extras = f"; {', '.join(features)}" if features else ""
        return f"IMAP {endpoint.where} ok ({', '.join(counts)} messages{extras})"

    @staticmethod
    def _count(client: IMAPClient, folder: str) -> str:
        try:
            status = client.folder_status(folder, [b"MESSAGES"])
        except IMAPClientAbortError:
            raise
        except IMAPClientError:
            return "missing"
        return str(status.get(b"MESSAGES", 0))

    async def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)
        for session in (self._fetcher, self._commands):
            with contextlib.suppress(Exception):
                await session.close()

