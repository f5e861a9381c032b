"""`agent-tui run --once` (issue 8) end to end against Dovecot, the aiosmtpd sink and the Twilio
and Telegram look-alikes, through the real CLI with a config and knowledge file the test writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from agent_tui.automation.run_once import lock_path
from agent_tui.config import load_config
from agent_tui.engine.outbox import outbound_from_row
from agent_tui.engine.runtime import build_connectors
from agent_tui.engine.sync import fetch_lease_name
from agent_tui.store import OutboxRow, open_store
from tests.conftest import missing
from tests.fakes.dovecot import Dovecot
from tests.fakes.smtp_sink import SmtpSink
from tests.integration.cli_harness import (
    AUTOMATION_ON,
    CUSTOMER_NUMBER,
    MAIL_PASSWORD_ENV,
    ROUTINE_QUESTION,
    TELEGRAM_TOKEN_ENV,
    TELEGRAM_USER,
    TRACKING_QUESTION,
    TWILIO_TOKEN_ENV,
    WHATSAPP_CUSTOMER,
    BackgroundLoop,
    CliResult,
    Shop,
    chat_fakes,
    customer_mail,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def background_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture
def shop(tmp_path: Path, dovecot: Dovecot, mail_user: tuple[str, str], smtp_sink: SmtpSink,
         monkeypatch: pytest.MonkeyPatch, background_loop: BackgroundLoop) -> Iterator[Shop]:
    """A shop with mail, SMS and Telegram accounts, automatic replies on."""
    user, password = mail_user
    monkeypatch.setenv(MAIL_PASSWORD_ENV, password)
    with chat_fakes(background_loop, monkeypatch) as (twilio, telegram):
        installed = Shop(tmp_path / "shop", user, password, dovecot, smtp_sink, twilio,
                         telegram, background_loop)
        installed.write_config()
        yield installed


def run_once(shop: Shop, *extra: str) -> CliResult:
    result = shop.cli("run", "--once", "--json", *extra)
    assert result.code in (0, 1), result.err
    return result


def decisions(result: CliResult) -> list[dict[str, object]]:
    messages = result.json()["messages"]
    assert isinstance(messages, list)
    return messages


def test_a_routine_question_on_each_channel_is_answered_exactly_once_across_three_runs(
        shop: Shop) -> None:
    assert shop.twilio is not None and shop.telegram is not None
    asked = shop.mail_from_customer(1, ROUTINE_QUESTION, subject="Öffnungszeiten?")
    shop.sms_from_customer(ROUTINE_QUESTION)
    shop.whatsapp_from_customer(ROUTINE_QUESTION)
    shop.telegram_from_customer(ROUTINE_QUESTION)

    first = run_once(shop)

    assert first.code == 0
    summary = first.json()
    assert summary["format"] == 1 and summary["dry_run"] is False
    accounts = {a["account"]: a for a in summary["accounts"]}
    assert set(accounts) == {"shop-mail", "shop-sms", "shop-telegram"}
    for name, account in accounts.items():
        fetched = 2 if name == "shop-sms" else 1          # SMS and WhatsApp
        assert account["ok"] is True and account["error"] is None, name
        assert account["fetched"] == fetched and account["sent"] == fetched, name
        assert account["send_failed"] == 0
    assert sorted((m["account"], m["decision"], m["entry"]) for m in summary["messages"]) == [
        ("shop-mail", "replied", "opening-hours"), ("shop-sms", "replied", "opening-hours"),
        ("shop-sms", "replied", "opening-hours"), ("shop-telegram", "replied", "opening-hours")]
    assert all(m["why"] == "entry opening-hours" and m["score"] >= 0.75
               for m in summary["messages"])
    assert [o["state"] for o in summary["outbox"]] == ["sent"] * 4

    # The customer on mail writes again at once: inside the window, a person answers.
    shop.mail_from_customer(2, "Und samstags? Wann haben Sie da geöffnet?",
                            subject="Öffnungszeiten?")
    second, third = run_once(shop), run_once(shop)

    [again] = decisions(second)
    assert again["decision"] == "left"
    assert "already answered automatically within 24 h" in str(again["why"])
    assert decisions(third) == []
    assert third.json()["outbox"] == []

    [mail] = shop.sent_to("erika@example.org")
    assert len(shop.sink.received) == 1
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail["In-Reply-To"] == f"<{asked}>"
    assert "Montag bis Freitag von 9 bis 18 Uhr" in mail.get_content()
    assert "Mia" in mail.get_content()
    sms, whatsapp = sorted(shop.twilio.created, key=lambda m: m.to.startswith("whatsapp:"))
    assert sms.to == CUSTOMER_NUMBER and "Mo-Fr 9-18 Uhr" in sms.body
    assert whatsapp.to == f"whatsapp:{WHATSAPP_CUSTOMER}" and "Mo-Fr 9-18 Uhr" in whatsapp.body
    [telegram] = shop.telegram.sent
    assert telegram.chat_id == TELEGRAM_USER and "Mo-Fr 9-18 Uhr" in telegram.text


ROBOT_MAIL = {
    "auto-replied": ("urlaub@example.org", {"Auto-Submitted": "auto-replied"}),
    "bulk": ("news@example.org", {"Precedence": "bulk"}),
    "list": ("liste@example.org", {"List-Id": "<kunden.example.org>",
                                   "List-Unsubscribe": "<mailto:leave@example.org>"}),
    "bounce": ("MAILER-DAEMON@example.org", {"Return-Path": "<>"}),
    "x-autoreply": ("auto@example.org", {"X-Autoreply": "yes"}),
}


def test_robot_mail_gets_no_answer_and_the_summary_says_why(shop: Shop) -> None:
    for number, (sender, headers) in enumerate(ROBOT_MAIL.values(), start=1):
        shop.mail_from_customer(number, ROUTINE_QUESTION, sender=sender, headers=headers,
                                name="", subject=f"Öffnungszeiten {number}")
    # A delivery report about a mail of ours: multipart/report from a null sender.
    shop.deliver(delivery_report(shop.mail_user))
    # And a mail from our own address (a copy of something we sent).
    shop.mail_from_customer(9, ROUTINE_QUESTION, sender=shop.mail_user, name="Shop")

    result = run_once(shop)

    assert result.code == 0
    reports = decisions(result)
    assert len(reports) == len(ROBOT_MAIL) + 2
    assert {r["decision"] for r in reports} == {"left"}
    whys = " | ".join(str(r["why"]) for r in reports)
    for reason in ("sent automatically", "bulk mail", "mailing-list mail", "empty Return-Path",
                   "our own addresses"):
        assert reason in whys
    assert shop.sink.received == []
    assert result.json()["outbox"] == []


def delivery_report(to: str) -> bytes:
    return (
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        "Message-ID: <bounce-1@mx.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        f"{ROUTINE_QUESTION}\r\n"
        "--b1\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n"
        "\r\n"
        "Final-Recipient: rfc822; gone@example.org\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "--b1--\r\n"
    ).encode()


def test_an_unfilled_placeholder_leaves_the_message_for_a_person(shop: Shop) -> None:
    shop.mail_from_customer(1, TRACKING_QUESTION, subject="Bestellung")
    shop.sms_from_customer(TRACKING_QUESTION)

    result = run_once(shop)

    reports = decisions(result)
    assert {(r["account"], r["decision"], r["entry"]) for r in reports} == {
        ("shop-mail", "left", "tracking"), ("shop-sms", "left", "tracking")}
    for report in reports:
        assert "placeholders unfilled" in str(report["why"])
        assert "order.tracking_url" in str(report["why"])
    assert shop.sink.received == [] and shop.twilio is not None and shop.twilio.created == []
    listed = shop.cli("list", "--status", "open", "--json").json()["conversations"]
    assert len(listed) == 2


def test_dry_run_decides_and_prints_but_changes_nothing(shop: Shop) -> None:
    assert shop.twilio is not None
    shop.mail_from_customer(1, ROUTINE_QUESTION, subject="Öffnungszeiten?")
    assert shop.cli("sync").code == 0
    # News waiting at the providers: a dry run must not fetch it (that would move cursors).
    shop.mail_from_customer(2, ROUTINE_QUESTION, sender="jonas@example.org", name="Jonas")
    shop.sms_from_customer(ROUTINE_QUESTION)
    before = store_files(shop)

    dry = run_once(shop, "--dry-run")
    text = shop.cli("run", "--once", "--dry-run")

    assert dry.code == 0 and text.code == 0
    summary = dry.json()
    assert summary["dry_run"] is True and summary["accounts"] == [] and summary["outbox"] == []
    [report] = summary["messages"]
    assert report["decision"] == "would-reply" and report["entry"] == "opening-hours"
    assert "dry run: nothing fetched, nothing sent, nothing changed" in text.out
    assert "would-reply [opening-hours" in text.out
    assert store_files(shop) == before
    assert shop.sink.received == [] and shop.twilio.created == []

    # Nothing was recorded: the real run decides the same message again and answers it.
    real = run_once(shop)
    assert sorted((m["account"], m["decision"]) for m in decisions(real)) == [
        ("shop-mail", "replied"), ("shop-mail", "replied"), ("shop-sms", "replied")]
    assert len(shop.sink.received) == 2 and len(shop.twilio.created) == 1


def store_files(shop: Shop) -> str:
    """Everything the store holds, as SQL: what "changes nothing" compares.

    Not the file bytes: SQLite may checkpoint its write-ahead log into the main file when the last
    connection closes, which moves bytes between the two files without changing any data.
    """
    import sqlite3

    db = sqlite3.connect(f"file:{shop.store_path}?mode=ro", uri=True)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


HOLD_LOCK = """\
import sys
from pathlib import Path
from agent_tui.automation.run_once import run_lock
with run_lock(Path(sys.argv[1])) as held:
    print("held" if held else "busy", flush=True)
    sys.stdin.read()
