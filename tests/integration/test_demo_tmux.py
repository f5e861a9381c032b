"""End to end: `agent-tui demo` in tmux, a reply from a suggestion reaches the demo customer.

Drives the real program in a real terminal (tmux on a private socket): waits for conversations of
every demo channel in the store, opens one, takes suggestion 1, sends it, and sees the reply in the
customers' log; then `q` must end the demo with every server closed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_tui.config import load_config
from tests.conftest import REPO, missing
from tests.fakes.ports import port_is_open

SUGGESTION = re.compile(r"^\s*1\s+\d\.\d\d\s", re.MULTILINE)   # " 1  0.97 Title"
DEADLINE = 90.0           # seconds for the demo to start, sync and send
POLL = 0.2                # readiness polling of the screen and the store


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *arguments: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *arguments], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "demo")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "demo", *keys)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        missing("tmux not installed")
    session = Tmux(f"agent-tui-demo-test-{os.getpid()}")
    session("new-session", "-d", "-s", "demo", "-x", "160", "-y", "48")
    session("set-option", "-t", "demo", "remain-on-exit", "on")
    try:
        yield session
    finally:
        subprocess.run(["tmux", "-L", session.socket, "kill-server"], check=False,
                       capture_output=True)


def wait_for(what: str, condition: Callable[[], bool], tmux: Tmux) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL)      # readiness polling with a deadline
    pytest.fail(f"timed out waiting for {what}; screen:\n{tmux.screen()}")


def conversation_channels(config: Path) -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "agent_tui", "--config", str(config), "list", "--json",
         "--limit", "100000"],
        capture_output=True, text=True, cwd=REPO, check=False)
    if listed.returncode != 0:
        return set()
    return {c["channel"] for c in json.loads(listed.stdout)["conversations"]}


def test_reply_from_a_suggestion_reaches_the_demo_customer(tmux: Tmux, tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    config = directory / "agent-tui.toml"
    customers = directory / "customers.log"
    command = (f"cd {REPO} && PYTHONPATH={REPO} {sys.executable} -m agent_tui demo "
               f"--dir {directory}")
    tmux("respawn-pane", "-k", "-t", "demo", command)

    wait_for("the demo config", config.exists, tmux)
    expected = {"email", "sms", "whatsapp", "telegram"}
    wait_for("conversations of every channel",
             lambda: conversation_channels(config) >= expected, tmux)

    # Open conversations from the top of the queue until one has a suggestion (a "thank you"
    # rightly gets none), then reply with suggestion 1 and send it.
    for _ in range(10):
        tmux.keys("Enter")
        wait_for("the conversation and its suggestions",
                 lambda: SUGGESTION.search(tmux.screen()) is not None
                 or "No suggestion" in tmux.screen(), tmux)
        if SUGGESTION.search(tmux.screen()):
            break
        tmux.keys("Escape")
        wait_for("the inbox again", lambda: "Queue" in tmux.screen(), tmux)
        tmux.keys("j")
    else:
        pytest.fail(f"no conversation with a suggestion near the top; screen:\n{tmux.screen()}")
    tmux.keys("1")                        # reply pre-filled with suggestion 1
    tmux.keys("C-s")                      # send: queued in the outbox, the engine sends it
    wait_for("the reply at the customer's side",
             lambda: customers.exists() and " to " in customers.read_text(), tmux)

    ports = [account.imap_port if hasattr(account, "imap_port")
             else int(str(getattr(account, "api_base", "")).rsplit(":", 1)[1])
             for account in load_config(config).accounts]
    tmux.keys("Escape")
    # ESC followed at once by "q" reads as alt+q in any terminal: wait for the inbox first.
    wait_for("the inbox again", lambda: "Queue" in tmux.screen(), tmux)
    tmux.keys("q")
    wait_for("the demo to end", lambda: "Demo data lives in" in tmux.screen(), tmux)
    assert not any(port_is_open(port) for port in ports)
