"""IMAP with imapclient: connecting, folder state, batched fetches, Sent, and the IDLE watcher.

imapclient is blocking and its connections are not thread safe, so every connection lives on its
own single-thread executor (`ImapSession`) and asyncio code awaits it; the IDLE connection has a
thread of its own (`IdleWatcher`). Everything here is synchronous except `ImapSession.run`.

New mail is found by UID against the stored cursor, never by \\Recent or \\Seen (invariant 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.util import to_unicode

from connectors.base import AuthError, ConnectorError, TransientError
from connectors.email.endpoint import Endpoint

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

SEEN = b"\\Seen"
ANSWERED = b"\\Answered"
DRAFT = b"\\Draft"
DELETED = b"\\Deleted"
FETCH_ITEMS = [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"]
MESSAGE_ID_HEADER = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"


# ---- errors -----------------------------------------------------------------------------------

@contextlib.contextmanager
def imap_errors(endpoint: Endpoint, action: str) -> Iterator[None]:
    """Turn imapclient/socket/TLS exceptions into connector errors naming account and server."""
    try:
        yield
    except ConnectorError:
        raise
    except LoginError:
        raise AuthError(endpoint.describe(
            f"login as {endpoint.username!r} refused (check the password)")) from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectorError(endpoint.describe(
            f"TLS certificate not trusted: {exc.verify_message}")) from None
    except ssl.SSLError as exc:
        raise TransientError(endpoint.describe(f"TLS failed: {exc.reason or exc}")) from None
    except IMAPClientAbortError as exc:
        raise TransientError(endpoint.describe(f"connection lost while {action}: {exc}")) from None
    except socket.gaierror as exc:
        raise TransientError(endpoint.describe(f"cannot resolve host: {exc.strerror}")) from None
    except TimeoutError:
        raise TransientError(endpoint.describe(f"timed out while {action}")) from None
    except ConnectionRefusedError:
        raise TransientError(endpoint.describe("connection refused")) from None
    except OSError as exc:
        raise TransientError(endpoint.describe(
            f"network error while {action}: {exc.strerror or exc}")) from None
    except (IMAPClientError, imaplib.IMAP4.error) as exc:
        raise ConnectorError(endpoint.describe(f"{action} failed: {exc}")) from None


def connect(endpoint: Endpoint) -> IMAPClient:
    """Connect, secure and log in; every later command has the endpoint's read timeout."""
    context = endpoint.tls_context()
    with imap_errors(endpoint, "connecting"):
        client = IMAPClient(endpoint.host, port=endpoint.port,
                            ssl=endpoint.tls == "implicit", ssl_context=context,
                            timeout=endpoint.timeout)
        if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
            # imapclient sets imaplib's debug level 5 so that imaplib's messages reach that
            # logger; imaplib then builds the repr of every response - each fetched mail, and
            # every batch again as a whole - for a log call that drops it: about half the CPU
            # of a big fetch. Only when nobody listens, leave it out.
            client._imap.debug = 0
        try:
            if endpoint.tls == "starttls":
                assert context is not None
                client.starttls(context)
            client.login(endpoint.username, endpoint.password)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
    # Timezone-aware INTERNALDATEs instead of naive local times.
    client.normalise_times = False
    return client


def disconnect(client: IMAPClient | None) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception):
        client.logout()
    with contextlib.suppress(Exception):
        client.shutdown()


# ---- folder state and fetching ------------------------------------------------------------------

