"""`agent-tui serve`: the TUI in a browser through textual-serve, behind a password.

textual-serve runs an aiohttp server; each browser session opens `/ws`, and the server starts the
app command in a subprocess (Textual's web driver on its stdin/stdout) for that session. The app
command here is `python -m agent_tui --config FILE tui`: the same config, so the same store and
accounts. Nothing secret is on that command line, and the password is never in the environment
the sessions inherit when it came from an `env:` reference only the server needs.

Every route (the page, `/ws`, `/static`, `/download`) sits behind one middleware: HTTP Basic auth
(any user name, the password from `[serve] password`, compared with `hmac.compare_digest`), or the
session cookie the page sets after a successful Basic auth, since browsers do not reliably send
Basic credentials on a WebSocket handshake. A WebSocket from another origin is refused, so a
foreign page cannot ride on the browser's cached credentials. It speaks plain HTTP: off loopback it
belongs behind a TLS reverse proxy or an SSH tunnel (README "Serving in a browser").

This module imports neither Textual nor the UI: the served sessions do, in their own processes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_tui.config import Config
from agent_tui.errors import AgentTuiError, UsageError
from agent_tui.loopback import is_loopback_host

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("agent_tui.serve")

COOKIE = "agent_tui_session"
REALM = "agent-tui"
MIN_PASSWORD_LENGTH = 8
SHUTDOWN_TIMEOUT = 5.0

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def served_command(config_path: Path | None, python: str = sys.executable) -> str:
    """The shell command textual-serve runs per browser session: the TUI with the same config."""
    argv = [python, "-m", "agent_tui"]
    if config_path is not None:
        argv += ["--config", str(config_path.resolve())]
    argv.append("tui")
    return shlex.join(argv)


class PasswordGate:
    """Basic auth or a session cookie, checked in constant time, in front of every route."""

    def __init__(self, password: str) -> None:
        self._password = password.encode("utf-8")
        self._session = secrets.token_urlsafe(32)      # one per server run; a restart logs out

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

    def cookie_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode("utf-8"),
                                                         self._session.encode("ascii"))

    def middleware(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            by_cookie = self.cookie_ok(request.cookies.get(COOKIE))
            if not by_cookie and not self.basic_ok(request.headers.get("Authorization")):
                wrong = "Authorization" in request.headers   # else a browser's first try
                log.log(logging.WARNING if wrong else logging.INFO,
                        "serve: refused %s %s from %s (%s)", request.method, request.path,
                        request.remote, "wrong password" if wrong else "no password")
                return web.Response(status=401, text="agent-tui: password required\n",
                                    headers={"WWW-Authenticate":
                                             f'Basic realm="{REALM}", charset="UTF-8"'})
            websocket = request.headers.get("Upgrade", "").lower() == "websocket"
            if websocket and not _same_origin(request):
                log.warning("serve: refused a WebSocket from origin %r",
                            request.headers.get("Origin"))
                return web.Response(status=403, text="agent-tui: cross-origin WebSocket\n")
            response = await handler(request)
            if not websocket and not response.prepared:
                response.headers.setdefault("X-Frame-Options", "DENY")
                response.headers.setdefault("Cache-Control", "no-store")
                if not by_cookie:
                    response.set_cookie(COOKIE, self._session, path="/", httponly=True,
                                        samesite="Strict", secure=_scheme(request) == "https")
            return response

        return gate


def _scheme(request: web.Request) -> str:
    # Behind a TLS reverse proxy the page must open wss://; the header only shapes URLs the
    # requesting browser itself is given, so trusting it grants nothing.
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded if forwarded in ("http", "https") else request.scheme


def _same_origin(request: web.Request) -> bool:
    from urllib.parse import urlsplit

    origin = request.headers.get("Origin")
    if origin is None:              # not a browser: nothing to ride on
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def make_server(command: str, password: str, *, title: str = "agent-tui") -> Any:
    """A textual-serve Server whose routes all sit behind `PasswordGate(password)`."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.server import Server, to_int

    gate = PasswordGate(password)

    class GatedServer(Server):
        def __init__(self) -> None:
            super().__init__(command, title=title)
            self.sessions: set[asyncio.Task[Any]] = set()

        def initialize_logging(self) -> None:
            """Logging is the CLI's (a private, redacted file), not textual-serve's console."""

        async def _make_app(self) -> web.Application:
            app = web.Application(middlewares=[gate.middleware()])
            aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
            app.add_routes([
                web.get("/", self.index, name="index"),
                web.get("/ws", self.session, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, name="static"),
            ])
            app.on_shutdown.append(self.end_sessions)
            return app

        async def index(self, request: web.Request) -> web.Response:
            # URLs from the request, not from the listening address: 0.0.0.0, an SSH tunnel's
            # port or a TLS proxy's name must all give the browser URLs it can reach.
            scheme = _scheme(request)
            base = f"{scheme}://{request.host}"
            ws = "wss" if scheme == "https" else "ws"
            router = request.app.router
            static = str(router["static"].url_for(filename="/")).rstrip("/") + "/"
            context = {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": f"{ws}://{request.host}{router['websocket'].url_for()}",
                "config": {"static": {"url": base + static}},
                "application": {"name": self.title},
            }
            response: web.Response = aiohttp_jinja2.render_template(
                "app_index.html", request, context)
            return response

        async def session(self, request: web.Request) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            self.sessions.add(task)
            try:
                response: web.StreamResponse = await self.handle_websocket(request)
                return response
            finally:
                self.sessions.discard(task)

        async def end_sessions(self, app: web.Application) -> None:
            """On shutdown each session closes its WebSocket and quits its TUI process."""
            for task in list(self.sessions):
                task.cancel()
            if self.sessions:
                await asyncio.wait(list(self.sessions), timeout=SHUTDOWN_TIMEOUT)

    return GatedServer()


