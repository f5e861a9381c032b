from __future__ import annotations

import logging
import stat
from pathlib import Path

from agent_tui.logs import setup_logging
from agent_tui.secrets import register_secret


def test_log_file_is_private_and_redacted(tmp_path: Path) -> None:
    path = setup_logging(path=tmp_path / "logs" / "agent-tui.log")
    assert path is not None
    try:
        register_secret("hunter2-very-secret")
        logging.getLogger("agent_tui.test").warning("login with hunter2-very-secret failed")
        logging.getLogger("agent_tui.test").warning("pattern %r from \x1b]0;pwned\x07 x", "\u202e")
        for handler in logging.getLogger().handlers:
            handler.flush()
        text = path.read_text()
        assert "login with" in text and "hunter2-very-secret" not in text
        assert "pattern" in text and "\x1b" not in text and "\u202e" not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "baseFilename", "") == str(path):
                root.removeHandler(handler)
                handler.close()