"""


def test_a_second_concurrent_run_exits_0_at_once_and_touches_nothing(shop: Shop) -> None:
    shop.mail_from_customer(1, ROUTINE_QUESTION)
    lock = lock_path(load_config(shop.config_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"

        plain = shop.cli("run", "--once")
        as_json = shop.cli("run", "--once", "--json")

        assert plain.code == 0 and as_json.code == 0
        assert "already running" in plain.out and f"(pid {holder.pid})" in plain.out
        assert "already running" in as_json.json()["skipped"]
        assert not shop.store_path.exists()          # it did not even open the store
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    # The holder is gone, and the OS released its lock with it.
    after = run_once(shop)
    assert [m["decision"] for m in decisions(after)] == ["replied"]


def test_a_failing_account_exits_1_and_the_others_still_run(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TWILIO_TOKEN_ENV, "wrong-twilio-token-123")
    shop.mail_from_customer(1, ROUTINE_QUESTION)
    shop.sms_from_customer(ROUTINE_QUESTION)

    result = run_once(shop)

    assert result.code == 1
    accounts = {a["account"]: a for a in result.json()["accounts"]}
    assert accounts["shop-sms"]["ok"] is False
    assert accounts["shop-mail"]["ok"] is True and accounts["shop-mail"]["sent"] == 1
    assert "wrong-twilio-token-123" not in result.out + result.err
    assert len(shop.sink.received) == 1


def test_rules_tag_assign_and_prioritise_new_messages(shop: Shop) -> None:
    shop.write_config(extra="""\
