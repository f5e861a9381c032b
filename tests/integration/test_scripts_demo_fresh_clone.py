"""`./scripts/demo` from a fresh clone: the script makes its own venv and the demo runs.

This is what a newcomer does first (README). Runs the headless demo for one round so that it ends
by itself; the TUI path is covered by test_demo_tmux.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO, missing


def test_scripts_demo_creates_its_venv_and_runs(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        missing("git not installed")
    if not (REPO / ".git").exists():
        missing("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    assert not (clone / ".venv").exists()
    result = subprocess.run(
        ["./scripts/demo", "--headless", "--rounds", "1", "--dir", str(tmp_path / "demo")],
        cwd=clone, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (clone / ".venv" / "bin" / "agent-tui").exists()
    assert "sandbox ready" in result.stdout
    assert (tmp_path / "demo" / "agent-tui.toml").exists()
