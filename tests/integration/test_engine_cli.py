"""The engine end to end through `agent-tui` (issues 3 and 4): sync, read commands, reply, crashes.

Every test runs the real CLI entry point against Dovecot and the aiosmtpd sink with a config file
it wrote; secrets are `env:` references set through monkeypatch.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from agent_tui.engine.outbox import outbound_from_row
from agent_tui.model import OutboxState
from agent_tui.store import OutboxRow, open_store
from connectors.email import EmailConnector
from tests.fakes.dovecot import free_port
from tests.integration.cli_harness import MAIL_PASSWORD_ENV, Shop, run_cli
from tests.integration.conftest import settings_for

pytestmark = pytest.mark.integration


def only_conversation(shop: Shop) -> dict[str, object]:
    listed = shop.cli("list", "--json").json()
    [conversation] = listed["conversations"]
    assert isinstance(conversation, dict)
    return conversation


def test_sync_stores_mail_and_read_commands_have_the_contract_shapes(shop: Shop) -> None:
    first = shop.mail_from_customer(1, "Hallo, wo bleibt meine Bestellung 4711?",
                                    subject="Bestellung 4711")
    shop.mail_from_customer(2, "Und noch eine Frage zur Rechnung.", sender="jonas@example.org",
                            name="Jonas Beispiel", subject="Rechnung")

    synced = shop.cli("sync", "--json")
    assert synced.code == 0, synced.err
    [account] = synced.json()["accounts"]
    assert account["account"] == "shop-mail" and account["ok"] is True
    assert account["new"] == 2 and account["error"] is None
    again = shop.cli("sync")
    assert again.code == 0 and "shop-mail: 0 new" in again.out

    listed = shop.cli("list", "--json").json()
    assert listed["format"] == 1
    by_subject = {c["subject"]: c for c in listed["conversations"]}
    assert set(by_subject) == {"Bestellung 4711", "Rechnung"}
    order = by_subject["Bestellung 4711"]
    assert order["channel"] == "email" and order["account"] == "shop-mail"
    assert order["status"] == "open"
    assert order["contact"]["name"] == "Erika Muster"
    assert order["contact"]["address"] == "erika@example.org"

    shown = shop.cli("show", str(order["id"]), "--json").json()
    assert shown["format"] == 1 and shown["conversation"]["id"] == order["id"]
    [message] = shown["messages"]
    assert message["message_id"] == first
    assert message["direction"] == "in" and message["sender"] == "erika@example.org"
    assert "wo bleibt meine Bestellung 4711" in message["text"]

    found = shop.cli("search", "Rechnung", "--json").json()
    assert found["format"] == 1
    assert {h["conversation_id"] for h in found["hits"]} == {by_subject["Rechnung"]["id"]}

    exported = shop.cli("export").lines()
    assert len(exported) == 2
    assert all(line["format"] == 1 for line in exported)
    assert {line["message"]["message_id"] for line in exported} == {
        first, f"m2.{shop.mail_user.partition('@')[0]}@example.org"}
    assert {line["contact"]["name"] for line in exported} == {"Erika Muster", "Jonas Beispiel"}
    erika = order["contact"]["id"]
    assert [line["conversation"]["id"] for line in shop.cli(
        "export", "--contact", str(erika)).lines()] == [order["id"]]


def test_reply_goes_out_threaded_lands_in_sent_and_a_resync_does_not_duplicate_it(
        shop: Shop) -> None:
    asked = shop.mail_from_customer(1, "Haben Sie die Tasse auch in Blau?", subject="Tasse")
    assert shop.cli("sync").code == 0
    conversation = only_conversation(shop)

    replied = shop.cli("reply", str(conversation["id"]), "--text", "Ja, ab Montag wieder da.",
                       "--json")

    assert replied.code == 0, replied.err
    result = replied.json()
    assert result["format"] == 1 and result["state"] == "sent"
    [mail] = shop.sink.received
    assert mail.recipients == ["erika@example.org"]
    assert mail.message["In-Reply-To"] == f"<{asked}>"
    assert f"<{asked}>" in mail.message["References"]
    assert mail.message["Subject"] == "Re: Tasse"
    assert "Ja, ab Montag wieder da." in mail.message.get_content()
    with shop.dovecot.client(shop.mail_user) as imap:
        imap.select_folder("Sent", readonly=True)
        assert len(imap.search(["HEADER", "Message-ID", result["provider_id"]])) == 1

    for _ in range(2):
        assert shop.cli("sync").code == 0
    shown = shop.cli("show", str(conversation["id"]), "--json").json()
    directions = [m["direction"] for m in shown["messages"]]
    assert directions == ["in", "out"]
    assert shown["messages"][1]["message_id"] == result["provider_id"]
    assert len(shop.cli("list", "--json").json()["conversations"]) == 1
    assert len(shop.sink.received) == 1


def dead_pid() -> int:
    """The pid of a process that has exited (as a crashed agent-tui's would be)."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return int(finished.stdout)


def claim_as_crashed_process(shop: Shop, outbox_id: int) -> None:
    """Move the row to `sending` on behalf of a process that has died since."""
    store = open_store(shop.store_path)
    try:
        row = store.outbox_claim_next(datetime.now(UTC),
                                      holder=f"{os.uname().nodename}:{dead_pid()}")
        assert row is not None and row.id == outbox_id
    finally:
        store.close()


def queue_reply_without_sending(shop: Shop, text: str) -> tuple[int, int]:
    shop.mail_from_customer(1, "Kann ich die Bestellung noch ändern?", subject="Änderung")
    assert shop.cli("sync").code == 0
    conversation_id = int(str(only_conversation(shop)["id"]))
    queued = shop.cli("reply", str(conversation_id), "--text", text, "--no-send", "--json")
    assert queued.code == 0 and queued.json()["state"] == "queued"
    assert shop.sink.received == []
    return conversation_id, int(queued.json()["outbox_id"])


def send_as_crashed_process(shop: Shop, row: OutboxRow) -> None:
    """What the crashed process got done: SMTP took the reply and it was filed in Sent."""
    async def send() -> None:
        connector = EmailConnector(settings_for(shop.dovecot, shop.mail_user, shop.sink))
        try:
            await connector.send(outbound_from_row(row, shop.mail_user))
        finally:
            await connector.close()

    asyncio.run(send())


def test_crash_after_the_mail_went_out_is_reconciled_not_sent_again(shop: Shop) -> None:
    conversation_id, outbox_id = queue_reply_without_sending(shop, "Ja, bis 14 Uhr noch.")
    claim_as_crashed_process(shop, outbox_id)
    store = open_store(shop.store_path)
    [row] = store.outbox_rows(state="sending")
    store.close()
    send_as_crashed_process(shop, row)
    assert len(shop.sink.received) == 1

    rerun = shop.cli("run", "--once", "--json")

    assert rerun.code == 0, rerun.err
    [outcome] = rerun.json()["outbox"]
    assert outcome["outbox_id"] == outbox_id and outcome["state"] == "reconciled"
    assert len(shop.sink.received) == 1
    store = open_store(shop.store_path)
    try:
        [done] = store.outbox_rows(conversation_id=conversation_id)
        assert done.state is OutboxState.SENT
    finally:
        store.close()
    shown = shop.cli("show", str(conversation_id), "--json").json()
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert shop.cli("run", "--once", "--json").json()["outbox"] == []
    assert len(shop.sink.received) == 1


def test_crash_before_the_mail_went_out_sends_it_exactly_once(shop: Shop) -> None:
    _, outbox_id = queue_reply_without_sending(shop, "Ja, bis 14 Uhr noch.")
    claim_as_crashed_process(shop, outbox_id)

    rerun = shop.cli("run", "--once", "--json")

    assert rerun.code == 0, rerun.err
    states = [o["state"] for o in rerun.json()["outbox"] if o["outbox_id"] == outbox_id]
    assert states == ["retry", "sent"]       # not found in Sent, so sent now, once
    assert len(shop.sink.received) == 1
    assert shop.cli("run", "--once", "--json").json()["outbox"] == []
    assert len(shop.sink.received) == 1


def test_wrong_imap_password_fails_sync_with_one_line_naming_the_account(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "wrong-Pa55word-xyz"
    monkeypatch.setenv(MAIL_PASSWORD_ENV, wrong)
    shop.mail_from_customer(1, "Hallo?")

    plain = shop.cli("sync")
    as_json = shop.cli("sync", "--json")

    assert plain.code == 1 and as_json.code == 1
    [line] = plain.out.splitlines()
    assert line.startswith("shop-mail: FAILED:") and "shop-mail" in line
    [account] = as_json.json()["accounts"]
    assert account["ok"] is False and account["error_kind"] == "auth"
    for result in (plain, as_json):
        assert wrong not in result.out + result.err
        assert shop.mail_password not in result.out + result.err
    assert "Traceback" not in plain.err


def test_config_error_exits_2_with_file_and_line_and_no_secret(shop: Shop) -> None:
    text = shop.config_path.read_text()
    shop.config_path.write_text(text.replace('imap_tls = "none"', 'imap_tls = "sometimes"'))

    result = shop.cli("sync")

    assert result.code == 2
    [line] = result.err.splitlines()
    assert str(shop.config_path) in line and "imap_tls" in line
    assert result.out == ""
    assert shop.mail_password not in result.out + result.err


def test_missing_secret_is_a_runtime_error_naming_the_account(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAIL_PASSWORD_ENV)

    result = shop.cli("sync")

    assert result.code == 1
    assert "shop-mail" in result.out and MAIL_PASSWORD_ENV in result.out


def test_usage_error_exits_2() -> None:
    result = run_cli("reply", "1")
    assert result.code == 2 and "--text" in result.err


class StallingSmtp:
    """An SMTP server that takes the first message and never answers its DATA (until closed):
    the sending process is killed while it waits, after the server got the mail."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.first_arrived = threading.Event()
        self._release = threading.Event()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.received.append(bytes(envelope.original_content or b""))
        if len(self.received) == 1:
            self.first_arrived.set()
            await asyncio.to_thread(self._release.wait, 60.0)
        return "250 OK queued"

    def __enter__(self) -> StallingSmtp:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._controller.stop()


def test_a_reply_process_killed_while_smtp_holds_the_mail_is_not_sent_twice(shop: Shop) -> None:
    shop.mail_from_customer(1, "Kann ich die Bestellung noch ändern?", subject="Änderung")
    assert shop.cli("sync").code == 0
    conversation_id = str(only_conversation(shop)["id"])
    with StallingSmtp() as smtp:
        config = shop.config_path.read_text()
        shop.config_path.write_text(config.replace(f"smtp_port = {shop.sink.port}",
                                                   f"smtp_port = {smtp.port}"))
        sending = subprocess.Popen(
            [str(Path(sys.executable).with_name("agent-tui")), "--config",
             str(shop.config_path), "reply", conversation_id, "--text", "Ja, bis 14 Uhr."],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert smtp.first_arrived.wait(30.0), "the reply never reached the SMTP server"
        finally:
            sending.kill()
            sending.wait(10)

        rerun = shop.cli("run", "--once", "--json")

        assert rerun.code == 0, rerun.err
        assert len(smtp.received) == 1, "the customer got the reply twice"
        # The copy filed in Sent before SMTP tells the rerun: maybe delivered, a person decides.
        [outcome] = json.loads(rerun.out)["outbox"]
        assert outcome["state"] == "uncertain" and "may have been delivered" in outcome["detail"]

        # The person checks with the customer and confirms: the reply joins the conversation.
        [waiting] = shop.cli("outbox", "list", "--state", "uncertain", "--json").json()["outbox"]
        assert waiting["text"] == "Ja, bis 14 Uhr."
        confirmed = shop.cli("outbox", "confirm", str(waiting["id"]), "--json")
        assert confirmed.code == 0 and confirmed.json()["state"] == "sent"
        shown = shop.cli("show", conversation_id, "--json").json()
        assert [m["text"] for m in shown["messages"] if m["direction"] == "out"] == \
            ["Ja, bis 14 Uhr."]
        assert len(smtp.received) == 1


def test_a_person_resends_a_failed_reply_or_cancels_it(shop: Shop) -> None:
    shop.mail_from_customer(1, "Haben Sie die Jacke in M?", subject="Jacke")
    assert shop.cli("sync").code == 0
    conversation_id = str(only_conversation(shop)["id"])
    shop.sink.fail_next(2, 554, "5.7.1 rejected")
    first = shop.cli("reply", conversation_id, "--text", "Ja, in M und L.", "--json")
    second = shop.cli("reply", conversation_id, "--text", "Ja, auch in Blau.", "--json")
    assert first.code == second.code == 1
    assert shop.sink.received == []

    failed = shop.cli("outbox", "list", "--state", "failed", "--json").json()["outbox"]
    assert [row["text"] for row in failed] == ["Ja, in M und L.", "Ja, auch in Blau."]
    assert all("rejected" in row["last_error"] for row in failed)

    resent = shop.cli("outbox", "resend", str(failed[0]["id"]), "--json")
    cancelled = shop.cli("outbox", "cancel", str(failed[1]["id"]))
    again = shop.cli("outbox", "confirm", str(failed[1]["id"]))

    assert resent.code == 0 and resent.json()["state"] == "sent"
    assert cancelled.code == 0 and "cancelled" in cancelled.out
    assert again.code == 2 and "only an uncertain reply" in again.err
    [mail] = shop.sink.received
    assert "Ja, in M und L." in mail.message.get_content()
    assert shop.cli("outbox", "resend", "999").code == 2


def _message_ids_on_server(shop: Shop, folder: str) -> set[str]:
    client = shop.dovecot.client(shop.mail_user)
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
    finally:
        client.logout()
    return {bytes(next(iter(v for k, v in data.items() if k != b"SEQ"))).decode()
            .partition(":")[2].strip().strip("<>") for data in fetched.values()}


def test_erase_also_remote_deletes_their_mail_on_the_server_first(shop: Shop) -> None:
    theirs = [shop.mail_from_customer(1, "Meine Adresse ist Musterweg 1.", subject="Adresse"),
              shop.mail_from_customer(2, "Und meine Telefonnummer ...", subject="Adresse")]
    other = shop.mail_from_customer(3, "Frage zur Rechnung", sender="jonas@example.org",
                                    name="Jonas", subject="Rechnung")
    assert shop.cli("sync").code == 0
    erika = next(c for c in shop.cli("list", "--json").json()["conversations"]
                 if c["subject"] == "Adresse")
    reply = shop.cli("reply", str(erika["id"]), "--text", "Danke, notiert.", "--json")
    ours = reply.json()["provider_id"]
    contact = str(erika["contact"]["id"])

    dry = shop.cli("contact", "erase", contact, "--also-remote", "--dry-run")
    assert dry.code == 0 and "would delete 3 mails on the server of shop-mail" in dry.out
    assert _message_ids_on_server(shop, "INBOX") == {*theirs, other}

    erased = shop.cli("contact", "erase", contact, "--also-remote", "--yes")

    assert erased.code == 0, erased.err
    assert "deleted 3 mails on the server of shop-mail" in erased.out
    assert _message_ids_on_server(shop, "INBOX") == {other}
    assert ours not in _message_ids_on_server(shop, "Sent")
    assert shop.cli("contact", "show", contact).code == 2      # gone from the store too


def test_erase_also_remote_with_the_server_down_erases_nothing(shop: Shop) -> None:
    shop.mail_from_customer(1, "Bitte alles löschen.", subject="Löschen")
    assert shop.cli("sync").code == 0
    contact = str(only_conversation(shop)["contact"]["id"])      # type: ignore[index]
    shop.config_path.write_text(shop.config_path.read_text().replace(
        f"imap_port = {shop.dovecot.port}", f"imap_port = {free_port()}"))

    failed = shop.cli("contact", "erase", contact, "--also-remote", "--yes")

    assert failed.code == 1 and "nothing was erased" in failed.err
    assert shop.cli("contact", "show", contact).code == 0