[[rule]]
name = "big customer"
match = { channel = "email", sender = "*@bigcustomer.example" }
actions = { assign = "Mia", tag = ["vip", "b2b"], priority = "high" }

[[rule]]
name = "refunds are closed by hand"
match = { entry = "refund", min_score = 0.5 }
actions = { tag = "refund" }
""")
    shop.mail_from_customer(1, "Ich möchte eine Rückerstattung für die Tassen.",
                            sender="einkauf@bigcustomer.example", subject="Erstattung")

    result = run_once(shop)

    [report] = decisions(result)
    assert report["decision"] == "actions"
    assert report["why"] == "rules: big customer, refunds are closed by hand"
    [conversation] = shop.cli("list", "--json").json()["conversations"]
    assert conversation["assignee"] == "Mia" and conversation["priority"] == "high"
    assert set(conversation["tags"]) >= {"vip", "b2b", "refund"}
    assert shop.sink.received == []               # refund is not `auto = true`


@pytest.fixture
def two_shops(tmp_path: Path, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[tuple[Shop, Shop]]:
    """Two installations with automatic replies on, each with its own mailbox on one Dovecot."""
    if not Dovecot.available():
        missing("dovecot not installed (Debian: apt-get install dovecot-imapd)")
    users = {"a@shop-a.test": "pw-a", "b@shop-b.test": "pw-b"}
    with Dovecot(tmp_path / "dovecot", users=users) as server:
        shops = []
        for letter, (user, password) in zip("ab", users.items(), strict=True):
            variable = f"{MAIL_PASSWORD_ENV}_{letter.upper()}"
            monkeypatch.setenv(variable, password)
            installed = Shop(tmp_path / f"shop-{letter}", user, password, server, smtp_sink)
            # A low threshold, so that each would answer the other's auto-reply on content.
            installed.write_config(mail_password_env=variable,
                                   automation=AUTOMATION_ON.replace("0.75", "0.5"))
            shops.append(installed)
        yield shops[0], shops[1]


def deliver_new_mail(shops: tuple[Shop, Shop], delivered: int, *,
                     strip_auto_headers: bool) -> int:
    """Play the mail system between the two: hand what the sink got to each recipient."""
    received = shops[0].sink.received
    for mail in received[delivered:]:
        data = mail.data
        if strip_auto_headers:
            # A careless relay that drops the loop markers: only the contact window is left.
            lines = data.split(b"\r\n")
            data = b"\r\n".join(line for line in lines if not line.lower().startswith(
                (b"auto-submitted:", b"x-auto-response-suppress:")))
        for shop in shops:
            if shop.mail_user in mail.recipients:
                shop.deliver(data)
    return len(received)


@pytest.mark.parametrize("strip_auto_headers", [False, True],
                         ids=["marked-auto-replies", "markers-stripped-by-a-relay"])
def test_two_instances_mailing_each_other_do_not_loop(
        two_shops: tuple[Shop, Shop], strip_auto_headers: bool) -> None:
    a, b = two_shops
    # Someone at shop A asks shop B a routine question from A's service address.
    b.mail_from_customer(1, ROUTINE_QUESTION, sender=a.mail_user, name="Shop A",
                         subject="Öffnungszeiten?")
    delivered = 0
    whys: dict[str, list[str]] = {a.mail_user: [], b.mail_user: []}
    for _ in range(4):
        for shop in (b, a):
            result = run_once(shop)
            assert result.code == 0
            whys[shop.mail_user] += [str(m["why"]) for m in decisions(result)]
            delivered = deliver_new_mail(two_shops, delivered,
                                         strip_auto_headers=strip_auto_headers)

    replies_from_b = [m for m in a.sink.received if m.mail_from == b.mail_user]
    replies_from_a = [m for m in a.sink.received if m.mail_from == a.mail_user]
    assert len(replies_from_b) == 1
    if strip_auto_headers:
        # A answered B's unmarked auto-reply once; B's contact window stopped the ping-pong.
        assert len(replies_from_a) == 1
        assert whys[b.mail_user] == ["entry opening-hours",
                                     "no automatic reply: already answered automatically "
                                     "within 24 h"]
    else:
        assert replies_from_a == []
        assert whys[a.mail_user] == ["no automatic reply: sent automatically "
                                     "(Auto-Submitted / X-Autoreply / X-Loop)"]



def dead_holder() -> str:
    """`host:pid` of a process that has exited, as a run killed while sending leaves behind."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return f"{os.uname().nodename}:{int(finished.stdout)}"


