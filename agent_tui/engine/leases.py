"""Who holds a lease, and whether that holder is a process of this host that is gone.

A holder is `host:pid:start` (start: the process's start time in clock ticks since boot, from
/proc). A pid alone is not enough: after a crash and a reboot, or after many processes, the pid of
a dead holder may belong to another live process. A holder on another host is never judged here;
its lease waits for expiry.
"""

from __future__ import annotations

import os
import socket


def holder_id() -> str:
    """This process as a lease holder."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or ''}"


def describe(holder: str) -> str:
    """`pid 4711 on shop-host` for a holder id, for messages a person reads."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return f"pid {pid} on {host}" if pid else holder


def dead_here(holder: str) -> bool:
    """True when `holder` names a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    if host != socket.gethostname():
        return False
    pid_text, _, started = rest.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0 or not _signalable(pid):
        return True
    fields = _stat_fields(pid)
    if fields is None:
        return False                                     # no /proc: the signal test says alive
    if fields[0] == "Z":
        return True                                      # a zombie holds nothing
    now = fields[19] if len(fields) > 19 else ""
    return bool(started and now and now != started)      # the pid belongs to another process


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                             # another user's live process
    return True


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and ')'):
    [0] the state, [19] the start time; None without /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields or None
