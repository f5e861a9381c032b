"""Everything outside agent_tui/ui works without Textual, so `run --once` from cron starts fast."""

from __future__ import annotations

import subprocess
import sys

HEADLESS_MODULES = [
    "agent_tui.cli",
    "agent_tui.config",
    "agent_tui.secrets",
    "agent_tui.store",
    "agent_tui.engine.runtime",
    "agent_tui.engine.replies",
    "agent_tui.engine.suggestions",
    "agent_tui.engine.doctor",
    "agent_tui.automation.run_once",
    "agent_tui.insight.commands",
    "agent_tui.knowledge.suggest",
    "agent_tui.knowledge",
    "agent_tui.views",
    "connectors.email",
    "connectors.twilio",
    "connectors.telegram",
]


def test_headless_modules_do_not_import_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {HEADLESS_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual'\n"
        "             or m == 'agent_tui.ui' or m.startswith('agent_tui.ui.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "", f"headless import pulled in: {result.stdout.strip()}"


def test_cli_help_runs_without_textual() -> None:
    code = ("import sys\nfrom agent_tui.cli import build_parser\n"
            "build_parser().format_help()\nprint('textual' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
