"""`agent-tui serve`: the TUI in a browser through textual-serve, behind a password.

textual-serve runs an aiohttp server; each browser session opens `/ws`, and the server starts the
app command in a subprocess (Textual's web driver on its stdin/stdout) for that session. The app
command here is `python -m agent_tui --config FILE tui`: the same config, so the same store and
accounts. Nothing secret is on that command line, and the password is never in the environment
the sessions inherit when it came from an `env:` reference only the server needs.

Every route (the page, `/ws`, `/static`, `/download`) sits behind `serve_gate.PasswordGate`: the
password or a per-browser session cookie, with guesses limited per client address. A WebSocket from
another origin is refused, so a foreign page cannot ride on the browser's cached credentials. It
speaks plain HTTP, so it listens off loopback only when told it sits behind a TLS reverse proxy
(`--behind-tls-proxy`); otherwise an SSH tunnel reaches it (README "Serving in a browser").

This module imports neither Textual nor the UI: the served sessions do, in their own processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_tui.config import Config, is_loopback_host
from agent_tui.errors import AgentTuiError, UsageError
from agent_tui.serve_gate import GuessLimiter, PasswordGate, Sessions

if TYPE_CHECKING:
    from aiohttp import web

MIN_PASSWORD_LENGTH = 8
SHUTDOWN_TIMEOUT = 5.0


def served_command(config_path: Path | None, python: str = sys.executable) -> str:
    """The shell command textual-serve runs per browser session: the TUI with the same config."""
    argv = [python, "-m", "agent_tui"]
    if config_path is not None:
        argv += ["--config", str(config_path.resolve())]
    argv.append("tui")
    return shlex.join(argv)


def make_gate(config: Config, password: str, *, behind_tls_proxy: bool) -> PasswordGate:
    """The gate `[serve]` describes: its guess limits, its session lifetime."""
    settings = config.serve
    return PasswordGate(
        password,
        GuessLimiter(first_delay=settings.failure_delay, lock_after=settings.lockout_after,
                     lockout=settings.lockout_minutes * 60),
        Sessions(settings.session_hours * 3600),
        behind_tls_proxy=behind_tls_proxy)


def make_server(command: str, gate: PasswordGate, *, title: str = "agent-tui") -> Any:
    """A textual-serve Server whose routes all sit behind `gate`."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.server import Server, to_int

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
            scheme = gate.scheme(request)
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
          behind_tls_proxy: bool = False, out: Any = None) -> int:
    """Run the server until SIGINT/SIGTERM. Raises AgentTuiError for what the user must fix."""
    out = out or sys.stderr
    host = host or config.serve.host
    port = config.serve.port if port is None else port
    behind_tls_proxy = behind_tls_proxy or config.serve.behind_tls_proxy
    if not 1 <= port <= 65535:
        raise UsageError(f"--port: expected 1-65535, got {port}")
    if not behind_tls_proxy and not is_loopback_host(host):
        raise UsageError(f"serve: refusing to listen on {host} in plain HTTP; put it behind a TLS "
                         "reverse proxy and pass --behind-tls-proxy ([serve] behind_tls_proxy = "
                         "true), or keep 127.0.0.1 and reach it through an SSH tunnel")
    password = resolve_password(config)
    try:
        from aiohttp import web

        server = make_server(served_command(config.path),
                             make_gate(config, password, behind_tls_proxy=behind_tls_proxy))
    except ImportError as exc:
        raise AgentTuiError(f"serve needs textual-serve ({exc.name} is missing): "
                            "pip install 'agent-tui[serve]'") from None
    _forget_env_password(config)
    shown = f"[{host}]" if ":" in host else host
    where = " for the TLS reverse proxy" if behind_tls_proxy else ""

    def announce(*_: object) -> None:
        print(f"agent-tui: serving the inbox on http://{shown}:{port}/{where} (ctrl+c stops)",
              file=out, flush=True)

    try:
        web.run_app(server._make_app(), host=host, port=port, print=announce,
                    shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=True,
                    access_log=logging.getLogger("aiohttp.access"))
    except OSError as exc:
        raise AgentTuiError(f"cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
    return 0
