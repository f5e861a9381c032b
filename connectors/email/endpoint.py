"""One mail server an account talks to (IMAP or SMTP): where, how secured, and as whom.

TLS is verified by default; plaintext is allowed only to loopback hosts (DESIGN.md invariant 6).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from agent_tui.loopback import is_loopback_host
from connectors.base import ConnectorError

TLS_MODES = ("implicit", "starttls", "none")


@dataclass(frozen=True, slots=True)
class Endpoint:
    account: str                     # the account's name, used in every error message
    protocol: str                    # "IMAP" | "SMTP"
    host: str
    port: int
    tls: str                         # implicit | starttls | none
    username: str
    password: str = field(repr=False)
    timeout: float = 30.0            # seconds for connecting and for each reply

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self, problem: str) -> str:
        """One line naming the account and the server: `account 'x': IMAP host:port: problem`."""
        return f"account {self.account!r}: {self.protocol} {self.where}: {problem}"

    def tls_context(self) -> ssl.SSLContext | None:
        """The verifying TLS context, or None for plaintext (refused unless loopback)."""
        if self.tls not in TLS_MODES:
            raise ConnectorError(self.describe(
                f"unknown TLS mode {self.tls!r} (expected one of {', '.join(TLS_MODES)})"))
        if self.tls == "none":
            if not is_loopback_host(self.host):
                raise ConnectorError(self.describe(
                    "plaintext is allowed only to loopback hosts; use implicit or starttls"))
            return None
        return ssl.create_default_context()
