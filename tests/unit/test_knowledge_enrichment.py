"""Enrichment: the order regex, a real command on stdin/stdout, a real HTTP endpoint on loopback;
what a shop system sends back is bounded and treated as data."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from agent_tui.knowledge.enrichment import (
    DEFAULT_ORDER_REGEX,
    MAX_VALUE_CHARS,
    OUTPUT_LIMIT,
    extract_fields,
    run_enrichers,
)

MESSAGE = {"subject": "Bestellung 10234", "text": "Wo ist mein Paket?", "channel": "email"}


def test_order_regex_finds_the_number() -> None:
    assert extract_fields("Hallo, meine Bestellnummer: 4711-0815 fehlt", r"(\d{4}-\d{4})") == \
        {"order.number": "4711-0815"}
    assert extract_fields("Meine Bestellung #10234 ist nicht da", DEFAULT_ORDER_REGEX) == \
        {"order.number": "10234"}
    assert extract_fields("Order no. 55120, please", DEFAULT_ORDER_REGEX) == \
        {"order.number": "55120"}
    assert extract_fields("Ich habe 3 Tassen", DEFAULT_ORDER_REGEX) == {}
    assert extract_fields("x", "([") == {}          # an invalid regex never raises


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "enrich.py"
    path.write_text("import json, sys, time\nmessage = json.load(sys.stdin)\n" + body,
                    encoding="utf-8")
    return [sys.executable, str(path)]


async def test_command_gets_message_and_fields_and_returns_flattened_json(
        tmp_path: Path) -> None:
    command = script(tmp_path, 'print(json.dumps({"order": {"status": "versandt", "number": '
                               'message["fields"]["order.number"]}, "note": message["text"]}))')
    fields = await run_enrichers(MESSAGE, order_regex=DEFAULT_ORDER_REGEX, command=command)
    assert fields == {"order.number": "10234", "order.status": "versandt",
                      "note": "Wo ist mein Paket?"}


@pytest.mark.parametrize("body", [
    "time.sleep(30)",                         # slow
    "sys.exit(3)",                            # fails
    "print('not json')",                      # garbage
])
async def test_failing_command_returns_regex_fields_and_warns(
        tmp_path: Path, body: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    start = loop.time()
    fields = await run_enrichers(MESSAGE, order_regex=DEFAULT_ORDER_REGEX,
                                 command=script(tmp_path, body), timeout=1.0)
    assert fields == {"order.number": "10234"}
    assert loop.time() - start < 10
    assert any("enrichment: command" in r.getMessage() for r in caplog.records)


async def test_missing_command_is_a_warning_not_an_error(tmp_path: Path) -> None:
    assert await run_enrichers(MESSAGE, command=str(tmp_path / "nope")) == {}


@pytest.mark.parametrize("body", [
    # valid JSON, but more of it than a look-up may send
    'print(json.dumps({"note": "x" * 2_000_000}))',
    # the fields are fine, the noise on stderr is not
    'sys.stderr.write("e" * 2_000_000); print(json.dumps({"order": {"status": "ok"}}))',
])
async def test_command_output_over_the_cap_gives_no_fields(
        tmp_path: Path, body: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    fields = await run_enrichers(MESSAGE, order_regex=DEFAULT_ORDER_REGEX,
                                 command=script(tmp_path, body), timeout=30.0)
    assert fields == {"order.number": "10234"}
    assert any(f"more than {OUTPUT_LIMIT} bytes" in r.getMessage() for r in caplog.records)


def _has_ended(pid: int) -> bool:
    """Whether the process has exited (or is already reaped), waiting at most 5 s for it."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([descriptor], [], [], 5.0)[0])   # readable once it exited
    finally:
        os.close(descriptor)


async def test_timeout_ends_the_commands_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # The grandchild lets go of the pipes: only the process group ties it to the command.
    command = ["/bin/sh", "-c",
               f'sleep 600 </dev/null >/dev/null 2>&1 & echo $! > "{pid_file}"; exec sleep 600']
    assert await run_enrichers(MESSAGE, command=command, timeout=1.0) == {}
    assert _has_ended(int(pid_file.read_text()))


async def test_shop_values_are_one_clean_bounded_line(tmp_path: Path) -> None:
    command = script(tmp_path, 'print(json.dumps({"order": {"status": '
                               '"\\u001b[31mrot\\u001b[0m\\nzwei\\u202e"}, "note": "n" * 5000, '
                               '"ti\\u001b]0;x\\u0007tle": 1}))')
    fields = await run_enrichers(MESSAGE, command=command)
    assert fields == {"order.status": "rot zwei", "note": "n" * MAX_VALUE_CHARS, "title": "1"}


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    async def lookup(request: web.Request) -> web.Response:
        message = await request.json()
        if message["text"] == "slow":
            await asyncio.sleep(2)
        if message["text"] == "boom":
            return web.Response(status=500)
        if message["text"] == "huge":
            return web.json_response({"note": "x" * 2_000_000})
        if message["text"] == "stream":            # no Content-Length: the cap counts the bytes
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b'{"note": "')
            for _ in range(40):
                await response.write(b"x" * 65536)
            await response.write(b'"}')
            return response
        hops = int(request.query.get("hops", "0"))
        if hops:                                   # 307 keeps the POST and its body
            raise web.HTTPTemporaryRedirect(f"/lookup?hops={hops - 1}")
        return web.json_response({"order": {"status": "in Zustellung",
                                            "tracking_url": "https://track.example/1"},
                                  "seen": message["fields"].get("order.number", "")})

    app = web.Application()
    app.router.add_post("/lookup", lookup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/lookup"
    await runner.cleanup()


async def test_http_endpoint_adds_fields(endpoint: str) -> None:
    fields = await run_enrichers(MESSAGE, order_regex=DEFAULT_ORDER_REGEX, url=endpoint)
    assert fields == {"order.number": "10234", "order.status": "in Zustellung",
                      "order.tracking_url": "https://track.example/1", "seen": "10234"}


@pytest.mark.parametrize("text", ["slow", "boom"])
async def test_http_failure_or_timeout_returns_empty(endpoint: str, text: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    fields = await run_enrichers({"text": text}, url=endpoint, timeout=0.5)
    assert fields == {}
    assert any("enrichment: endpoint" in r.getMessage() for r in caplog.records)
    json.dumps(fields)


@pytest.mark.parametrize("text", ["huge", "stream"])
async def test_http_answer_over_the_cap_gives_no_fields(
        endpoint: str, text: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert await run_enrichers({"text": text}, url=endpoint) == {}
    assert any(f"more than {OUTPUT_LIMIT} bytes" in r.getMessage() for r in caplog.records)


async def test_http_follows_a_few_redirects_not_many(endpoint: str) -> None:
    assert (await run_enrichers({"text": "x"}, url=f"{endpoint}?hops=2"))["seen"] == ""
    assert await run_enrichers({"text": "x"}, url=f"{endpoint}?hops=5") == {}