@dataclass(slots=True)
class FolderState:
    """What the cursor remembers of one folder."""

    uidvalidity: int = 0
    last_uid: int = 0
    highestmodseq: int = 0

    @classmethod
    def from_json(cls, data: Any) -> FolderState:
        if not isinstance(data, dict):
            return cls()
        return cls(int(data.get("uidvalidity", 0) or 0), int(data.get("last_uid", 0) or 0),
                   int(data.get("highestmodseq", 0) or 0))

    def to_json(self) -> dict[str, int]:
        return {"uidvalidity": self.uidvalidity, "last_uid": self.last_uid,
                "highestmodseq": self.highestmodseq}


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What EXAMINE told us about a folder right now."""

    uidvalidity: int
    uidnext: int
    highestmodseq: int       # 0 when the server has no CONDSTORE


@dataclass(frozen=True, slots=True)
class RawMessage:
    uid: int
    body: bytes
    flags: tuple[str, ...]
    internaldate: datetime | None


@dataclass(frozen=True, slots=True)
class FlagState:
    uid: int
    flags: tuple[str, ...]
    message_id: str          # without angle brackets; "" when the message has none


def enable_condstore(client: IMAPClient) -> bool:
    """ENABLE CONDSTORE when offered, so EXAMINE reports HIGHESTMODSEQ."""
    if not client.has_capability("CONDSTORE"):
        return False
    try:
        client.enable("CONDSTORE")
    except IMAPClientError:
        return False
    return True


def examine(client: IMAPClient, folder: str) -> FolderStatus:
    """Select a folder read-only (EXAMINE): fetching never changes flags."""
    info = client.select_folder(folder, readonly=True)
    return FolderStatus(
        uidvalidity=int(info.get(b"UIDVALIDITY", 0)),
        uidnext=int(info.get(b"UIDNEXT", 0)),
        highestmodseq=int(info.get(b"HIGHESTMODSEQ", 0)),
    )


def uids_after(client: IMAPClient, last_uid: int) -> list[int]:
    """UIDs greater than last_uid in the selected folder, ascending."""
    # "n:*" always matches the highest UID even when it is below n (RFC 3501 6.4.8): filter.
    return sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)


def _flags(raw: Any) -> tuple[str, ...]:
    return tuple(sorted(to_unicode(flag) for flag in raw or ()))


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def fetch_messages(client: IMAPClient, uids: Sequence[int]) -> list[RawMessage]:
    """Bodies (BODY.PEEK: \\Seen untouched), flags and INTERNALDATE of the given UIDs, by UID."""
    # imapclient 4 rejects sequence-set strings in fetch(): always a list of int UIDs.
    response = client.fetch(list(uids), FETCH_ITEMS)
    messages = []
    for uid in sorted(response):
        data = response[uid]
        body = data.get(b"BODY[]")
        if body is None:        # expunged between SEARCH and FETCH
            continue
        messages.append(RawMessage(uid, bytes(body), _flags(data.get(b"FLAGS")),
                                   _utc(data.get(b"INTERNALDATE"))))
    return messages


def changed_flags(client: IMAPClient, since_modseq: int, up_to_uid: int) -> list[FlagState]:
    """Flags of the messages (UID <= up_to_uid) whose flags changed after `since_modseq`."""
    uids = [uid for uid in client.search(["MODSEQ", str(since_modseq + 1)]) if uid <= up_to_uid]
    if not uids:
        return []
    response = client.fetch(uids, [b"FLAGS", MESSAGE_ID_HEADER])
    states = []
    for uid in sorted(response):
        data = response[uid]
        header = next((v for k, v in data.items() if k.startswith(b"BODY[HEADER")), b"")
        states.append(FlagState(uid, _flags(data.get(b"FLAGS")), _message_id_of(header)))
    return states


def _message_id_of(header: bytes) -> str:
    _, _, value = bytes(header or b"").decode("ascii", "replace").partition(":")
    return value.strip().strip("<>").strip()


def append_message(client: IMAPClient, folder: str, raw: bytes, when: datetime,
                   flags: Sequence[bytes] = (SEEN,)) -> None:
    """APPEND a copy; creates the folder once if the server says it is missing."""
    try:
        client.append(folder, raw, flags=tuple(flags), msg_time=when)
    except IMAPClientError as exc:
        if "TRYCREATE" not in str(exc).upper():
            raise
        client.create_folder(folder)
        client.append(folder, raw, flags=tuple(flags), msg_time=when)


def copies_of(client: IMAPClient, folder: str, message_id: str) -> dict[int, tuple[str, ...]]:
    """The flags of every copy in `folder` whose Message-ID is <message_id>, by UID; {} when
    the folder is missing."""
    if not _select_existing(client, folder, readonly=True):
        return {}
    uids = _search_message_id(client, message_id)
    if not uids:
        return {}
    return {uid: _flags(data.get(b"FLAGS")) for uid, data in client.fetch(uids, [b"FLAGS"]).items()}


def settle_pending_copies(client: IMAPClient, folder: str, message_id: str,
                          delivered: bool) -> None:
    """The copies of <message_id> still marked \\Draft (pending): unmark them once SMTP took
    the mail, delete them when it refused it."""
    client.select_folder(folder)
    uids = _search_message_id(client, message_id, "DRAFT")
    if not uids:
        return
    if delivered:
        client.remove_flags(uids, [DRAFT])
        return
    _delete(client, uids)


def delete_message_ids(client: IMAPClient, folders: Sequence[str], message_ids: Sequence[str],
                       dry_run: bool) -> int:
    """Delete every copy of these Message-IDs in `folders` (missing folders are skipped);
    returns how many copies there were."""
    found = 0
    for folder in folders:
        if not _select_existing(client, folder, readonly=dry_run):
            continue
        uids = sorted({uid for message_id in message_ids
                       for uid in _search_message_id(client, message_id)})
        found += len(uids)
        if uids and not dry_run:
            _delete(client, uids)
    return found


def _select_existing(client: IMAPClient, folder: str, *, readonly: bool) -> bool:
    """Select `folder`; False when the server says it does not exist."""
    try:
        client.select_folder(folder, readonly=readonly)
    except IMAPClientAbortError:
        raise
    except IMAPClientError:
        return False
    return True


def _delete(client: IMAPClient, uids: list[int]) -> None:
    """Delete these messages of the selected folder for good."""
    client.add_flags(uids, [DELETED])
    if client.has_capability("UIDPLUS"):
        client.expunge(uids)        # UID EXPUNGE: only these
    else:
        client.expunge()            # also what the user deleted there, as a mail client would


def _search_message_id(client: IMAPClient, message_id: str, *keys: str) -> list[int]:
    wanted = message_id.strip().strip("<>")
    return sorted(client.search(["HEADER", "Message-ID", f"<{wanted}>", *keys]))


# ---- one connection on one thread ---------------------------------------------------------------

class ImapSession:
    """One IMAP connection bound to one worker thread; reconnects after a failure."""

    def __init__(self, endpoint: Endpoint, name: str) -> None:
        self.endpoint = endpoint
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._client: IMAPClient | None = None
        self.condstore = False
        self.capabilities: tuple[str, ...] = ()

    def _ensure(self) -> IMAPClient:
        if self._client is None:
            client = connect(self.endpoint)
            with imap_errors(self.endpoint, "enabling CONDSTORE"):
                self.condstore = enable_condstore(client)
                self.capabilities = tuple(to_unicode(c) for c in client.capabilities())
            self._client = client
        return self._client

    def _call(self, action: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        client = self._ensure()
        try:
            with imap_errors(self.endpoint, action):
                return fn(client, *args)
        except (TransientError, AuthError):
            # The connection is in an unknown state: drop it, the next call reconnects.
            self._client = None
            disconnect(client)
            raise

    async def run(self, action: str, fn: Callable[Concatenate[IMAPClient, P], T],
                  *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(client, *args)` on this connection's thread; `action` names it in errors."""
        assert not kwargs, "positional arguments only"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, action, fn, args)

    def _close(self) -> None:
        client, self._client = self._client, None
        disconnect(client)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)


