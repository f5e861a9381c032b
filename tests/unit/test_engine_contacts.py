"""Proposed merges at ingest time, from real parsed mail and SMS identities (issues 11 and 6)."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_tui.engine.contacts import propose_merges, signature_block, signature_phones
from agent_tui.model import Channel, Direction, InboundMessage
from agent_tui.store import Store
from connectors.email.mime import parse_message
from tests.conftest import contact_of

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def raw_mail(body: str, *, sender: str = "Kim Kunde <kim@example.org>", message_id: str = "m1",
             headers: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: service@shop.example\r\nSubject: Lieferung\r\n"
            f"Message-ID: <{message_id}@example.org>\r\nDate: Fri, 20 Nov 2026 09:00:00 +0000\r\n"
            f"{headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").replace("\n", "\r\n").replace(
                "\r\r\n", "\r\n").encode()


SIGNED = """Hallo,

wo bleibt meine Bestellung 4711? Seit 10 Tagen nichts.

Viele Grüße
Kim Kunde
Mobil: 0170 1234567
"""

QUOTING = """Danke, passt so.

Am 19.11.2026 um 10:00 schrieb Shop Service <service@shop.example>:
> Gerne rufen Sie uns an: 030 12345678
> --
> Shop Service, Tel. 0171 7654321
"""


def sms(provider_id: str, sender: str, text: str = "Hallo",
        channel: Channel = Channel.SMS) -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=provider_id, direction=Direction.INBOUND,
                          sender=sender, sender_name="", recipients=["+493012345678"],
                          sent_at=T0, subject="", text=text)


def ingest(store: Store, account: str, *messages: InboundMessage) -> list[int]:
    return store.ingest(account, list(messages), cursor_key="main",
                        cursor=None).new_message_ids


def test_signature_phone_of_a_parsed_mail_proposes_the_sms_contact(store: Store) -> None:
    ingest(store, "shop-sms", sms("SM1", "+491701234567", "Wo ist mein Paket?"))
    mail = parse_message(raw_mail(SIGNED))
    ids = ingest(store, "shop-mail", mail)
    assert propose_merges(store, ids, region="DE") == 1
    [proposal] = store.merge_proposals()
    kim, phone = contact_of(store, "kim@example.org"), contact_of(store, "+491701234567")
    assert {proposal.contact_a, proposal.contact_b} == {kim, phone}
    assert proposal.reason == "phone +491701234567 in a mail signature"
    assert proposal.message_id == ids[0]
    # Never silent: still two contacts until a person merges them.
    assert kim != phone and len(store.get_contact(kim).identities) == 1
    # The same signature in the next mail proposes nothing new.
    again = ingest(store, "shop-mail", parse_message(raw_mail(SIGNED, message_id="m2")))
    assert propose_merges(store, again, region="DE") == 0
    assert len(store.merge_proposals(state=None)) == 1


def test_sms_from_a_number_first_seen_in_a_signature(store: Store) -> None:
    ids = ingest(store, "shop-mail", parse_message(raw_mail(SIGNED)))
    assert propose_merges(store, ids) == 0 and store.merge_proposals() == []
    later = ingest(store, "shop-sms", sms("SM7", "+491701234567"))
    assert propose_merges(store, later) == 1
    [proposal] = store.merge_proposals()
    assert proposal.reason.startswith("phone +491701234567 in a mail signature")
    assert "SMS" in proposal.reason and proposal.message_id == ids[0]


def test_rejected_pair_stays_rejected_across_later_mail(store: Store) -> None:
    ingest(store, "shop-sms", sms("SM1", "+491701234567"))
    propose_merges(store, ingest(store, "shop-mail", parse_message(raw_mail(SIGNED))))
    store.reject_merge(contact_of(store, "kim@example.org"), contact_of(store, "+491701234567"))
    later = ingest(store, "shop-mail", parse_message(raw_mail(SIGNED, message_id="m3")))
    assert propose_merges(store, later) == 0
    assert store.merge_proposals() == []


def test_numbers_in_quoted_text_are_not_the_customers(store: Store) -> None:
    ingest(store, "shop-sms", sms("SM1", "+491717654321"), sms("SM2", "+493012345678"))
    ids = ingest(store, "shop-mail", parse_message(raw_mail(QUOTING)))
    assert propose_merges(store, ids) == 0
    assert store.merge_proposals() == []
    assert store.contact_hints("phone", "+491717654321") == []


def test_reply_to_of_another_contact(store: Store) -> None:
    ingest(store, "shop-mail", parse_message(raw_mail("Hallo", sender="kim@example.org")))
    form = parse_message(raw_mail("Kontaktformular: Rückruf bitte",
                                  sender="Formular <form@shop-forms.example>",
                                  message_id="f1",
                                  headers="Reply-To: Kim <Kim@Example.org>\r\n"))
    assert propose_merges(store, ingest(store, "shop-mail", form)) == 1
    [proposal] = store.merge_proposals()
    assert proposal.reason == "Reply-To kim@example.org"
    assert {proposal.contact_a, proposal.contact_b} == {
        contact_of(store, "kim@example.org"), contact_of(store, "form@shop-forms.example")}


def test_reply_to_seen_before_its_first_mail(store: Store) -> None:
    form = parse_message(raw_mail("Rückruf bitte", sender="form@shop-forms.example",
                                  message_id="f1", headers="Reply-To: new@example.org\r\n"))
    assert propose_merges(store, ingest(store, "shop-mail", form)) == 0
    first = parse_message(raw_mail("Hallo", sender="new@example.org", message_id="n1"))
    assert propose_merges(store, ingest(store, "shop-mail", first)) == 1
    assert "Reply-To new@example.org" in store.merge_proposals()[0].reason


def test_automatic_mail_proposes_nothing(store: Store) -> None:
    ingest(store, "shop-sms", sms("SM1", "+491701234567"))
    bulk = parse_message(raw_mail(SIGNED, sender="news@example.org", message_id="b1",
                                  headers="Precedence: bulk\r\nList-Id: <news.example.org>\r\n"))
    assert bulk.auto.any
    assert propose_merges(store, ingest(store, "shop-mail", bulk)) == 0


def test_a_merged_contact_gets_no_proposal_with_itself(store: Store) -> None:
    ingest(store, "shop-sms", sms("SM1", "+491701234567"))
    propose_merges(store, ingest(store, "shop-mail", parse_message(raw_mail(SIGNED))))
    kim, phone = contact_of(store, "kim@example.org"), contact_of(store, "+491701234567")
    store.merge_contacts(kim, phone)
    assert [p.state for p in store.merge_proposals(state=None)] == ["accepted"]
    later = ingest(store, "shop-mail", parse_message(raw_mail(SIGNED, message_id="m4")))
    later += ingest(store, "shop-sms", sms("SM2", "+491701234567"))
    assert propose_merges(store, later) == 0 and store.merge_proposals() == []


def test_signature_block_prefers_the_dash_line_and_stops_at_quotes() -> None:
    text = "Text 0170 9999999 im Satz\n-- \nKim\nTel 0170 1234567\n\n> alt 0171 7654321"
    assert signature_block(text) == "Kim\nTel 0170 1234567\n"
    assert signature_phones(text, "DE") == ["+491701234567"]
    assert signature_phones("Ruf an: +43 664 1234567", "DE") == ["+436641234567"]
    assert signature_phones("Bestellung 12345678 vom 12.11.2026", "DE") == []
    many = "\n".join(f"Filiale {n}: 030 123456{n}" for n in range(4))
    assert signature_phones(many, "DE") == []
