"""`agent-tui contact proposals | merge | reject`: proposed merges through the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_tui.cli import main
from agent_tui.engine.contacts import propose_merges
from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import open_store
from connectors.email.mime import parse_message

MAIL = (b"From: Kim Kunde <kim@example.org>\r\nTo: service@shop.example\r\nSubject: Paket\r\n"
        b"Message-ID: <sig@example.org>\r\nDate: Fri, 20 Nov 2026 09:00:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nWo ist mein Paket?\r\n\r\n"
        b"Gruss\r\nKim Kunde\r\nTel. +49 170 1234567\r\n")


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "agent-tui.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "agent.db"}"\n')
    path.chmod(0o600)
    return path


def seed(tmp_path: Path) -> tuple[int, int, int]:
    store = open_store(tmp_path / "agent.db")
    sms = [InboundMessage(channel=Channel.SMS, provider_id=f"SM{n}", direction=Direction.INBOUND,
                          sender=number, sender_name="", recipients=["+493012345678"],
                          sent_at=datetime(2026, 11, 20, 8, n, tzinfo=UTC), subject="",
                          text="Hallo \x1b[31m")
           for n, number in enumerate(["+491701234567", "+491709999999"])]
    store.ingest("shop-sms", sms, cursor_key="main", cursor=None)
    ids = store.ingest("shop-mail", [parse_message(MAIL)], cursor_key="main",
                       cursor=None).new_message_ids
    assert propose_merges(store, ids) == 1
    found = [store.find_contact(a) for a in ("kim@example.org", "+491701234567",
                                             "+491709999999")]
    store.close()
    kim, phone, other = (int(f or 0) for f in found)
    return kim, phone, other


def test_proposals_are_listed_then_accepted_by_merge(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    kim, phone, _ = seed(tmp_path)
    assert main(["--config", config, "contact", "proposals", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["format"] == 1
    [proposal] = listed["proposals"]
    assert proposal["reason"] == "phone +491701234567 in a mail signature"
    assert proposal["state"] == "open" and proposal["conversation_id"] is not None
    people = {c["id"]: c for c in proposal["contacts"]}
    assert set(people) == {kim, phone}
    assert people[kim]["name"] == "Kim Kunde"
    assert people[kim]["identities"] == [{"kind": "email", "address": "kim@example.org"}]
    assert people[phone]["identities"] == [{"kind": "phone", "address": "+491701234567"}]

    assert main(["--config", config, "contact", "proposals"]) == 0
    text = capsys.readouterr().out
    assert "phone +491701234567 in a mail signature" in text and "kim@example.org" in text
    assert "\x1b" not in text
    low, high = sorted((kim, phone))
    assert f"agent-tui contact merge {low} {high}" in text
    assert f"agent-tui contact reject {low} {high}" in text

    assert main(["--config", config, "contact", "merge", str(kim), str(phone)]) == 0
    assert f"proposal #{proposal['id']} accepted" in capsys.readouterr().out
    assert main(["--config", config, "contact", "proposals", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proposals"] == []
    assert main(["--config", config, "contact", "proposals"]) == 0
    assert "no proposed merges" in capsys.readouterr().out
    store = open_store(tmp_path / "agent.db")
    [accepted] = store.merge_proposals(state="accepted")
    assert accepted.id == proposal["id"] and accepted.merged_id == phone
    store.close()


def test_reject_is_remembered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    kim, phone, other = seed(tmp_path)
    assert main(["--config", config, "contact", "reject", str(phone), str(kim)]) == 0
    assert "not proposed again" in capsys.readouterr().out
    assert main(["--config", config, "contact", "proposals", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proposals"] == []
    store = open_store(tmp_path / "agent.db")
    assert store.propose_merge(kim, phone, "phone +491701234567 in a mail signature") is None
    store.close()
    # A pair never proposed can be rejected ahead of time, too.
    assert main(["--config", config, "contact", "reject", str(kim), str(other)]) == 0
    capsys.readouterr()


def test_reject_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    kim, _, _ = seed(tmp_path)
    assert main(["--config", config, "contact", "reject", str(kim), str(kim)]) == 2
    assert main(["--config", config, "contact", "reject", str(kim), "9999"]) == 2
    assert "no contact 9999" in capsys.readouterr().err
