"""`agent-tui serve` (issue 10): every route behind the password, the sessions run our TUI.

The server is the real CLI in a subprocess on a free loopback port; the client is aiohttp. The
browser test (headless Chromium over the DevTools protocol) is in test_serve_browser.py.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.serve_harness import PASSWORD, SUBJECT, Served, served

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 15.0
_CONTROL = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def basic(password: str, user: str = "agent") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


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
            async with client.get(server.url + path, headers=basic("wrong password")) as response:
                assert response.status == 401, path
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(server.url + "/ws")
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(server.url + "/ws", headers=basic(PASSWORD[:-1]))
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:   # a forged cookie
            await client.ws_connect(server.url + "/ws",
                                    headers={"Cookie": "agent_tui_session=guess"})
        assert refused.value.status == 401

        async with client.get(server.url + "/", headers=basic(PASSWORD)) as response:
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
        async with client.get(server.url + "/", headers=basic(PASSWORD)) as response:
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
