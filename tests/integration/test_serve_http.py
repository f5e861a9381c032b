"""`agent-tui serve` (issues 10, 17): every route behind the password, a session per browser,
the sessions run our TUI, and behind a TLS proxy it trusts the proxy's headers.

The server is the real CLI in a subprocess on a free loopback port; the client is aiohttp. The
browser test (headless Chromium over the DevTools protocol) is in test_serve_browser.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.serve_harness import PASSWORD, SUBJECT, Served, basic_auth, served

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 15.0
_CONTROL = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def screen_text(chunks: list[bytes]) -> str:
    return _CONTROL.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with served(tmp_path / "serve") as running:
        yield running


async def test_every_route_needs_the_password(server: Served) -> None:
    # unsafe: keep cookies of an IP address, as browsers do
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        for path in ("/", "/static/js/textual.js", "/download/nothing"):
            async with client.get(server.url + path) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"].startswith('Basic realm="agent-tui"')
                assert "Set-Cookie" not in response.headers
            async with client.get(server.url + path,
                                  headers=basic_auth("wrong password")) as response:
                assert response.status == 401, path
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(server.url + "/ws")
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(server.url + "/ws", headers=basic_auth(PASSWORD[:-1]))
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:   # a forged cookie
            await client.ws_connect(server.url + "/ws",
                                    headers={"Cookie": "agent_tui_session=guess"})
        assert refused.value.status == 401

        async with client.get(server.url + "/", headers=basic_auth(PASSWORD)) as response:
            assert response.status == 200
            page = await response.text()
            assert "agent_tui_session" in response.cookies
        assert f'data-session-websocket-url="ws://127.0.0.1:{server.port}/ws"' in page
        async with client.get(server.url + "/static/js/textual.js") as response:
            assert response.status == 200            # the session cookie now lets it through
    log = server.log.read_text()
    assert PASSWORD not in log and "wrong password" not in log


async def test_a_session_runs_the_tui_on_the_same_config_and_no_secret_leaks(
        server: Served) -> None:
    # unsafe: keep cookies of an IP address, as browsers do
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(server.url + "/", headers=basic_auth(PASSWORD)) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(server.url + "/ws",
                                    headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403
        async with client.ws_connect(server.url + "/ws?width=100&height=30",
                                     headers={"Origin": server.url}) as ws:
            chunks: list[bytes] = []
            deadline = time.monotonic() + SESSION_TIMEOUT
            while SUBJECT not in screen_text(chunks):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no inbox on screen: {screen_text(chunks)[-2000:]!r}"
                message = await ws.receive(timeout=remaining)
                assert message.type == aiohttp.WSMsgType.BINARY, message
                chunks.append(message.data)
            tree = server.tree()
            assert len(tree) >= 2, "no session process under the server"
            commands = []
            for pid in tree:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                commands.append(cmdline.replace(b"\0", b" ").decode())
                assert PASSWORD.encode() not in cmdline
                if pid != server.process.pid:        # the server itself was given it
                    assert PASSWORD.encode() not in environ, commands[-1]
            assert any(f"--config {server.config}" in c and c.rstrip().endswith(" tui")
                       for c in commands), commands


async def test_each_browser_gets_its_own_session_with_an_expiry(server: Served) -> None:
    tokens = []
    for _ in range(2):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(server.url + "/", headers=basic_auth(PASSWORD)) as response:
                assert response.status == 200
                morsel = response.cookies["agent_tui_session"]
                assert morsel["max-age"] == str(12 * 3600)     # the default session_hours
                assert morsel["httponly"] and morsel["samesite"] == "Strict"
                assert not morsel["secure"]                     # plain HTTP on loopback
                tokens.append(morsel.value)
            async with browser.get(server.url + "/static/js/textual.js") as response:
                assert response.status == 200
    assert tokens[0] != tokens[1]


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Served]:
    with served(tmp_path / "serve", serve={"behind_tls_proxy": "true", "lockout_after": "3"}) \
            as running:
        yield running


async def test_behind_a_tls_proxy_it_counts_guesses_per_forwarded_client_and_speaks_wss(
        proxied: Served) -> None:
    def via_proxy(client: str, password: str) -> dict[str, str]:
        return {**basic_auth(password), "X-Forwarded-For": client, "X-Forwarded-Proto": "https",
                "Host": "shop.example"}

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as proxy:
        statuses = []
        for _ in range(4):
            async with proxy.get(proxied.url + "/",
                                 headers=via_proxy("203.0.113.7", "falsch")) as response:
                statuses.append(response.status)
        assert statuses == [401, 401, 429, 429]
        async with proxy.get(proxied.url + "/",
                             headers=via_proxy("198.51.100.2", PASSWORD)) as response:
            assert response.status == 200
            assert response.cookies["agent_tui_session"]["secure"]
            assert 'data-session-websocket-url="wss://shop.example/ws"' in await response.text()
    assert "for the TLS reverse proxy" in proxied.log.read_text()
    assert "locked out 203.0.113.7 " in proxied.log_file.read_text()