def resolve_password(config: Config, env: dict[str, str] | None = None) -> str:
    """The `[serve] password`, resolved; refuses a missing or short one (never showing it)."""
    from agent_tui.secrets import resolve_secret

    ref = config.serve.password
    where = f"{config.path or 'the config'}: [serve] 'password'"
    if ref is None:
        raise UsageError(f"{where}: serve needs a password; store one with `agent-tui secret set "
                         "serve` and write password = \"keyring:agent-tui/serve\" (or \"env:VAR\","
                         " \"cmd:...\")")
    password = resolve_secret(ref, account="serve", key="password",
                              env=os.environ if env is None else env)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"{where}: the password is too short; use {MIN_PASSWORD_LENGTH} or more "
                         "characters")
    return password


def _forget_env_password(config: Config) -> None:
    """Sessions inherit the server's environment: drop an `env:` password only the server uses."""
    ref = config.serve.password
    if ref is None or ref.scheme != "env":
        return
    if any(a.secret.scheme == "env" and a.secret.target == ref.target for a in config.accounts):
        return
    if config.store.encryption_key is not None and config.store.encryption_key == ref:
        return
    os.environ.pop(ref.target, None)


def serve(config: Config, *, host: str | None = None, port: int | None = None,
          out: Any = None) -> int:
    """Run the server until SIGINT/SIGTERM. Raises AgentTuiError for what the user must fix."""
    out = out or sys.stderr
    host = host or config.serve.host
    port = config.serve.port if port is None else port
    if not 1 <= port <= 65535:
        raise UsageError(f"--port: expected 1-65535, got {port}")
    password = resolve_password(config)
    try:
        from aiohttp import web

        server = make_server(served_command(config.path), password)
    except ImportError as exc:
        raise AgentTuiError(f"serve needs textual-serve ({exc.name} is missing): "
                            "pip install 'agent-tui[serve]'") from None
    _forget_env_password(config)
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback_host(host):
        print(f"agent-tui: warning: serving on {host} in plain HTTP; put it behind a TLS reverse "
              "proxy or reach it through an SSH tunnel", file=out)

    def announce(*_: object) -> None:
        print(f"agent-tui: serving the inbox on http://{shown}:{port}/ (ctrl+c stops)",
              file=out, flush=True)

    try:
        web.run_app(server._make_app(), host=host, port=port, print=announce,
                    shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=True,
                    access_log=logging.getLogger("aiohttp.access"))
    except OSError as exc:
        raise AgentTuiError(f"cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
    return 0
