"""Log files: the platform log dir, rotated, private, and never a secret in them.

Secrets are redacted when a record is created (agent_tui.secrets.install_log_redaction), so every
handler, ours or a library's, writes the redacted text.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from platformdirs import user_log_dir

from agent_tui.sanitize import clean_text
from agent_tui.secrets import install_log_redaction

MAX_BYTES = 1_000_000
BACKUPS = 5


class _CleanFormatter(logging.Formatter):
    """Log lines quote what senders and servers wrote; `tail -f` must not run their escapes."""

    def format(self, record: logging.LogRecord) -> str:
        return clean_text(super().format(record))


def log_path() -> Path:
    override = os.environ.get("AGENT_TUI_LOG_DIR")
    return Path(override or user_log_dir("agent-tui")) / "agent-tui.log"


def setup_logging(*, debug: bool = False, path: Path | None = None) -> Path | None:
    """Log to a rotating file (0600 in a 0700 dir); returns its path, None if it cannot be made."""
    install_log_redaction()
    path = path or log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES,
                                                       backupCount=BACKUPS, encoding="utf-8")
    except OSError:
        return None        # a read-only home must not stop the program; stderr still works
    handler.setFormatter(_CleanFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: "
                                         "%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # twilio logs every request and response header at INFO: noise, and a privacy risk.
    logging.getLogger("twilio").setLevel(logging.DEBUG if debug else logging.WARNING)
    return path