def crash_while_sending(shop: Shop, account: str) -> OutboxRow:
    """A run claims the account's queued reply, hands it to the provider, and dies."""
    config = load_config(shop.config_path)
    store = open_store(shop.store_path)
    try:
        row = store.outbox_claim_next(datetime.now(UTC), accounts={account},
                                      holder=dead_holder())
    finally:
        store.close()
    assert row is not None

    async def send() -> None:
        connectors = build_connectors(config, account)
        try:
            await connectors.by_account[account].send(outbound_from_row(row))
        finally:
            await connectors.close()

    asyncio.run(send())
    return row


def test_a_run_killed_after_handing_chat_replies_to_the_provider_sends_no_duplicate(
        shop: Shop) -> None:
    assert shop.twilio is not None and shop.telegram is not None
    shop.sms_from_customer("Ist die große Teekanne wieder da?")
    shop.telegram_from_customer("Ist die große Teekanne wieder da?")
    assert run_once(shop).code == 0               # stored; nothing routine to answer
    conversations = shop.cli("list", "--json").json()["conversations"]
    by_account = {c["account"]: c["id"] for c in conversations}
    for account in ("shop-sms", "shop-telegram"):
        queued = shop.cli("reply", str(by_account[account]), "--text",
                          "Ja, seit heute wieder lieferbar.", "--no-send")
        assert queued.code == 0, queued.err
    sms_row = crash_while_sending(shop, "shop-sms")
    telegram_row = crash_while_sending(shop, "shop-telegram")
    assert len(shop.twilio.created) == 1 and len(shop.telegram.sent) == 1

    rerun = run_once(shop)
    later = run_once(shop)

    states = {o["outbox_id"]: o["state"] for o in rerun.json()["outbox"]}
    # Twilio lists what was sent, so the reply is found; Telegram cannot tell, so a person decides.
    assert states == {sms_row.id: "reconciled", telegram_row.id: "uncertain"}
    assert later.json()["outbox"] == []
    assert len(shop.twilio.created) == 1 and len(shop.telegram.sent) == 1
    store = open_store(shop.store_path)
    try:
        assert store.outbox_counts() == {"sent": 1, "uncertain": 1}
    finally:
        store.close()


