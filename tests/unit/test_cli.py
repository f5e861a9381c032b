"""The command line contract: exit codes, one-line errors, JSON shapes (DESIGN.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_tui.cli import main
from agent_tui.model import Channel, Direction
from agent_tui.store import open_store
from connectors.base import InboundMessage
from tests.conftest import REPO


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "agent-tui.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "agent.db"}"\n{extra}')
    path.chmod(0o600)
    return path


def test_config_error_exits_2_with_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, '[agent]\nnmae = "Mia"\n')
    assert main(["--config", str(path), "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "agent-tui.toml:4" in err and "nmae" in err and "Traceback" not in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["list", "--status", "bogus"])
    assert exc.value.code == 2


def test_missing_conversation_exits_2(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "show", "42"]) == 2
    assert "no conversation 42" in capsys.readouterr().err


def test_list_and_show_json_contract(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    store = open_store(tmp_path / "agent.db")
    store.ingest("shop-sms", [InboundMessage(
        channel=Channel.SMS, provider_id="SM1", direction=Direction.INBOUND,
        sender="+491701234567", sender_name="", recipients=["+493012345678"],
        sent_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC), subject="",
        text="[bold]Hi[/bold] \x1b[31mrot")], cursor_key="main", cursor=None)
    store.close()
    assert main(["--config", str(path), "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["format"] == 1
    conv = listed["conversations"][0]
    assert conv["channel"] == "sms" and conv["contact"]["address"] == "+491701234567"
    assert main(["--config", str(path), "show", str(conv["id"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["format"] == 1 and shown["conversation"]["id"] == conv["id"]
    assert shown["messages"][0]["message_id"] == "SM1"
    assert main(["--config", str(path), "show", str(conv["id"])]) == 0
    text = capsys.readouterr().out
    assert "[bold]Hi[/bold]" in text and "\x1b" not in text
    assert main(["--config", str(path), "export"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["message"]["message_id"] == "SM1" and line["contact"]["identities"]


def test_secret_never_in_error_output(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "s3cr3t-t0ken-value")
    path = write_config(tmp_path, (
        '[[account]]\nname = "mail"\ntype = "email"\naddress = "s@shop.example"\n'
        'username = "s"\npassword = "env:SHOP_TOKEN"\nimap_host = "127.0.0.1"\n'
        'imap_port = 9\nimap_tls = "none"\nsmtp_host = "127.0.0.1"\nsmtp_port = 9\n'
        'smtp_tls = "none"\n'))
    code = main(["--config", str(path), "sync", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "s3cr3t-t0ken-value" not in captured.out + captured.err
    summary = json.loads(captured.out)
    assert summary["format"] == 1 and summary["accounts"][0]["ok"] is False


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from agent_tui import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"agent-tui {__version__}"


@pytest.mark.parametrize("command", [["sync"], ["run", "--once"], ["sync", "--watch"]])
def test_fetching_without_accounts_says_so_and_exits_2(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), *command]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-tui: error: no accounts configured in ") and str(path) in err
    assert len(err.splitlines()) == 1


def test_init_writes_the_example_config_private_and_never_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent_tui.config import load_config

    target = tmp_path / "new" / "agent-tui.toml"
    assert main(["--config", str(target), "init"]) == 0
    assert str(target) in capsys.readouterr().out
    assert (target.stat().st_mode & 0o777) == 0o600
    assert (target.parent.stat().st_mode & 0o777) == 0o700
    assert target.read_bytes() == (REPO / "config.example.toml").read_bytes()
    assert load_config(target).accounts                   # the example loads as it is

    target.write_text("# mine\n")
    assert main(["--config", str(target), "init"]) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert target.read_text() == "# mine\n"
