"""`agent-tui demo`: the whole product against an embedded sandbox, in one command.

The sandbox (agent_tui.demo.sandbox) runs a local IMAP server, an SMTP server, the Twilio and
Telegram look-alikes and the shop's order lookup on loopback, seeds a few weeks of history and
keeps customers writing. The real connectors, engine and TUI then work against it through a demo
config written to a temporary directory (or `--dir`), which is kept after the demo ends.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

from agent_tui.demo.files import prepare_directory, write_config, write_knowledge
from agent_tui.demo.sandbox import DemoError, Sandbox, SandboxOptions

__all__ = ["DemoError", "Sandbox", "SandboxOptions", "run_demo"]

HEADLESS_INTERVAL = 30.0       # seconds between two `run --once`, as a cron job might run it


def _printer(out: TextIO) -> Callable[[str], None]:
    def show(text: str) -> None:
        out.write(f"[{datetime.now():%H:%M:%S}] {text}\n")
        out.flush()

    return show


def _file_reporter(path: Path) -> Callable[[str], None]:
    def record(text: str) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}\n")

    return record


def once_arguments() -> list[str]:
    """`run --once` when the automation module exists, else a plain sync."""
    if importlib.util.find_spec("agent_tui.automation.run_once") is not None:
        return ["run", "--once"]
    return ["sync"]


def _child_environment() -> dict[str, str]:
    """This process's environment, with the directory holding agent_tui on the import path
    (a source checkout run without an editable install)."""
    environment = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environment


def run_headless(config_path: Path, show: Callable[[str], None], *,
                 interval: float = HEADLESS_INTERVAL, rounds: int | None = None) -> None:
    """`agent-tui run --once` every `interval` seconds (as cron would), its output passed on."""
    arguments = ["--config", str(config_path), *once_arguments()]
    done = 0
    while rounds is None or done < rounds:
        if done:
            time.sleep(interval)      # the cron period, not synchronisation
        show(f"$ agent-tui {' '.join(arguments)}")
        completed = subprocess.run([sys.executable, "-m", "agent_tui", *arguments],
                                   stdin=subprocess.DEVNULL, env=_child_environment(),
                                   check=False)
        if completed.returncode:
            show(f"(exit {completed.returncode})")
        done += 1


def run_demo_tui(config_path: Path) -> int:
    """The TUI on the demo's config and its store, opened as every command opens it."""
    from agent_tui.config import load_config
    from agent_tui.engine.runtime import build_engine
    from agent_tui.store import open_configured_store

    try:
        from agent_tui.ui import run_tui
    except ImportError as exc:
        raise DemoError(f"the TUI cannot start ({exc}); try `agent-tui demo --headless`") from None
    config = load_config(config_path)
    store = open_configured_store(config.store)
    try:
        result: int = run_tui(config, store, build_engine(config, store))
        return result
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def run_demo(headless: bool, directory: str | None, *, rounds: int | None = None,
             interval: float = HEADLESS_INTERVAL, options: SandboxOptions | None = None,
             out: TextIO | None = None) -> int:
    """Start the sandbox, then the TUI (or `run --once` every 30 s), and clean up after.

    `rounds`, `interval` and `options` exist for tests; the CLI passes only the first two.
    """
    out = out or sys.stdout
    show = _printer(out)
    path = (Path(directory).expanduser().resolve() if directory
            else Path(tempfile.mkdtemp(prefix="agent-tui-demo-")))
    prepare_directory(path)
    write_knowledge(path)
    report = show if headless else _file_reporter(path / "demo.log")
    sandbox = Sandbox(path, options, report=report)
    show(f"starting the demo sandbox in {path} ...")
    sandbox.start()
    status = 0
    try:
        config_path = write_config(path, sandbox)
        show(f"sandbox ready: {', '.join(sandbox.channels)}; servers on 127.0.0.1 ports "
             + ", ".join(f"{name} {port}" for name, port in sandbox.ports.items()))
        show(f"config: {config_path}  (try `agent-tui --config {config_path} list` "
             "in another terminal)")
        sandbox.start_customers()
        if headless:
            run_headless(config_path, show, interval=interval, rounds=rounds)
        else:
            status = run_demo_tui(config_path)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        delivered = len(sandbox.deliveries())
        out.write(f"\nDemo stopped; all its servers are closed. {delivered} replies reached "
                  f"the demo customers.\nDemo data lives in {path} (agent-tui.toml, agent.db, "
                  "customers.log: what the customers received).\n")
        out.flush()
    return status
