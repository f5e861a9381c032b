"""One loopback check for the config, the mail connector and `serve`: the same hosts pass."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agent_tui.config import EmailAccount, load_config
from agent_tui.errors import ConfigError
from agent_tui.loopback import free_port, is_loopback_host
from connectors.base import ConnectorError
from connectors.email.endpoint import Endpoint

LOOPBACK_HOSTS = ["localhost", "LOCALHOST", "localhost.localdomain", "shop.localhost",
                  "127.0.0.1", "127.8.9.10", "::1", "[::1]"]
OTHER_HOSTS = ["imap.shop.example", "localhost.shop.example", "10.0.0.1", "0.0.0.0", "::",
               "[2001:db8::1]", ""]


def plaintext_mail_config(tmp_path: Path, host: str) -> Path:
    path = tmp_path / "agent-tui.toml"
    path.write_text(f'[[account]]\nname = "shop"\ntype = "email"\naddress = "a@shop.test"\n'
                    f'password = "env:X"\nimap_host = "{host}"\nimap_tls = "none"\n'
                    f'smtp_host = "{host}"\nsmtp_tls = "none"\n', encoding="utf-8")
    path.chmod(0o600)
    return path


def endpoint(host: str) -> Endpoint:
    return Endpoint("shop", "IMAP", host, 143, "none", "a", "secret")


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize("host", ["localhost.localdomain", "shop.localhost"])
def test_config_and_connector_agree_on_plaintext_to_loopback(tmp_path: Path, host: str) -> None:
    """Each of these names passed one of the two former checks and failed the other."""
    account = load_config(plaintext_mail_config(tmp_path, host), env={}).accounts[0]
    assert isinstance(account, EmailAccount) and account.imap_host == host
    assert endpoint(host).tls_context() is None


def test_config_and_connector_agree_on_refusing_plaintext_elsewhere(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only to loopback"):
        load_config(plaintext_mail_config(tmp_path, "imap.shop.example"), env={})
    with pytest.raises(ConnectorError, match="only to loopback"):
        endpoint("imap.shop.example").tls_context()


def test_free_port_is_free_on_loopback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))       # nothing holds it
