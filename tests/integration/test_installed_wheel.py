"""The demo from an installed package, not a source checkout (issue 25): the wheel carries what
the demo needs (the example knowledge files, the stylesheet)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_wheel_installed_in_a_fresh_venv_runs_the_demo(tmp_path: Path) -> None:
    # Built from a copy: a build/ left in the checkout would lend the wheel files it lacks.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", "-w", str(wheels), str(source)],
                   check=True, capture_output=True)
    [wheel] = wheels.glob("agent_tui-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", str(wheel)], check=True, capture_output=True)
    # The dependencies come from this test run's environment (no downloads); agent_tui itself
    # only from the wheel: the source checkout is on no path of the new venv.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True, text=True)
    ours = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]}
            if Path(p).is_dir() and Path(p) != REPO]
    (Path(purelib.stdout.strip()) / "zz-test-deps.pth").write_text("\n".join(ours) + "\n")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "AGENT_TUI_CONFIG")}
    environment["HOME"] = str(tmp_path / "home")
    where = subprocess.run([str(python), "-c", "import agent_tui; print(agent_tui.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path,
                           env=environment)
    assert where.stdout.startswith(str(venv)), where.stdout

    demo = subprocess.run([str(venv / "bin" / "agent-tui"), "demo", "--headless", "--rounds", "1",
                           "--dir", str(tmp_path / "demo")],
                          capture_output=True, text=True, cwd=tmp_path, env=environment,
                          timeout=180, stdin=subprocess.DEVNULL)
    assert demo.returncode == 0, demo.stderr
    assert "knowledge example not found" not in demo.stderr
    assert "sandbox ready" in demo.stdout
    # The example config ships too: `init` writes it on a machine with no checkout.
    config = tmp_path / "home" / "agent-tui.toml"
    init = subprocess.run([str(venv / "bin" / "agent-tui"), "--config", str(config), "init"],
                          capture_output=True, text=True, cwd=tmp_path, env=environment)
    assert init.returncode == 0, init.stderr
    assert config.read_bytes() == (REPO / "config.example.toml").read_bytes()