def test_accounts_a_tui_is_fetching_are_left_to_it_and_the_outbox_still_flushes(
        shop: Shop) -> None:
    shop.mail_from_customer(1, "Haben Sie die Tasse auch in Blau?", subject="Tasse")
    assert shop.cli("sync").code == 0
    [conversation] = shop.cli("list", "--json").json()["conversations"]
    assert shop.cli("reply", str(conversation["id"]), "--text", "Ja, ab Montag.",
                    "--no-send").code == 0
    shop.mail_from_customer(2, ROUTINE_QUESTION, sender="jonas@example.org", name="Jonas")
    store = open_store(shop.store_path)
    # The run here is in-process, so the TUI must be another live process: our parent will do.
    tui = f"{os.uname().nodename}:{os.getppid()}"
    try:
        assert store.acquire_lease(fetch_lease_name("shop-mail"), tui, 300)

        result = run_once(shop)

        assert result.code == 0
        accounts = {a["account"]: a for a in result.json()["accounts"]}
        assert accounts["shop-mail"]["error_kind"] == "busy"
        assert accounts["shop-mail"]["ok"] is True and accounts["shop-mail"]["fetched"] == 0
        assert [o["state"] for o in result.json()["outbox"]] == ["sent"]
        assert [m.recipients for m in shop.sink.received] == [["erika@example.org"]]
    finally:
        store.release_lease(fetch_lease_name("shop-mail"), tui)
        store.close()
    # The lease is gone: the next run fetches the new mail and answers it.
    after = run_once(shop)
    assert [m["decision"] for m in decisions(after)] == ["replied"]


