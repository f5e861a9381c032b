"""Proposed merges in the store: once per pair, never silent, rejections remembered (issue 11)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_tui.errors import NotFound, UsageError
from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import Store, open_store
from agent_tui.store.sqlite import MIGRATIONS
from tests.conftest import contact_of, shipped_steps, store_sql

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def message(provider_id: str, sender: str, *, channel: Channel = Channel.SMS,
            text: str = "Hallo", reply_to: str = "") -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=provider_id, direction=Direction.INBOUND,
                          sender=sender, sender_name="", recipients=["service@shop.example"],
                          sent_at=T0, subject="", text=text, reply_to=reply_to)


@pytest.fixture
def three(store: Store) -> tuple[int, int, int]:
    store.ingest("shop", [message("m1", "kim@example.org", channel=Channel.EMAIL),
                          message("SM1", "+491701234567"),
                          message("tg1", "4242", channel=Channel.TELEGRAM)],
                 cursor_key="m", cursor=None)
    return (contact_of(store, "kim@example.org"), contact_of(store, "+491701234567"),
            contact_of(store, "4242"))


def test_a_pair_is_proposed_once_and_never_with_itself(store: Store,
                                                       three: tuple[int, int, int]) -> None:
    mail, sms, _ = three
    first = store.propose_merge(mail, sms, "phone +491701234567 in a mail signature")
    assert first is not None
    # The same pair again, in either order and for another reason: not proposed twice.
    assert store.propose_merge(sms, mail, "Reply-To kim@example.org") is None
    assert store.propose_merge(mail, mail, "itself") is None
    assert store.propose_merge(mail, 9999, "gone") is None
    [proposal] = store.merge_proposals()
    assert (proposal.contact_a, proposal.contact_b) == (min(mail, sms), max(mail, sms))
    assert proposal.reason == "phone +491701234567 in a mail signature"
    assert proposal.state == "open" and proposal.created_at.tzinfo is not None
    # Proposing merges nothing.
    assert {i.kind for i in store.get_contact(mail).identities} == {"email"}
    assert store.get_contact(sms).identities[0].address == "+491701234567"


def test_a_rejected_pair_is_never_proposed_again(store: Store,
                                                 three: tuple[int, int, int]) -> None:
    mail, sms, telegram = three
    store.propose_merge(mail, sms, "phone in a signature")
    store.reject_merge(sms, mail)
    assert store.merge_proposals() == []
    [rejected] = store.merge_proposals(state="rejected")
    assert rejected.resolved_at is not None
    assert store.propose_merge(mail, sms, "phone in a signature") is None
    # A rejection without a proposal is remembered too.
    store.reject_merge(mail, telegram)
    assert store.propose_merge(telegram, mail, "Reply-To") is None
    with pytest.raises(UsageError):
        store.reject_merge(mail, mail)
    with pytest.raises(NotFound):
        store.reject_merge(mail, 9999)


def test_merge_accepts_the_proposal_and_moves_the_others(store: Store,
                                                          three: tuple[int, int, int]) -> None:
    mail, sms, telegram = three
    store.propose_merge(mail, sms, "phone in a signature")
    store.propose_merge(sms, telegram, "Telegram user shared phone +491701234567")
    store.merge_contacts(mail, sms)
    [accepted] = store.merge_proposals(state="accepted")
    assert (accepted.contact_a, accepted.contact_b, accepted.merged_id) == (mail, None, sms)
    # sms's open proposal with the Telegram contact now names the surviving contact.
    [moved] = store.merge_proposals()
    assert {moved.contact_a, moved.contact_b} == {mail, telegram}
    assert moved.reason == "Telegram user shared phone +491701234567"
    # No row names the contact that is gone.
    rows = store_sql(store, "SELECT contact_a, contact_b FROM merge_proposals")
    assert sms not in {value for row in rows for value in row}


def test_merge_keeps_a_rejection_over_an_open_duplicate(store: Store,
                                                        three: tuple[int, int, int]) -> None:
    mail, sms, telegram = three
    store.propose_merge(mail, telegram, "Reply-To")
    store.reject_merge(sms, telegram)
    store.merge_contacts(mail, sms)
    assert store.merge_proposals() == []
    [rejected] = store.merge_proposals(state="rejected")
    assert {rejected.contact_a, rejected.contact_b} == {mail, telegram}


def test_split_is_remembered_as_a_rejection(store: Store, three: tuple[int, int, int]) -> None:
    mail, sms, _ = three
    store.merge_contacts(mail, sms)
    new = store.split_contact(mail, "phone", "+491701234567")
    assert store.propose_merge(mail, new, "phone in a signature") is None
    [split] = store.merge_proposals(state="rejected")
    assert "split" in split.reason


def test_hints_move_with_a_merge_and_go_with_an_erasure(store: Store,
                                                       three: tuple[int, int, int]) -> None:
    mail, sms, telegram = three
    assert store.add_contact_hint(sms, "email", "kim.private@example.org", "Reply-To",
                                  message_id=None)
    assert not store.add_contact_hint(sms, "email", "kim.private@example.org", "again")
    assert not store.add_contact_hint(9999, "email", "x@example.org", "gone")
    store.merge_contacts(mail, sms)
    [hint] = store.contact_hints("email", "kim.private@example.org")
    assert hint.contact_id == mail and hint.reason == "Reply-To"
    # A hint on another contact about the erased person's address goes with the person.
    store.add_contact_hint(telegram, "email", "kim@example.org", "signature mail")
    store.propose_merge(mail, telegram, "Reply-To kim@example.org")
    store.erase_contact(mail)
    assert store.contact_hints("email", "kim.private@example.org") == []
    assert store.contact_hints("email", "kim@example.org") == []
    assert store.merge_proposals(state=None) == []


def test_reply_to_is_kept_in_the_message_extras(store: Store) -> None:
    store.ingest("mail", [message("m9", "shop-form@example.net", channel=Channel.EMAIL,
                                  reply_to="Kim@Example.org ")], cursor_key="m", cursor=None)
    [conversation] = store.list_conversations()
    [stored] = store.get_messages(conversation.id)
    assert store.get_message_extra(stored.id)["reply_to"] == "kim@example.org"
    with pytest.raises(NotFound):
        store.get_message_extra(9999)


def test_proposal_outlives_its_deleted_message(store: Store, three: tuple[int, int, int]) -> None:
    mail, sms, _ = three
    [conversation] = store.contact_conversations(mail)
    [shown] = store.get_messages(conversation.id)
    store.propose_merge(mail, sms, "phone in a signature", message_id=shown.id)
    store.delete_message(shown.id)
    [proposal] = store.merge_proposals()
    assert proposal.message_id is None and proposal.state == "open"


def test_version_2_store_is_upgraded_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    db = sqlite3.connect(path)
    for step in shipped_steps("sqlite", 2):
        db.executescript(step)
    db.execute("INSERT INTO contacts(display_name, created_at) VALUES ('Kim', 'x')")
    db.execute("INSERT INTO contacts(display_name, created_at) VALUES ('', 'x')")
    db.execute("INSERT INTO identities(contact_id, kind, address) "
               "VALUES (1, 'email', 'kim@example.org'), (2, 'phone', '+491701234567')")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    store = open_store(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 3
    assert store.get_contact(1).display_name == "Kim"
    assert store.propose_merge(1, 2, "phone +491701234567 in a mail signature") is not None
    store.merge_contacts(1, 2)
    assert [p.merged_id for p in store.merge_proposals(state="accepted")] == [2]
    store.close()
