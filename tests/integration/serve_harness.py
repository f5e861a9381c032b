"""`agent-tui serve` as a subprocess on a free loopback port, over a seeded store.

The config names the password as an `env:` reference; the server's process tree is walked through
/proc so a test can check that the password is on no command line and in no session's environment.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent_tui.model import Channel, Direction
from agent_tui.store import open_store
from connectors.base import InboundMessage
from tests.fakes.dovecot import free_port

PASSWORD_ENV = "AGENT_TUI_TEST_SERVE_PASSWORD"
PASSWORD = "Sesam-öffne-dich-42"          # non-ASCII: Basic auth is decoded as UTF-8
SUBJECT = "Wo bleibt meine Bestellung"
START_TIMEOUT = 15.0


def basic_auth(password: str, user: str = "agent") -> dict[str, str]:
    """The Authorization header a browser sends for `user` and `password`."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def seed_store(path: Path) -> None:
    now = datetime.now(UTC)
    store = open_store(str(path))
    try:
        store.ingest("shop-mail", [
            InboundMessage(channel=Channel.EMAIL, provider_id="serve-1@example.org",
                           direction=Direction.INBOUND, sender="kim@example.org",
                           sender_name="Kim Berger", recipients=["service@shop.example"],
                           sent_at=now - timedelta(minutes=30), subject=SUBJECT,
                           text="Hallo, wo bleibt meine Bestellung 10234?"),
        ], cursor_key="main", cursor=None)
    finally:
        store.close()


FAILURE_DELAY = 0.05     # [serve] failure_delay: wrong passwords cost a test little time


def write_config(directory: Path, *, password: str | None = f"env:{PASSWORD_ENV}",
                 serve: Mapping[str, str] | None = None) -> Path:
    """The config; `serve` sets [serve] keys to TOML values (failure_delay has a test's default)."""
    directory.mkdir(parents=True, exist_ok=True)
    seed_store(directory / "agent.db")
    keys = {"failure_delay": str(FAILURE_DELAY), **(serve or {})}
    lines = ['[agent]', 'name = "Mia"', '[store]', 'path = "agent.db"', '[serve]',
             *(f"{key} = {value}" for key, value in keys.items())]
    if password is not None:
        lines.append(f'password = "{password}"')
    config = directory / "agent-tui.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config.chmod(0o600)
    return config


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    config: Path
    log: Path               # stdout and stderr

    @property
    def log_file(self) -> Path:
        """The agent-tui log the server writes (AGENT_TUI_LOG_DIR)."""
        return self.config.parent / "logs" / "agent-tui.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree(self) -> list[int]:
        """The server and every process below it (the sessions' shells and TUIs)."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except FileNotFoundError:
                continue
            for task in tasks:
                try:
                    children = Path(f"/proc/{pid}/task/{task}/children").read_text()
                except FileNotFoundError:
                    continue
                todo.extend(int(c) for c in children.split())
        return found


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env[PASSWORD_ENV] = PASSWORD
    env["AGENT_TUI_LOG_DIR"] = str(tmp / "logs")
    env.pop("AGENT_TUI_CONFIG", None)
    return env


@contextmanager
def served(directory: Path, *, serve: Mapping[str, str] | None = None) -> Iterator[Served]:
    config = write_config(directory, serve=serve)
    port = free_port()
    log = directory / "serve.out"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent_tui", "--config", str(config), "serve",
             "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, text=True,
            env=_env(directory), cwd=directory)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while f":{port}/" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, f"serve did not start: {log.read_text()}"
            time.sleep(0.05)        # polling the announcement, with a deadline
        assert process.poll() is None, f"serve exited: {log.read_text()}"
        yield Served(process, port, config, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
