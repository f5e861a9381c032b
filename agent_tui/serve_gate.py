"""Who may use `agent-tui serve`: the password, a limit on guessing it, one session per browser.

Every route sits behind `PasswordGate.middleware`: HTTP Basic auth (any user name, the `[serve]
password`, compared with `hmac.compare_digest`) or a session cookie. A right password gives that
browser a token of its own (`Sessions`), valid for `[serve] session_hours` and checked here, not
trusted to the browser's cookie expiry; browsers do not reliably send Basic credentials on a
WebSocket handshake, so the page's WebSocket rides on that cookie.

Wrong passwords are counted per client address (`GuessLimiter`): guesses from one address are
answered one at a time, each wrong one after a delay that doubles, and `lockout_after` of them lock
the address out for `lockout_minutes` (429, whatever it sends then, the right password too). Behind
a TLS proxy every client comes from the proxy's address, so there, and only there (anyone can send
the header), the client is the last X-Forwarded-For entry: the one the proxy itself added.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("agent_tui.serve")

COOKIE = "agent_tui_session"
REALM = "agent-tui"
MAX_FAILURE_DELAY = 30.0       # seconds: the doubling stops here, the lockout does the rest
MAX_SESSIONS = 1000            # the oldest goes first; a browser that loses one logs in again

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Guess(enum.Enum):
    RIGHT = "right"
    WRONG = "wrong"
    LOCKED = "locked"       # not even checked: the address is locked out


@dataclass
class _Client:
    """One address's wrong guesses, and the turn its guesses take one at a time."""

    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


