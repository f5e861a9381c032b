"""The mail parser's worker processes die with the process that started them (issue 19)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

# A parent with two busy parse workers that prints their pids, then waits to be killed.
PARENT = """
import time
from connectors.email import parse_pool

pool = parse_pool(2)
futures = [pool.submit(time.sleep, 3600) for _ in range(2)]
print(" ".join(str(pid) for pid in pool._processes), flush=True)
time.sleep(3600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (it holds no stdout); it waits for its reaper, init.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert parent.stdout is not None
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)

    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)            # polling a condition with a deadline, not a fixed wait
    assert not any(_alive(pid) for pid in workers), "a parse worker outlived its parent"
    # Nothing holds the parent's stdout any more: the pipe reports its end.
    assert parent.stdout.read() == ""
