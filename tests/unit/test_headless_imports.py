"""Everything outside agent_tui/ui works without Textual, so `run --once` from cron starts fast.

The modules are found by walking the packages, not listed by hand: a new module is covered the
day it is added. Each is imported in a fresh interpreter, as harlequin checks its own.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

HEADLESS_PACKAGES = ("agent_tui", "connectors")
UI_PACKAGE = "agent_tui.ui"


def headless_modules() -> list[str]:
    """Every module of the packages outside the UI (`__main__` would run the CLI)."""
    names = []
    for package in HEADLESS_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            if parts[-1] == "__main__" or name == UI_PACKAGE or name.startswith(f"{UI_PACKAGE}."):
                continue
            names.append(name)
    return names


def test_the_walk_finds_the_packages_and_their_modules() -> None:
    names = headless_modules()
    assert {"agent_tui", "agent_tui.cli", "agent_tui.config", "agent_tui.store.sqlite",
            "agent_tui.demo.sandbox", "connectors.email.imap"} <= set(names)
    assert not any(n.startswith(UI_PACKAGE) or n.endswith("__main__") for n in names)


def test_headless_modules_do_not_import_textual() -> None:
    code = (
        "import importlib, json, sys\n"
        "def ui_loaded():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] == 'textual'\n"
        f"                  or m == {UI_PACKAGE!r} or m.startswith({UI_PACKAGE + '.'!r}))\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    importlib.import_module(name)\n"
        "    if ui_loaded():\n"
        "        print(name, 'pulled in', ', '.join(ui_loaded()[:5]))\n"
        "        break\n"
    )
    result = subprocess.run([sys.executable, "-c", code, json.dumps(headless_modules())],
                            capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == ""


def test_cli_help_runs_without_textual() -> None:
    code = ("import sys\nfrom agent_tui.cli import build_parser\n"
            "build_parser().format_help()\nprint('textual' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
