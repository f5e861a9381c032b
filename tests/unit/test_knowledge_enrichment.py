"""Enrichment: the order regex, a real command on stdin/stdout, a real HTTP endpoint on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from agent_tui.knowledge.enrichment import DEFAULT_ORDER_REGEX, extract_fields, run_enrichers

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


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    async def lookup(request: web.Request) -> web.Response:
        message = await request.json()
        if message["text"] == "slow":
            await asyncio.sleep(2)
        if message["text"] == "boom":
            return web.Response(status=500)
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