# ---- IDLE ----------------------------------------------------------------------------------

class IdleWatcher:
    """IMAP IDLE on one folder in its own thread and connection; wakes asyncio waiters on news.

    News is EXISTS during IDLE, a UIDNEXT beyond what the last fetch saw when (re)selecting, or a
    changed UIDNEXT of another watched folder (STATUS, checked each time IDLE is renewed). Without
    IDLE on the server it polls STATUS UIDNEXT. After a dropped connection it reconnects with
    exponential backoff. A news signal raised while nobody waits is kept for the next waiter.
    """

    def __init__(self, endpoint: Endpoint, *, folder: str = "INBOX",
                 status_folders: Sequence[str] = (), renew_after: float = 540.0,
                 poll_interval: float = 60.0, max_backoff: float = 300.0,
                 known_uidnext: Callable[[str], int] | None = None) -> None:
        self.endpoint = endpoint
        self.folder = folder
        self.status_folders = tuple(f for f in status_folders if f != folder)
        # Renew IDLE well before the 29 minutes of RFC 2177; check other folders as often.
        self.renew_after = min(renew_after, 600.0)
        if self.status_folders:
            self.renew_after = min(self.renew_after, poll_interval)
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._known_uidnext = known_uidnext or (lambda folder: 0)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._client: IMAPClient | None = None
        self._thread: threading.Thread | None = None
        self.idling = threading.Event()    # set while an IDLE command is active (tests wait on it)
        self.last_error = ""
        self.events = 0                    # how many news signals were raised

    # -- asyncio side --

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"imap-idle-{self.endpoint.account}")
            self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def wait(self) -> bool:
        """Until there is news (True) or the watcher stopped (False)."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            if self._pending or self._stop.is_set():
                self._pending = False
                return not self._stop.is_set()
            self._waiters.append((loop, event))
        try:
            await event.wait()
        finally:
            with self._lock:
                with contextlib.suppress(ValueError):
                    self._waiters.remove((loop, event))
                self._pending = False
        return not self._stop.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            # Wakes the thread out of its blocking read at once.
            with contextlib.suppress(Exception):
                client.socket().shutdown(socket.SHUT_RDWR)
        self._wake_waiters()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- thread side --

    def notify(self) -> None:
        self.events += 1
        with self._lock:
            self._pending = True
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):     # that loop has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                client = connect(self.endpoint)
                self._client = client
                if failures:
                    log.info("%s", self.endpoint.describe("IDLE connection restored"))
                failures = 0
                with imap_errors(self.endpoint, "waiting for news"):
                    if client.has_capability("IDLE"):
                        self._idle_loop(client)
                    else:
                        self._poll_loop(client)
            except Exception as exc:
                if self._stop.is_set():
                    break
                self.last_error = str(exc)
                log.warning("%s", exc)
                failures += 1
            finally:
                self.idling.clear()
                client, self._client = self._client, None
                disconnect(client)
            delay = min(self.max_backoff, 2.0 ** min(failures, 10)) * (0.5 + random.random() / 2)
            self._stop.wait(delay)

    def _uidnext(self, client: IMAPClient, folder: str) -> int:
        status = client.folder_status(folder, [b"UIDNEXT"])
        return int(status.get(b"UIDNEXT", 0))

    def _is_news(self, folder: str, uidnext: int, seen: dict[str, int]) -> bool:
        """Is `uidnext` beyond what the last fetch (or the last look) saw of this folder?"""
        baseline = max(seen.get(folder, 0), self._known_uidnext(folder))
        seen[folder] = max(uidnext, baseline)
        # Never fetched and never looked: nothing to compare with (the engine fetches first).
        return bool(baseline) and uidnext > baseline

    def _check_other_folders(self, client: IMAPClient, seen: dict[str, int]) -> None:
        for folder in self.status_folders:
            try:
                uidnext = self._uidnext(client, folder)
            except IMAPClientAbortError:
                raise
            except IMAPClientError:
                continue                   # a missing folder is fetch()'s error to report
            if self._is_news(folder, uidnext, seen):
                self.notify()

    def _idle_loop(self, client: IMAPClient) -> None:
        info = client.select_folder(self.folder, readonly=True)
        seen: dict[str, int] = {}
        if self._is_news(self.folder, int(info.get(b"UIDNEXT", 0)), seen):
            self.notify()       # mail arrived while we were not idling
        while not self._stop.is_set():
            client.idle()
            self.idling.set()
            started = time.monotonic()
            news = False
            early_empty = 0
            try:
                while not self._stop.is_set():
                    left = self.renew_after - (time.monotonic() - started)
                    if left <= 0:
                        break
                    wait = min(left, 60.0)
                    asked = time.monotonic()
                    responses = client.idle_check(timeout=wait)
                    if _has_exists(responses):
                        news = True
                        self.notify()
                    # imapclient swallows EOF in idle_check and returns []: a socket that keeps
                    # "having data" but yields no line is a closed one.
                    if responses or time.monotonic() - asked >= wait - 0.1:
                        early_empty = 0
                    else:
                        early_empty += 1
                        if early_empty >= 3:
                            raise IMAPClientAbortError("server closed the connection")
            finally:
                self.idling.clear()
            if self._stop.is_set():
                return
            _, responses = client.idle_done()
            if not news and _has_exists(responses):
                self.notify()
            self._check_other_folders(client, seen)

    def _poll_loop(self, client: IMAPClient) -> None:
        seen: dict[str, int] = {}
        folders = (self.folder, *self.status_folders)
        while not self._stop.is_set():
            for folder in folders:
                uidnext = self._uidnext(client, folder)
                if self._is_news(folder, uidnext, seen):
                    self.notify()
            self._stop.wait(self.poll_interval)


def _has_exists(responses: Any) -> bool:
    return any(isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS" for r in responses or ())
