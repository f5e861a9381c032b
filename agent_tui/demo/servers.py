"""The demo's own servers, all on free loopback ports inside one asyncio loop.

- `ImapServer`: pymap's in-memory (dict) backend, embedded; pure Python, so `./scripts/demo` works
  on a machine without Dovecot. It offers IDLE, UIDPLUS and MULTIAPPEND, but not CONDSTORE (the
  mail connector then skips flag sync, which the demo does not need).
- `SmtpServer`: aiosmtpd; every reply we send is handed to a callback that "delivers" it to the
  demo customer (the sandbox records it in a log file).
- `EnrichmentServer`: the shop's order lookup as an HTTP endpoint in the format
  `agent_tui.knowledge.enrichment.run_http` posts (the message as JSON, `fields` with the order
  number found by `order_regex`), answering a JSON object of order fields.

They are started and stopped from inside the sandbox's loop (`await start()`, `await stop()`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web

from agent_tui.loopback import LOOPBACK, free_port


class ImapServer:
    """pymap's dict backend with one mail user, on a free loopback port (plaintext)."""

    host = LOOPBACK

    def __init__(self, user: str, password: str, port: int | None = None) -> None:
        self.user = user
        self.password = password
        self.port = port or free_port()
        self._stack: AsyncExitStack | None = None
        self._executor: ThreadPoolExecutor | None = None

    def _arguments(self) -> argparse.Namespace:
        # pymap builds its config from command-line arguments; its own parsers give every
        # default it expects, so the embedded server is configured exactly like `pymap dict`.
        from pymap.backend import backends
        from pymap.imap import IMAPService

        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--debug", action="store_true")
        IMAPService.add_arguments(parser)
        subparsers = parser.add_subparsers(dest="backend")
        backends["dict"].add_subparser("dict", subparsers)
        arguments = parser.parse_args([
            "--host", self.host, "--port", str(self.port), "--no-tls",
            "dict", "--demo-user", self.user, "--demo-password", self.password])
        arguments.skip_services = []
        arguments.passlib_cfg = None
        return arguments

    async def start(self) -> None:
        from pymap.backend import backends
        from pymap.concurrent import Subsystem
        from pymap.imap import IMAPService

        # pymap would make a thread pool for password hashing that nobody shuts down; with our
        # own, stop() leaves no thread behind.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-imap")
        backend, config = await backends["dict"].init(
            self._arguments(), cpu_subsystem=Subsystem.for_threading(self._executor))
        config.apply_context()
        stack = AsyncExitStack()
        try:
            await backend.start(stack)
            await IMAPService(backend, config).start(stack)
        except BaseException:
            await stack.aclose()
            self._executor.shutdown(wait=True)
            raise
        self._stack = stack

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


@dataclass(frozen=True, slots=True)
class DeliveredMail:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class SmtpServer:
    """aiosmtpd without AUTH on a free loopback port; `on_mail` gets every accepted message."""

    host = LOOPBACK

    def __init__(self, on_mail: Callable[[DeliveredMail], None], port: int | None = None,
                 hostname: str = "smtp.demo") -> None:
        self.port = port or free_port()
        self._on_mail = on_mail
        self._hostname = hostname
        self._server: asyncio.base_events.Server | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content or b""
        self._on_mail(DeliveredMail(str(envelope.mail_from), tuple(envelope.rcpt_tos),
                                    bytes(data)))
        return "250 OK delivered to the demo customer"

    async def start(self) -> None:
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname=self._hostname, ident="agent-tui demo SMTP"),
            host=self.host, port=self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()


class EnrichmentServer:
    """The demo shop's order lookup: POST / with the message JSON, or GET /orders/NUMBER."""

    host = LOOPBACK

    def __init__(self, orders: Mapping[str, Mapping[str, Any]], port: int | None = None) -> None:
        self.orders = orders
        self.port = port or free_port()
        self.lookups: list[str] = []          # order numbers asked for, in order
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def _answer(self, number: str) -> web.Response:
        self.lookups.append(number)
        order = self.orders.get(number.upper())
        if order is None:
            return web.json_response({})
        return web.json_response({"order": dict(order)})

    async def _lookup_message(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": "expected a JSON object"}, status=400)
        fields = payload.get("fields", {}) if isinstance(payload, dict) else {}
        number = fields.get("order.number", "") if isinstance(fields, dict) else ""
        return self._answer(str(number)) if number else web.json_response({})

    async def _lookup_number(self, request: web.Request) -> web.Response:
        return self._answer(request.match_info["number"])

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._lookup_message)
        app.router.add_get("/orders/{number}", self._lookup_number)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
