"""`agent-tui serve` in headless Chromium (issue 10): the page shows the inbox, typing works.

Chromium is driven over the DevTools protocol with aiohttp (no WebDriver, no new dependency).
The page logs in the way a person does: the server answers 401, the browser gives the password
(Fetch.authRequired), and the page's WebSocket rides on the session cookie. xterm.js draws the
terminal into a canvas (WebGL or 2D) and textual-serve exposes no terminal object on `window`, so
the test reads the screen from the WebSocket frames the page receives (Network events), and
checks the DOM only for what it holds: the terminal element that shows once bytes arrive.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import missing
from tests.integration.serve_harness import PASSWORD, SUBJECT, Served, served

pytestmark = pytest.mark.integration

TIMEOUT = 15.0            # each wait; the whole test takes a few seconds
_CONTROL = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


class DevTools:
    """One page target: commands with ids, events collected, requests let through with auth."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.received: list[bytes] = []       # the terminal output the page got
        self.sent: list[str] = []             # what the page sent (stdin, resize...)
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        await self.ws.send_json({"id": number, "method": method, "params": params})
        return await asyncio.wait_for(future, TIMEOUT)

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)    # None: a _reply's answer
                if future is None:
                    assert "error" not in data, f"DevTools: {data['error']}"
                elif "error" in data:
                    future.set_exception(AssertionError(f"DevTools: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            else:
                self._event(data["method"], data["params"])

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Fetch.requestPaused":
            self._reply("Fetch.continueRequest", requestId=params["requestId"])
        elif method == "Fetch.authRequired":
            self._reply("Fetch.continueWithAuth", requestId=params["requestId"],
                        authChallengeResponse={"response": "ProvideCredentials",
                                               "username": "colleague", "password": PASSWORD})
        elif method == "Network.webSocketFrameReceived":
            frame = params["response"]
            if frame["opcode"] == 2:
                self.received.append(base64.b64decode(frame["payloadData"]))
        elif method == "Network.webSocketFrameSent":
            self.sent.append(params["response"]["payloadData"])
        self.changed.set()

    def _reply(self, method: str, **params: Any) -> None:
        asyncio.get_running_loop().create_task(
            self.ws.send_json({"id": next(self.ids), "method": method, "params": params}))

    def screen(self, since: int = 0) -> str:
        return _CONTROL.sub("", b"".join(self.received[since:]).decode("utf-8", "replace"))

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, what: str, check: Callable[[], bool]) -> None:
        """Poll `check` on every DevTools event (and at least every 0.2 s) until the deadline."""
        deadline = time.monotonic() + TIMEOUT
        while not check():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {what}; screen: {self.screen()[-1500:]!r}"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.2))

    async def until_js(self, what: str, expression: str) -> None:
        """Poll a JavaScript condition in the page until the deadline."""
        deadline = time.monotonic() + TIMEOUT
        while not await self.evaluate(expression):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async def press(self, key: str, code: str, key_code: int, text: str = "") -> None:
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code,
                            windowsVirtualKeyCode=key_code, text=text if kind == "keyDown" else "")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with served(tmp_path / "serve") as running:
        yield running


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    binary = chromium_binary()
    if binary is None:
        missing("chromium not installed (Debian: apt-get install chromium)")
    assert binary is not None
    profile.mkdir()
    argv = [binary, "--headless=new", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--window-size=1280,800",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")      # Chromium's sandbox refuses to run as root
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT
        while not (active.exists() and active.read_text().count("\n") >= 1):
            assert process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.05)          # polling a file, with a deadline
        port = int(active.read_text().split()[0])
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            [page] = [t for t in targets if t["type"] == "page"]
            async with client.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                devtools = DevTools(ws)
                try:
                    yield devtools
                finally:
                    devtools.reader.cancel()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_the_browser_shows_the_inbox_and_typing_works(server: Served,
                                                           tmp_path: Path) -> None:
    async with chromium(tmp_path / "chromium") as page:
        await page.call("Network.enable")
        await page.call("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])
        await page.call("Page.navigate", url=server.url + "/")

        await page.until("the inbox", lambda: SUBJECT in page.screen())
        await page.until_js("the terminal to show",
                            "document.body.classList.contains('-first-byte')")
        assert await page.evaluate("document.querySelector('.xterm-screen canvas') !== null")

        await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        before = len(page.received)
        await page.press("/", "Slash", 191, "/")
        await page.until("the search prompt",
                         lambda: "Search all messages" in page.screen(before))
        await page.call("Input.insertText", text="Bestellung")
        await page.press("Enter", "Enter", 13, "\r")
        await page.until("the search results", lambda: "Search: Bestellung" in page.screen(before))
        assert any(json.loads(frame)[0] == "stdin" for frame in page.sent)
