"""Several processes on one SQLite store (team mode on one host): none may break another's WAL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import open_store

REPO = Path(__file__).resolve().parents[2]


def _sms(number: int) -> InboundMessage:
    return InboundMessage(channel=Channel.SMS, provider_id=f"SM{number}",
                          direction=Direction.INBOUND, sender="+491701234567", sender_name="",
                          recipients=["+493012345678"], sent_at=datetime.now(UTC), subject="",
                          text=f"Nachricht {number}")


def _count_in_another_process(path: Path) -> int:
    code = ("import sys; from agent_tui.store import open_store; s = open_store(sys.argv[1]); "
            "print(sum(len(s.get_messages(c.id)) for c in s.list_conversations())); s.close()")
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, check=True,
                          capture_output=True, text=True)
    return int(done.stdout)


def test_a_cli_run_beside_a_running_tui_loses_none_of_its_writes(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    tui = open_store(path)
    tui.reader().close()        # the TUI opens and closes reader connections all day
    tui.ingest("shop-sms", [_sms(1)], cursor_key="main", cursor=None)

    assert _count_in_another_process(path) == 1         # e.g. `agent-tui list`, then it exits
    tui.ingest("shop-sms", [_sms(2)], cursor_key="main", cursor=None)

    # Had the first CLI run deleted the TUI's WAL, this write would be invisible (and lost).
    assert _count_in_another_process(path) == 2
    tui.close()
