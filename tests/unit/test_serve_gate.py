"""`agent-tui serve`'s gate without the server: the guess limiter, the sessions, the middleware.

The limiter and the sessions run on a clock the test advances, and the limiter's delays go to a
recording sleep, so minutes of lockout take no time. The middleware runs in a real aiohttp server
on loopback (aiohttp's TestServer) in front of a handler that answers "inside".
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import ClientSession, CookieJar, web
from aiohttp.test_utils import TestServer, make_mocked_request
from multidict import CIMultiDict

from agent_tui.serve_gate import (
    COOKIE,
    MAX_FAILURE_DELAY,
    MAX_SESSIONS,
    Guess,
    GuessLimiter,
    PasswordGate,
    Sessions,
    client_address,
)

PASSWORD = "Sesam-öffne-dich"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: Clock, *, lock_after: int = 5, lockout: float = 900.0) -> GuessLimiter:
    return GuessLimiter(first_delay=1.0, lock_after=lock_after, lockout=lockout, clock=clock,
                        sleep=clock.sleep)


def never() -> bool:
    return False


def always() -> bool:
    return True


async def test_each_wrong_guess_waits_twice_as_long_and_the_last_locks_out(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    guard = limiter(clock)
    assert [await guard.guess("203.0.113.7", never) for _ in range(4)] == [Guess.WRONG] * 4
    assert clock.slept == [1.0, 2.0, 4.0, 8.0]
    assert guard.locked_for("203.0.113.7") is None
    with caplog.at_level(logging.WARNING, logger="agent_tui.serve"):
        assert await guard.guess("203.0.113.7", never) is Guess.LOCKED
    assert clock.slept == [1.0, 2.0, 4.0, 8.0]            # the locking guess is answered at once
    assert guard.locked_for("203.0.113.7") == 900.0
    assert "locked out 203.0.113.7 for 15 minutes after 5 wrong passwords" in caplog.text

    checked: list[str] = []
    assert await guard.guess("203.0.113.7", lambda: checked.append("x") or True) is Guess.LOCKED
    assert checked == []                  # locked out: not even the right password is looked at
    assert await guard.guess("198.51.100.2", always) is Guess.RIGHT      # others are not
    clock.now += 899.0
    assert await guard.guess("203.0.113.7", always) is Guess.LOCKED
    clock.now += 1.0
    assert guard.locked_for("203.0.113.7") is None
    assert await guard.guess("203.0.113.7", always) is Guess.RIGHT
    assert await guard.guess("203.0.113.7", never) is Guess.WRONG
    assert clock.slept[-1] == 1.0                         # and it counts from the start again


async def test_the_delay_stops_doubling_and_old_wrong_guesses_are_forgotten() -> None:
    clock = Clock()
    guard = limiter(clock, lock_after=20)
    for _ in range(8):
        await guard.guess("203.0.113.7", never)
    assert clock.slept == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_FAILURE_DELAY, MAX_FAILURE_DELAY,
                           MAX_FAILURE_DELAY]
    clock.now += 900.0
    await guard.guess("203.0.113.7", never)
    assert clock.slept[-1] == 1.0


async def test_a_right_password_starts_the_count_again() -> None:
    clock = Clock()
    guard = limiter(clock, lock_after=3)
    await guard.guess("203.0.113.7", never)
    await guard.guess("203.0.113.7", never)
    assert await guard.guess("203.0.113.7", always) is Guess.RIGHT
    assert await guard.guess("203.0.113.7", never) is Guess.WRONG
    assert clock.slept == [1.0, 2.0, 1.0]


async def test_guesses_from_one_address_take_turns_and_others_do_not_wait() -> None:
    release = asyncio.Event()

    async def held(_: float) -> None:
        await release.wait()

    guard = GuessLimiter(first_delay=1.0, lock_after=10, lockout=900.0, sleep=held)
    first = asyncio.create_task(guard.guess("203.0.113.7", never))
    checked: list[str] = []

    def check(name: str) -> Callable[[], bool]:
        return lambda: checked.append(name) is None

    second = asyncio.create_task(guard.guess("203.0.113.7", check("same address")))
    other = asyncio.create_task(guard.guess("198.51.100.2", check("other address")))
    assert await other is Guess.RIGHT
    assert checked == ["other address"] and not second.done()   # waits for the first's delay
    release.set()
    assert (await first, await second) == (Guess.WRONG, Guess.RIGHT)
    assert checked == ["other address", "same address"]


def test_each_session_is_its_own_random_token_and_expires() -> None:
    clock = Clock()
    sessions = Sessions(12 * 3600, clock=clock)
    first, second = sessions.issue(), sessions.issue()
    assert first != second and len(first) >= 43
    assert sessions.valid(first) and sessions.valid(second)
    for forged in (None, "", first[:-1], first + "x", "x" * 43):
        assert not sessions.valid(forged), forged
    clock.now += 12 * 3600 - 1
    assert sessions.valid(first)
    clock.now += 1
    assert not sessions.valid(first) and not sessions.valid(second)


def test_sessions_are_bounded_the_oldest_goes_first() -> None:
    sessions = Sessions(3600, clock=Clock())
    tokens = [sessions.issue() for _ in range(MAX_SESSIONS + 1)]
    assert not sessions.valid(tokens[0])
    assert all(sessions.valid(token) for token in tokens[1:])


def request(remote: str, forwarded: tuple[str, ...] = ()) -> web.Request:
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)
    return make_mocked_request("GET", "/", headers=headers).clone(remote=remote)


def test_the_client_is_the_peer_unless_behind_the_proxy_then_the_address_it_added() -> None:
    spoofed = request("203.0.113.7", ("10.9.9.9",))
    assert client_address(spoofed, behind_tls_proxy=False) == "203.0.113.7"
    assert client_address(request("127.0.0.1", ("10.9.9.9, 198.51.100.2",)),
                          behind_tls_proxy=True) == "198.51.100.2"
    assert client_address(request("127.0.0.1", ("10.9.9.9", "198.51.100.3")),
                          behind_tls_proxy=True) == "198.51.100.3"
    assert client_address(request("127.0.0.1"), behind_tls_proxy=True) == "127.0.0.1"
    assert client_address(request("2001:db8:1:2:aaaa::1"), behind_tls_proxy=False) == \
        client_address(request("2001:db8:1:2:bbbb::9"), behind_tls_proxy=False) == \
        "2001:db8:1:2::/64"
    assert client_address(request("::ffff:198.51.100.4"), behind_tls_proxy=False) == \
        "198.51.100.4"


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


def auth(password: str) -> dict[str, str]:
    return {"Authorization": basic(f"agent:{password}".encode())}


def make_gate(clock: Clock, *, behind_tls_proxy: bool = False) -> PasswordGate:
    return PasswordGate(PASSWORD, limiter(clock, lock_after=3), Sessions(3600, clock=clock),
                        behind_tls_proxy=behind_tls_proxy)


def test_the_gate_compares_the_password_only() -> None:
    gate = make_gate(Clock())
    assert gate.basic_ok(basic("anyone:Sesam-öffne-dich".encode()))
    assert gate.basic_ok(basic(":Sesam-öffne-dich".encode()))
    for header in (None, "", "Basic", "Basic !!!", "Bearer x", basic(b"Sesam-\xc3\xb6ffne-dich"),
                   basic("u:Sesam-öffne-dic".encode()), basic("u:Sesam-öffne-dich ".encode())):
        assert not gate.basic_ok(header), header


@asynccontextmanager
async def gated(gate: PasswordGate) -> AsyncIterator[str]:
    async def inside(_: web.Request) -> web.Response:
        return web.Response(text="inside")

    app = web.Application(middlewares=[gate.middleware()])
    app.router.add_get("/", inside)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/"))


def jar() -> CookieJar:
    return CookieJar(unsafe=True)       # keep cookies of an IP address, as browsers do


async def test_each_browser_gets_its_own_session_cookie_until_it_expires() -> None:
    clock = Clock()
    gate = make_gate(clock)
    async with gated(gate) as url, ClientSession(cookie_jar=jar()) as mia, \
            ClientSession(cookie_jar=jar()) as jonas:
        tokens = []
        for browser in (mia, jonas):
            async with browser.get(url, headers=auth(PASSWORD)) as response:
                assert response.status == 200
                morsel = response.cookies[COOKIE]
                assert morsel["httponly"] and morsel["samesite"] == "Strict"
                assert morsel["max-age"] == "3600" and not morsel["secure"]
                tokens.append(morsel.value)
            async with browser.get(url) as response:
                assert response.status == 200 and COOKIE not in response.cookies
        assert tokens[0] != tokens[1]
        clock.now += 3600
        async with mia.get(url) as response:
            assert response.status == 401               # expired here, whatever the browser kept


async def test_a_locked_out_address_gets_429_but_a_logged_in_browser_keeps_its_session() -> None:
    clock = Clock()
    async with gated(make_gate(clock)) as url, ClientSession(cookie_jar=jar()) as inside, \
            ClientSession(cookie_jar=jar()) as guesser:
        async with inside.get(url, headers=auth(PASSWORD)) as response:
            assert response.status == 200
        for expected in (401, 401, 429):
            async with guesser.get(url, headers=auth("falsch")) as response:
                assert response.status == expected
        for headers in (auth(PASSWORD), {}):
            async with guesser.get(url, headers=headers) as response:
                assert response.status == 429
                assert response.headers["Retry-After"] == "900"
                assert "too many wrong passwords" in await response.text()
                assert "WWW-Authenticate" not in response.headers
        async with inside.get(url) as response:
            assert response.status == 200
        clock.now += 900
        async with guesser.get(url, headers=auth(PASSWORD)) as response:
            assert response.status == 200


async def test_behind_the_proxy_each_forwarded_client_counts_alone_and_cookies_are_secure() -> None:
    clock = Clock()
    async with gated(make_gate(clock, behind_tls_proxy=True)) as url, \
            ClientSession(cookie_jar=jar()) as proxy:
        for _ in range(3):
            async with proxy.get(url, headers={**auth("falsch"),
                                               "X-Forwarded-For": "203.0.113.7"}) as response:
                pass
        assert response.status == 429
        async with proxy.get(url, headers={**auth(PASSWORD), "X-Forwarded-For": "198.51.100.2",
                                           "X-Forwarded-Proto": "https"}) as response:
            assert response.status == 200
            assert response.cookies[COOKIE]["secure"]


async def test_without_the_proxy_a_forwarded_header_does_not_dodge_the_count() -> None:
    async with gated(make_gate(Clock())) as url, ClientSession(cookie_jar=jar()) as client:
        statuses = []
        for number in range(4):
            async with client.get(url, headers={**auth("falsch"),
                                                "X-Forwarded-For": f"10.0.0.{number}"}) as reply:
                statuses.append(reply.status)
        assert statuses == [401, 401, 429, 429]