class GuessLimiter:
    """Per client: the n-th wrong guess is answered after `first_delay * 2**(n-1)` seconds (at most
    MAX_FAILURE_DELAY); the `lock_after`-th locks the client out for `lockout` seconds. The count
    starts again `lockout` after the client's last wrong guess, or after a right one."""

    def __init__(self, *, first_delay: float, lock_after: int, lockout: float,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.first_delay = first_delay
        self.lock_after = lock_after
        self.lockout = lockout
        self._clock = clock
        self._sleep = sleep
        self._clients: OrderedDict[str, _Client] = OrderedDict()   # least recently failed first

    def locked_for(self, client: str) -> float | None:
        """Seconds until `client` may guess again, None if it is not locked out."""
        record = self._clients.get(client)
        if record is None:
            return None
        left = record.locked_until - self._clock()
        return left if left > 0 else None

    async def guess(self, client: str, right: Callable[[], bool]) -> Guess:
        """Checks `right()` in `client`'s turn unless locked out; a wrong guess returns late."""
        async with self._turn(client) as record:
            if self.locked_for(client) is not None:
                return Guess.LOCKED
            if right():
                record.failures = 0
                record.locked_until = 0.0
                return Guess.RIGHT
            now = self._clock()
            if now - record.last_failure >= self.lockout:
                record.failures = 0
            record.failures += 1
            record.last_failure = now
            self._clients.move_to_end(client)
            if record.failures >= self.lock_after:
                record.locked_until = now + self.lockout
                log.warning("serve: locked out %s for %g minutes after %d wrong passwords",
                            client, self.lockout / 60, record.failures)
                return Guess.LOCKED
            await self._sleep(min(self.first_delay * 2 ** (record.failures - 1),
                                  MAX_FAILURE_DELAY))
            return Guess.WRONG

    @asynccontextmanager
    async def _turn(self, client: str) -> AsyncIterator[_Client]:
        self._forget_stale()
        record = self._clients.get(client)
        if record is None:
            record = self._clients[client] = _Client()
        record.waiting += 1
        try:
            async with record.turn:
                yield record
        finally:
            record.waiting -= 1
            if not record.waiting and not record.failures:
                del self._clients[client]

    def _forget_stale(self) -> None:
        """Drop the clients whose last wrong guess (and so their lockout) is `lockout` old."""
        horizon = self._clock() - self.lockout
        for client, record in list(self._clients.items()):
            if record.last_failure > horizon:
                break                           # ordered by last failure: the rest are newer
            if not record.waiting:
                del self._clients[client]


class Sessions:
    """One random token per browser that logged in, valid for `lifetime` seconds.

    Only digests are kept: a lookup's timing says nothing about a token, and the memory of the
    server holds nothing a browser could present."""

    def __init__(self, lifetime: float, *, clock: Clock = time.monotonic) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._expiry: OrderedDict[bytes, float] = OrderedDict()    # oldest first

    def issue(self) -> str:
        now = self._clock()
        while self._expiry and (next(iter(self._expiry.values())) <= now
                                or len(self._expiry) >= MAX_SESSIONS):
            self._expiry.popitem(last=False)
        token = secrets.token_urlsafe(32)
        self._expiry[_digest(token)] = now + self.lifetime
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        key = _digest(token)
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[key]
            return False
        return True


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def client_address(request: web.Request, *, behind_tls_proxy: bool) -> str:
    """Who is guessing: the peer, or behind a proxy the address the proxy saw; IPv6 by /64, as
    one host usually holds a whole /64."""
    address = request.remote or ""
    if behind_tls_proxy:
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")[-1].strip()
        address = forwarded or address
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class PasswordGate:
    """Basic auth or a session cookie in front of every route, with guesses limited per client."""

    def __init__(self, password: str, limiter: GuessLimiter, sessions: Sessions, *,
                 behind_tls_proxy: bool = False) -> None:
        self._password = password.encode("utf-8")
        self.limiter = limiter
        self.sessions = sessions
        self.behind_tls_proxy = behind_tls_proxy

    def basic_ok(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _, sep, password = decoded.partition(b":")
        return bool(sep) and hmac.compare_digest(password, self._password)

    def scheme(self, request: web.Request) -> str:
        """What the browser sees: behind the TLS proxy the page must open wss://."""
        if not self.behind_tls_proxy:
            return request.scheme
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return forwarded if forwarded in ("http", "https") else "https"

    def middleware(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.sessions.valid(request.cookies.get(COOKIE)):
                return await self._let_through(request, handler, new_session=False)
            client = client_address(request, behind_tls_proxy=self.behind_tls_proxy)
            header = request.headers.get("Authorization")
            if header is None:                          # a browser's first try
                if (left := self.limiter.locked_for(client)) is not None:
                    return _locked_out(left)
                log.info("serve: refused %s %s from %s (no password)", request.method,
                         request.path, client)
                return _challenge()
            verdict = await self.limiter.guess(client, lambda: self.basic_ok(header))
            if verdict is Guess.LOCKED:
                return _locked_out(self.limiter.locked_for(client) or self.limiter.lockout)
            if verdict is Guess.WRONG:
                log.warning("serve: refused %s %s from %s (wrong password)", request.method,
                            request.path, client)
                return _challenge()
            return await self._let_through(request, handler, new_session=True)

        return gate

    async def _let_through(self, request: web.Request, handler: Handler, *,
                           new_session: bool) -> web.StreamResponse:
        from aiohttp import web

        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if websocket and not _same_origin(request):
            log.warning("serve: refused a WebSocket from origin %r", request.headers.get("Origin"))
            return web.Response(status=403, text="agent-tui: cross-origin WebSocket\n")
        response = await handler(request)
        if not websocket and not response.prepared:
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Cache-Control", "no-store")
            if new_session:
                response.set_cookie(COOKIE, self.sessions.issue(), path="/", httponly=True,
                                    samesite="Strict", max_age=int(self.sessions.lifetime),
                                    secure=self.scheme(request) == "https")
        return response


def _challenge() -> web.Response:
    from aiohttp import web

    return web.Response(status=401, text="agent-tui: password required\n",
                        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})


def _locked_out(seconds: float) -> web.Response:
    from aiohttp import web

    minutes = max(1, math.ceil(seconds / 60))
    return web.Response(status=429, headers={"Retry-After": str(math.ceil(seconds))},
                        text=f"agent-tui: too many wrong passwords from your address; try again "
                             f"in {minutes} minute{'s' if minutes > 1 else ''}\n")


def _same_origin(request: web.Request) -> bool:
    from urllib.parse import urlsplit

    origin = request.headers.get("Origin")
    if origin is None:              # not a browser: nothing to ride on
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()
