"""`doctor` names each file with customer text that others can read, and the chmod to fix it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_tui.engine.doctor import DoctorReport, private_files_check
from agent_tui.store import open_store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    store_path = tmp_path / "data" / "agent.db"
    open_store(store_path).close()                  # created 0700 / 0600
    log_file = tmp_path / "logs" / "agent-tui.log"
    log_file.parent.mkdir(mode=0o700)
    log_file.write_text("")
    log_file.chmod(0o600)
    return store_path, log_file


def test_a_private_layout_passes(tmp_path: Path) -> None:
    store_path, log_file = _layout(tmp_path)
    report = DoctorReport()

    private_files_check(report, store_path, log_file)

    assert report.ok
    [check] = report.checks
    assert not check.warning and "private" in check.detail


def test_readable_store_logs_and_rotated_logs_are_named_with_the_fix(tmp_path: Path) -> None:
    store_path, log_file = _layout(tmp_path)
    store_path.parent.chmod(0o755)
    store_path.chmod(0o644)
    rotated = log_file.with_name("agent-tui.log.1")
    rotated.write_text("a customer's words")
    rotated.chmod(0o640)
    report = DoctorReport()

    private_files_check(report, store_path, log_file)

    [check] = report.checks
    assert check.ok and check.warning
    fixes = check.detail.removeprefix("readable by others: ").split("; ")
    assert fixes == [f"chmod 700 {store_path.parent}", f"chmod 600 {store_path}",
                     f"chmod 600 {rotated}"]
