"""`agent-tui serve` in headless Chromium (issues 10, 17): the page shows the inbox, typing works,
and guessing the password is slowed, then refused, until the lockout window has passed.

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
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import missing
from tests.integration.serve_harness import PASSWORD, SUBJECT, Served, basic_auth, served

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
        self.passwords: Iterator[str] = itertools.repeat(PASSWORD)   # given when asked
        self.asked: list[float] = []          # when the server asked for a password
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
            self.asked.append(time.monotonic())
            password = next(self.passwords, None)
            answer = ({"response": "CancelAuth"} if password is None else
                      {"response": "ProvideCredentials", "username": "colleague",
                       "password": password})
            self._reply("Fetch.continueWithAuth", requestId=params["requestId"],
                        authChallengeResponse=answer)
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
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
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


FIRST_DELAY = 0.1          # seconds; then 0.2, 0.4, 0.8
LOCKOUT_AFTER = 5
LOCKOUT_SECONDS = 3.0
GUESSES = 20


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Served]:
    limits = {"failure_delay": str(FIRST_DELAY), "lockout_after": str(LOCKOUT_AFTER),
              "lockout_minutes": str(LOCKOUT_SECONDS / 60)}
    with served(tmp_path / "serve", serve=limits) as running:
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


def _wrong(numbers: Iterable[int]) -> list[str]:
    return [f"falsch-{number}" for number in numbers]


async def test_guessing_the_password_is_slowed_then_refused_until_the_window_passes(
        guarded: Served, tmp_path: Path) -> None:
    async with chromium(tmp_path / "chromium") as page:
        await page.call("Network.enable")
        await page.call("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])
        lockout_page = "document.body.innerText.includes('too many wrong passwords')"

        # A person at the password dialog, wrong each time: each answer comes twice as late.
        page.passwords = iter(_wrong(range(1, GUESSES + 1)))
        await page.call("Page.navigate", url=guarded.url + "/")
        await page.until_js("the lockout page", lockout_page)
        assert len(page.asked) == LOCKOUT_AFTER          # the last guess locked the address out
        waits = [later - earlier for earlier, later in itertools.pairwise(page.asked)]
        for number, waited in enumerate(waits):
            assert waited >= FIRST_DELAY * 2 ** number * 0.95, waits

        # The rest of the 20 guesses, and then the right password: refused, none even checked.
        guesses = [basic_auth(p)["Authorization"]
                   for p in [*_wrong(range(LOCKOUT_AFTER + 1, GUESSES + 1)), PASSWORD]]
        answers = await page.evaluate(f"""(async () => {{
            const statuses = [];
            for (const authorization of {json.dumps(guesses)}) {{
                const response = await fetch("/", {{headers: {{Authorization: authorization}}}});
                statuses.push(response.status);
            }}
            return statuses;
        }})()""")
        assert answers == [429] * (GUESSES - LOCKOUT_AFTER + 1)
        log = guarded.log_file.read_text()
        assert log.count("(wrong password)") == LOCKOUT_AFTER - 1
        assert log.count(f"after {LOCKOUT_AFTER} wrong passwords") == 1
        assert "falsch" not in log and PASSWORD not in log

        # After the window the right password opens the inbox: reload until it does.
        page.passwords = itertools.repeat(PASSWORD)
        deadline = time.monotonic() + TIMEOUT
        while await page.evaluate(lockout_page):
            assert time.monotonic() < deadline, "still locked out"
            await asyncio.sleep(0.2)         # polling the lockout's end, with a deadline
            await page.call("Page.navigate", url=guarded.url + "/")
            await page.until_js("a page", "document.readyState === 'complete'")
        await page.until("the inbox", lambda: SUBJECT in page.screen())
        assert len(page.asked) == LOCKOUT_AFTER + 1      # asked once more, after the window