def test_refused_tokens_and_passwords_never_reach_the_output(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = {MAIL_PASSWORD_ENV: "wrong-mail-pw-31337", TWILIO_TOKEN_ENV: "wrong-twilio-31337",
             TELEGRAM_TOKEN_ENV: "999999:wrong-telegram-31337"}
    for variable, value in wrong.items():
        monkeypatch.setenv(variable, value)

    results = [shop.cli("run", "--once", "--json"), shop.cli("run", "--once"),
               shop.cli("sync", "--json"), shop.cli("doctor", "--json"), shop.cli("doctor")]

    assert [r.code for r in results] == [1, 1, 1, 1, 1]
    accounts = {a["account"]: a for a in results[0].json()["accounts"]}
    assert {name: a["ok"] for name, a in accounts.items()} == {
        "shop-mail": False, "shop-sms": False, "shop-telegram": False}
    for result in results:
        printed = result.out + result.err
        for value in wrong.values():
            assert value not in printed
        assert "wrong-telegram-31337" not in printed      # not even the token's secret half


def test_mail_older_than_a_day_when_first_seen_is_left_alone(shop: Shop) -> None:
    """Turning auto_reply on must not answer last week's mail."""
    old = datetime.now(UTC) - timedelta(days=3)
    shop.deliver(customer_mail(sender="erika@example.org", to=shop.mail_user,
                               subject="Öffnungszeiten?", body=ROUTINE_QUESTION,
                               message_id="old-1@example.org", date=old))

    result = run_once(shop)

    assert result.json()["accounts"][0]["new"] == 1
    assert decisions(result) == [] and result.json()["outbox"] == []
    assert shop.sink.received == []
    [conversation] = shop.cli("list", "--json").json()["conversations"]
    assert conversation["status"] == "open"


def test_outside_business_hours_the_after_hours_notice_answers_once(shop: Shop) -> None:
    # Open on one weekday only, three days from today: now is certainly after hours.
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    open_day = days[(datetime.now(UTC).weekday() + 3) % 7]
    shop.write_config(automation=AUTOMATION_ON + f"""\
business_hours = "{open_day} 09:00-18:00"
timezone = "UTC"
after_hours_entry = "opening-hours"

[[rule]]
name = "night notice"
match = {{ time = "after_hours" }}
actions = {{ after_hours = true }}
""")
    # The refund entry is not automatic: by day this would wait for a person.
    shop.mail_from_customer(1, "Ich möchte eine Rückerstattung für meine Bestellung.",
                            subject="Erstattung")

    first = run_once(shop)
    shop.mail_from_customer(2, "Und wann genau bekomme ich mein Geld zurück?",
                            subject="Erstattung")
    second = run_once(shop)

    [replied] = decisions(first)
    assert (replied["decision"], replied["entry"]) == ("replied", "opening-hours")
    [again] = decisions(second)
    assert again["decision"] != "replied"
    assert "already answered automatically" in str(again["why"])
    [mail] = shop.sink.received
    assert "Montag bis Freitag" in mail.message.get_content()
    assert mail.message["Auto-Submitted"] == "auto-replied"


# --- exactly once across crashes and hosts (issue 19) ----------------------------------------

# `agent-tui ARGS` in a process of its own that SIGKILLs itself at one step of a run.
CRASH_AT = """
import os, signal, sys
from agent_tui.automation.run_once import Automation
from agent_tui.cli import main
from agent_tui.engine.outbox import OutboxSender
from agent_tui.store.sql import SqlStore

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(owner, name, when=lambda result, *args, **kwargs: True):
    original = getattr(owner, name)
    def step(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(result, *args, **kwargs):
            die()
        return result
    setattr(owner, name, step)

point = sys.argv.pop(1)
if point == "decided":       # decided on the message, nothing recorded by the run itself
    after(Automation, "decide_one")
elif point == "recorded":    # the decision and its reply committed, nothing sent
    after(SqlStore, "record_decision", lambda result, *a, **k: result is not None)
elif point == "claimed":     # the reply claimed for sending, not yet handed to the provider
    after(SqlStore, "outbox_claim_next", lambda result, *a, **k: result is not None)
elif point == "sent":        # the provider took the reply, the outbox does not know yet
    OutboxSender._record_sent = lambda *args: die()
sys.exit(main(sys.argv[1:]))
"""

# `agent-tui ARGS` that stops before its first decision until its stdin closes: a run that has
# read the pending messages while another runs.
PAUSE_BEFORE_DECIDING = """
import sys
from agent_tui.automation.run_once import Automation
from agent_tui.cli import main

original = Automation.decide_one
def decide_one(self, message):
    print("deciding", flush=True)
    sys.stdin.read()
    return original(self, message)
Automation.decide_one = decide_one
sys.exit(main(sys.argv[1:]))
"""


def on_postgres(shop: Shop, url: str) -> str:
    """Point the shop's config at a PostgreSQL database."""
    config = shop.config_path.read_text()
    shop.config_path.write_text(config.replace('path = "data/agent.db"', f'path = "{url}"'))
    return url


def child(script: str, shop: Shop, *args: str, home: Path | None = None,
          **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, **({"HOME": str(home)} if home is not None else {})}
    return subprocess.Popen([sys.executable, "-c", script, *args, "--config",
                             str(shop.config_path), "run", "--once", "--json"],
                            env=env, text=True, **popen)  # type: ignore[call-overload]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
@pytest.mark.parametrize("point", ["decided", "recorded", "claimed", "sent"])
def test_a_run_killed_at_any_step_answers_each_message_exactly_once(
        shop: Shop, backend: str, point: str, request: pytest.FixtureRequest) -> None:
    assert shop.twilio is not None
    store_at = (str(shop.store_path) if backend == "sqlite"
                else on_postgres(shop, request.getfixturevalue("postgres_url")))
    shop.mail_from_customer(1, ROUTINE_QUESTION, subject="Öffnungszeiten?")
    shop.sms_from_customer(ROUTINE_QUESTION)

    killed = child(CRASH_AT, shop, point, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    _, err = killed.communicate(timeout=120)
    assert killed.returncode == -9, err             # it died at the step, not before
    rerun, after = run_once(shop), run_once(shop)

    assert rerun.code == 0 and after.code == 0, rerun.err + after.err
    assert len(shop.sent_to("erika@example.org")) == 1
    assert [m.to for m in shop.twilio.created] == [CUSTOMER_NUMBER]
    assert decisions(after) == [] and after.json()["outbox"] == []
    store = open_store(store_at)
    try:
        assert store.outbox_counts() == {"sent": 2}
        for conversation in store.list_conversations():
            decided = store.automation_decisions(conversation.id)
            assert [d["decision"] for d in decided] == ["replied"]
            assert [m.direction.value for m in store.get_messages(conversation.id)] == \
                ["in", "out"]
    finally:
        store.close()


@pytest.mark.postgres
def test_two_runs_on_two_hosts_against_one_postgres_store_answer_once(
        shop: Shop, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    on_postgres(shop, postgres_url)
    shop.mail_from_customer(1, ROUTINE_QUESTION, subject="Öffnungszeiten?")
    assert shop.cli("sync").code == 0
    # Two hosts: nothing on disk in common (each its own home).
    first = child(PAUSE_BEFORE_DECIDING, shop, home=tmp_path / "host-a",
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert first.stdout is not None and first.stdout.readline() == "deciding\n"
        monkeypatch.setenv("HOME", str(tmp_path / "host-b"))

        second = shop.cli("run", "--once", "--json")

        assert second.code == 0, second.err
        assert "already running" in second.json()["skipped"]
    finally:
        out, err = first.communicate("", timeout=120)
    assert first.returncode == 0, err
    assert [m["decision"] for m in json.loads(out.splitlines()[-1])["messages"]] == ["replied"]
    assert len(shop.sent_to("erika@example.org")) == 1
