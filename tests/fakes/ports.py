"""Whether a test's server still listens: the check that a shut-down left no port open."""

from __future__ import annotations

import socket

from agent_tui.loopback import LOOPBACK


def port_is_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
