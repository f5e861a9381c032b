"""Loopback: the one answer to "is this host this machine?", and a free port on it.

Plaintext (IMAP/SMTP without TLS, plain http, `serve` without a proxy) is allowed only to loopback
hosts (DESIGN.md invariant 6); the config, the mail connector and `serve` all ask here.
"""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK = "127.0.0.1"

# Names that resolve to loopback by convention: RFC 6761 reserves `localhost` and `*.localhost`;
# `localhost.localdomain` is the alias many /etc/hosts files carry.
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name, an IPv4 or an IPv6 address, bracketed or not) is this machine."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port
