"""Benchmark of the SQLite store against plain sqlite3 doing the same work by hand.

Usage: .venv/bin/python scripts/bench/store.py [--messages N] [--conversations M] [--rounds R]
                                               [--out FILE]

Both sides get the same synthetic data (default 100,000 messages in 10,000 conversations): German
and English customer text of mixed length (one-line chat messages to mails with a quoted earlier
message and a signature), mail threads chained by In-Reply-To/References and SMS, WhatsApp and
Telegram chats, about two conversations per customer (a mail address and a phone number stay two
contacts until someone merges them), a third of the messages our replies, and a few rare words
planted in a handful of messages. Each side writes batches of 500 messages, one
transaction per batch together with a sync cursor.
- store: `Store.ingest` (identity lookup, dedupe, tombstones, threading, FTS, cursor) and the
  public reads `list_conversations(limit=50)`, `search(rare word)` and `get_messages(id)`.
- plain: a minimal hand-written schema with the same indexes and an FTS5 table with the same
  tokenizer, filled with `executemany` (the conversation of each message known up front), and
  the same three queries returning plain tuples. It is the floor: what SQLite itself costs.
Latencies are medians of many single calls, the two sides taking turns so that other processes
on the machine disturb both alike. The ratios store/plain are the figures that matter (target:
list and search within 1.5x); absolute numbers depend on the machine.
Results: a table on stdout and JSON in scripts/bench/results/store.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "scripts" / "bench" / "results" / "store.json"

from agent_tui.model import Channel, Direction, InboundMessage  # noqa: E402
from agent_tui.store import Store, open_store  # noqa: E402

ACCOUNT = "shop"
SHOP_MAIL = "service@shop.example"
SHOP_PHONE = "+493012345678"
SHOP_TELEGRAM = "shopbot"
BATCH = 500
TARGET_RATIO = 1.5
SPAN = timedelta(days=300)            # the messages spread over this much time
# Planted words and how many messages carry each; the benchmark searches for the first.
RARE_WORDS = {"Zauberwürfel": 5, "Quokkarucksack": 3, "Flamingohocker": 1}
SEARCH_WORD = next(iter(RARE_WORDS))
CHAT_CHANNELS = (Channel.SMS, Channel.WHATSAPP, Channel.TELEGRAM)

PRODUCTS = {
    "de": ["Winterjacke", "Laufschuhe", "Jeans", "Rucksack", "Kaffeemaschine", "Wasserkocher",
           "Bettwäsche", "Schreibtischlampe", "Regenschirm", "Strickpullover"],
    "en": ["winter jacket", "running shoes", "jeans", "backpack", "coffee machine", "kettle",
           "bed linen", "desk lamp", "umbrella", "knitted jumper"],
}
SUBJECTS = {
    "de": ["Bestellung {order}", "Lieferung {order}", "Rücksendung {order}", "Rechnung {order}",
           "Umtausch {order}", "Frage zu {product}", "Reklamation {order}"],
    "en": ["Order {order}", "Delivery {order}", "Return {order}", "Invoice {order}",
           "Exchange {order}", "Question about {product}", "Complaint {order}"],
}
GREETINGS = {"de": ["Hallo,", "Guten Tag,", "Sehr geehrte Damen und Herren,", "Hallo zusammen,"],
             "en": ["Hello,", "Hi,", "Dear customer service,", "Good morning,"]}
CLOSINGS = {"de": ["Viele Grüße", "Mit freundlichen Grüßen", "Danke und Gruß", "LG"],
            "en": ["Best regards", "Kind regards", "Thanks", "Cheers"]}
CUSTOMER_SENTENCES = {
    "de": [
        "ich habe am {date} die Bestellung {order} aufgegeben und bisher keine "
        "Versandbestätigung bekommen.",
        "Das Paket mit der {product} ist laut Sendungsverfolgung seit drei Tagen im Paketzentrum.",
        "Leider ist die {product} in der falschen Größe angekommen, ich brauche eine Nummer "
        "größer.",
        "Können Sie mir sagen, wann die {product} wieder lieferbar ist?",
        "Die Rechnung zur Bestellung {order} fehlt im Paket, bitte schicken Sie sie mir per Mail.",
        "Ich möchte die {product} zurückschicken, wie bekomme ich ein Rücksendeetikett?",
        "Die Rückerstattung für {order} ist nach zwei Wochen noch nicht auf meinem Konto.",
        "Kann ich die Lieferadresse noch ändern? Ich bin ab Montag nicht zu Hause.",
        "Mein Gutscheincode wird an der Kasse nicht angenommen.",
        "Die {product} war beim Auspacken beschädigt, Fotos hänge ich an.",
        "Bitte stornieren Sie die Bestellung {order}, ich habe mich vertan.",
        "Wie lange dauert der Versand nach Österreich?",
    ],
    "en": [
        "I placed order {order} on {date} and have not had a shipping confirmation yet.",
        "The parcel with my {product} has been stuck at the depot for three days.",
        "Unfortunately the {product} arrived in the wrong size, I need one size up.",
        "Could you tell me when the {product} will be back in stock?",
        "The invoice for order {order} was not in the parcel, please email it to me.",
        "I would like to return the {product}, how do I get a return label?",
        "The refund for {order} has still not reached my account after two weeks.",
        "Can I still change the delivery address? I am away from Monday.",
        "My voucher code is not accepted at checkout.",
        "The {product} was damaged when I unpacked it, photos attached.",
        "Please cancel order {order}, I ordered by mistake.",
        "How long does shipping to Austria take?",
    ],
}
CHAT_LINES = {
    "de": ["Hallo, wo bleibt mein Paket? Bestellung {order}", "Danke!", "Ok, super.",
           "Ist die {product} noch da?", "Kann ich heute noch bestellen und morgen haben?",
           "Sendungsnummer geht nicht", "Bitte um Rückruf", "Alles klar, danke für die Hilfe",
           "Die {product} ist zu klein, kann ich tauschen?", "Wann kommt die Lieferung?"],
    "en": ["Hi, where is my parcel? Order {order}", "Thanks!", "Ok great.",
           "Is the {product} still available?", "Can I order today and get it tomorrow?",
           "Tracking number does not work", "Please call me back", "All good, thanks for the help",
           "The {product} is too small, can I swap it?", "When will it be delivered?"],
}
AGENT_SENTENCES = {
    "de": ["vielen Dank für Ihre Nachricht.",
           "Ihre Bestellung {order} ist heute an DHL übergeben worden.",
           "das Rücksendeetikett finden Sie im Anhang.",
           "die Erstattung wird innerhalb von fünf Werktagen gebucht.",
           "wir schicken Ihnen die {product} in der richtigen Größe kostenlos zu."],
    "en": ["thank you for your message.", "your order {order} was handed to DHL today.",
           "you will find the return label attached.",
           "the refund will be booked within five working days.",
           "we will send you the {product} in the right size free of charge."],
}
FIRST_NAMES = ["Anna", "Jonas", "Lea", "Paul", "Marie", "Felix", "Sophie", "Lukas", "Emma", "Ben",
               "Olivia", "James", "Grace", "Tom", "Amelia", "Noah"]
LAST_NAMES = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Hoffmann", "Koch",
              "Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans"]


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    email: str
    phone: str
    telegram: str
    lang: str


@dataclass(frozen=True, slots=True)
class Synthetic:
    message: InboundMessage
    conversation: int       # the conversation it belongs to, 0-based (the plain side's truth)
    address: str            # the customer's address on this channel


@dataclass(frozen=True, slots=True)
class Plan:
    customer: Customer
    channel: Channel
    order: str
    product: str
    subject: str


def _customer(number: int, rng: random.Random) -> Customer:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    domain = rng.choice(["example.org", "example.net", "mail.example"])
    return Customer(f"{first} {last}", f"{first.lower()}.{number}@{domain}", f"+4915{number:09d}",
                    str(700_000_000 + number), "de" if rng.random() < 0.65 else "en")


def _plan(conversations: int, rng: random.Random) -> list[Plan]:
    """About two conversations per customer: the first by mail, the second on any channel
    (a customer has at most one chat per chat channel, as the store threads chats)."""
    plans = []
    customer = _customer(0, rng)
    for c in range(conversations):
        if c % 2 == 0:
            customer = _customer(c // 2, rng)
            channel = Channel.EMAIL
        else:
            channel = rng.choice([Channel.EMAIL, *CHAT_CHANNELS])
        lang = customer.lang
        order = f"{100_000 + c}"
        product = rng.choice(PRODUCTS[lang])
        template = rng.choice(SUBJECTS[lang])
        subject = template.format(order=order, product=product)
        if "{order}" not in template:
            subject = f"{subject} ({order})"   # subjects stay unique: no accidental threading
        plans.append(Plan(customer, channel, order, product, subject))
    return plans


def _sizes(messages: int, conversations: int, rng: random.Random) -> list[int]:
    """Messages per conversation: most are short, a few run to a hundred or more (log-normal:
    median 6, 90th percentile about 20 at the default sizes)."""
    weights = [rng.lognormvariate(0, 1.0) for _ in range(conversations)]
    extra = messages - conversations
    scale = extra / sum(weights)
    sizes = [1 + int(w * scale) for w in weights]
    for index in rng.sample(range(conversations), messages - sum(sizes)):
        sizes[index] += 1
    return sizes


def _fill(template: str, plan: Plan, at: datetime) -> str:
    return template.format(order=plan.order, product=plan.product, date=f"{at:%d.%m.%Y}")


def _text(plan: Plan, inbound: bool, first: bool, previous: str, at: datetime,
          rng: random.Random) -> str:
    lang = plan.customer.lang
    if plan.channel is not Channel.EMAIL:
        if inbound:
            return _fill(rng.choice(CHAT_LINES[lang]), plan, at)
        line = _fill(rng.choice(AGENT_SENTENCES[lang]), plan, at)
        return line[:1].upper() + line[1:]
    pool = CUSTOMER_SENTENCES[lang] if inbound else AGENT_SENTENCES[lang]
    body = " ".join(_fill(s, plan, at) for s in rng.choices(pool, k=rng.randint(1, 6)))
    signer = plan.customer.name if inbound else "Mia, Kundenservice Shop"
    parts = [rng.choice(GREETINGS[lang]), body, f"{rng.choice(CLOSINGS[lang])}\n{signer}"]
    if not first and previous and rng.random() < 0.6:
        parts.append("\n".join("> " + line for line in previous.splitlines()))
    return "\n\n".join(parts)


def synthetic_messages(messages: int, conversations: int, seed: int = 7) -> list[Synthetic]:
    """The messages in time order; conversation c starts at a time spread over SPAN."""
    rng = random.Random(seed)
    plans = _plan(conversations, rng)
    sizes = _sizes(messages, conversations, rng)
    events: list[tuple[datetime, int, int]] = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for c, size in enumerate(sizes):
        at = start + SPAN * (c / conversations)
        chat = plans[c].channel is not Channel.EMAIL
        for k in range(size):
            events.append((at, c, k))
            at += timedelta(minutes=rng.uniform(1, 30)) if chat else \
                timedelta(hours=rng.uniform(1, 48))
    events.sort()
    planted = [word for word, count in RARE_WORDS.items() for _ in range(count)]
    plant_at = dict(zip(rng.sample(range(messages), len(planted)), planted, strict=True))
    last_id: dict[int, str] = {}
    last_text: dict[int, str] = {}
    result = []
    for i, (at, c, k) in enumerate(events):
        plan, customer = plans[c], plans[c].customer
        inbound = k == 0 or rng.random() < 0.65
        text = _text(plan, inbound, k == 0, last_text.get(c, ""), at, rng)
        last_text[c] = text      # a reply quotes this, but never a planted word (exact counts)
        if i in plant_at:
            text = f"{text} {plant_at[i]}"
        if plan.channel is Channel.EMAIL:
            provider_id = f"<{i}.{c}@{'customer' if inbound else 'shop'}.example>"
            previous = last_id.get(c, "")
            address = customer.email
            sender, recipient = (address, SHOP_MAIL) if inbound else (SHOP_MAIL, address)
            message = InboundMessage(
                channel=Channel.EMAIL, provider_id=provider_id,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                sender=sender, sender_name=customer.name if inbound else "Shop Service",
                recipients=[recipient], sent_at=at,
                subject=("AW: " if previous else "") + plan.subject, text=text,
                in_reply_to=previous, references=[previous] if previous else [])
        else:
            address = customer.telegram if plan.channel is Channel.TELEGRAM else customer.phone
            shop = SHOP_TELEGRAM if plan.channel is Channel.TELEGRAM else SHOP_PHONE
            sender, recipient = (address, shop) if inbound else (shop, address)
            provider_id = f"{plan.channel}:{i}"
            message = InboundMessage(
                channel=plan.channel, provider_id=provider_id,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                sender=sender, sender_name=customer.name if inbound else "",
                recipients=[recipient], sent_at=at, subject="", text=text)
        last_id[c] = provider_id
        result.append(Synthetic(message, c, address))
    return result


def batches(items: list[Synthetic]) -> list[list[Synthetic]]:
    return [items[start:start + BATCH] for start in range(0, len(items), BATCH)]


def paired_medians(store_call: Callable[[], object], plain_call: Callable[[], object],
                   rounds: int) -> tuple[float, float]:
    """Median seconds of single calls on each side, the sides taking turns."""
    store_call()     # warm the page and statement caches
    plain_call()
    clock = time.perf_counter
    store_times, plain_times = [], []
    for _ in range(rounds):
        started = clock()
        store_call()
        store_times.append(clock() - started)
        started = clock()
        plain_call()
        plain_times.append(clock() - started)
    return statistics.median(store_times), statistics.median(plain_times)


def file_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


# --- the store ------------------------------------------------------------------------------


def fill_store(db: Path, data: list[list[Synthetic]]) -> tuple[Store, float]:
    store = open_store(db)
    started = time.perf_counter()
    new = 0
    for number, batch in enumerate(data):
        result = store.ingest(ACCOUNT, [s.message for s in batch], cursor_key="INBOX",
                              cursor={"uidvalidity": 1, "last_uid": (number + 1) * BATCH})
        new += result.new
    insert_seconds = time.perf_counter() - started
    expected = sum(len(batch) for batch in data)
    if new != expected:
        raise SystemExit(f"store kept {new} of {expected} messages")
    return store, insert_seconds


# --- plain sqlite3 ---------------------------------------------------------------------------

PLAIN_SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
                       address TEXT NOT NULL, UNIQUE (kind, address));
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL, contact_address TEXT NOT NULL,
    channel TEXT NOT NULL, account TEXT NOT NULL, subject TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open', assignee TEXT, tags TEXT NOT NULL DEFAULT '[]',
    priority TEXT NOT NULL DEFAULT 'normal', first_inbound_at TEXT, last_inbound_at TEXT,
    last_activity_at TEXT NOT NULL, due_at TEXT, unread INTEGER NOT NULL DEFAULT 0,
    preview TEXT NOT NULL DEFAULT '', enrichment TEXT NOT NULL DEFAULT '{}', waiting_since TEXT);
CREATE INDEX conversations_activity ON conversations(last_activity_at DESC);
CREATE INDEX conversations_status_activity ON conversations(status, last_activity_at DESC);
CREATE INDEX conversations_contact ON conversations(contact_id, account, channel);
CREATE INDEX conversations_subject ON conversations(contact_id, subject);
CREATE INDEX conversations_waiting ON conversations(status, waiting_since)
    WHERE waiting_since IS NOT NULL;
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, account TEXT NOT NULL,
    channel TEXT NOT NULL, direction TEXT NOT NULL, provider_id TEXT NOT NULL,
    sender TEXT NOT NULL, sender_name TEXT NOT NULL, recipients TEXT NOT NULL,
    sent_at TEXT NOT NULL, subject TEXT NOT NULL, text TEXT NOT NULL, attachments TEXT NOT NULL,
    auto_flags TEXT NOT NULL, delivery_status TEXT NOT NULL, defects TEXT NOT NULL,
    in_reply_to TEXT NOT NULL, refs TEXT NOT NULL, edited INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account, provider_id));
CREATE INDEX messages_conversation ON messages(conversation_id, sent_at);
CREATE VIRTUAL TABLE messages_fts USING fts5(
    subject, sender, sender_name, text, content='messages', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, subject, sender, sender_name, text)
    VALUES (new.id, new.subject, new.sender, new.sender_name, new.text);
END;
CREATE TABLE cursors (account TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                      PRIMARY KEY (account, key));
"""

# The same columns and order the store's reads use, returned as plain tuples.
PLAIN_LIST = (
    "SELECT c.id, c.contact_id, c.channel, c.account, c.subject, c.status, c.assignee, c.tags, "
    "c.priority, c.first_inbound_at, c.last_inbound_at, c.last_activity_at, c.due_at, c.unread, "
    "k.name, c.contact_address, c.preview, c.enrichment, c.waiting_since "
    "FROM conversations c JOIN contacts k ON k.id=c.contact_id "
    "ORDER BY c.last_activity_at DESC, c.id LIMIT 50")
PLAIN_SEARCH = (
    "SELECT m.id, m.conversation_id, m.sent_at, m.sender, m.subject, "
    "snippet(messages_fts, 3, '«', '»', '…', 12) FROM messages_fts "
    "JOIN messages m ON m.id=messages_fts.rowid WHERE messages_fts MATCH ? "
    "ORDER BY rank LIMIT 50")
PLAIN_MESSAGES = (
    "SELECT id, conversation_id, account, channel, direction, provider_id, sender, sender_name, "
    "recipients, sent_at, subject, text, attachments, auto_flags, delivery_status, defects, "
    "in_reply_to, refs, edited FROM messages WHERE conversation_id=? ORDER BY sent_at, id")
NO_FLAGS = json.dumps({"auto_submitted": False, "bulk": False, "list_mail": False,
                       "bounce": False, "null_sender": False})


def plain_match(word: str) -> str:
    """The MATCH expression the store builds for one word (a quoted prefix)."""
    return f'"{word}"*'


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def fill_plain(db: Path, data: list[list[Synthetic]]) -> tuple[sqlite3.Connection, float]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(PLAIN_SCHEMA)
    started = time.perf_counter()
    contacts: dict[tuple[str, str], int] = {}
    known: set[int] = set()
    for number, batch in enumerate(data):
        new_contacts, new_conversations, rows, inbound, outbound = [], [], [], [], []
        for item in batch:
            m, c = item.message, item.conversation + 1
            kind = "email" if m.channel is Channel.EMAIL else (
                "telegram" if m.channel is Channel.TELEGRAM else "phone")
            contact = contacts.get((kind, item.address))
            if contact is None:
                contact = contacts[(kind, item.address)] = len(contacts) + 1
                new_contacts.append((contact, m.sender_name, kind, item.address))
            at = _stamp(m.sent_at)
            if c not in known:
                known.add(c)
                new_conversations.append((c, contact, item.address, str(m.channel), ACCOUNT,
                                          m.subject, at))
            rows.append((c, ACCOUNT, str(m.channel), str(m.direction), m.provider_id, m.sender,
                         m.sender_name, json.dumps(m.recipients), at, m.subject, m.text, "[]",
                         NO_FLAGS, "", "[]", m.in_reply_to, json.dumps(m.references)))
            if m.direction is Direction.INBOUND:
                inbound.append((at, at, at, at, m.text[:120], c))
            else:
                outbound.append((at, c))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO contacts(id, name, kind, address) VALUES (?,?,?,?)",
                         new_contacts)
        conn.executemany("INSERT INTO conversations(id, contact_id, contact_address, channel, "
                         "account, subject, last_activity_at) VALUES (?,?,?,?,?,?,?)",
                         new_conversations)
        conn.executemany("INSERT INTO messages(conversation_id, account, channel, direction, "
                         "provider_id, sender, sender_name, recipients, sent_at, subject, text, "
                         "attachments, auto_flags, delivery_status, defects, in_reply_to, refs) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.executemany("UPDATE conversations SET last_activity_at=max(last_activity_at, ?), "
                         "first_inbound_at=coalesce(first_inbound_at, ?), last_inbound_at=?, "
                         "waiting_since=coalesce(waiting_since, ?), unread=unread+1, preview=? "
                         "WHERE id=?", inbound)
        conn.executemany("UPDATE conversations SET last_activity_at=max(last_activity_at, ?1), "
                         "waiting_since=NULL WHERE id=?2", outbound)
        conn.execute("INSERT OR REPLACE INTO cursors(account, key, value) VALUES (?,?,?)",
                     (ACCOUNT, "INBOX", json.dumps({"last_uid": (number + 1) * BATCH})))
        conn.execute("COMMIT")
    return conn, time.perf_counter() - started


# --- report ---------------------------------------------------------------------------------


def run(messages: int, conversations: int, rounds: int) -> dict[str, Any]:
    data = batches(synthetic_messages(messages, conversations))
    sizes: dict[int, int] = {}
    for batch in data:
        for item in batch:
            sizes[item.conversation] = sizes.get(item.conversation, 0) + 1
    with tempfile.TemporaryDirectory(prefix="agent-tui-bench-") as tmp:
        store_db, plain_db = Path(tmp) / "store" / "agent.db", Path(tmp) / "plain.db"
        store, store_insert = fill_store(store_db, data)
        conn, plain_insert = fill_plain(plain_db, data)
        stored_conversations = store.count_conversations()
        if stored_conversations != conversations:
            raise SystemExit(f"store threaded {stored_conversations} conversations, "
                             f"planned {conversations}")
        for word, count in RARE_WORDS.items():
            found = len(store.search(word)), len(conn.execute(PLAIN_SEARCH,
                                                              (plain_match(word),)).fetchall())
            if found != (count, count):
                raise SystemExit(f"{word}: store found {found[0]}, plain {found[1]}, "
                                 f"planted {count}")
        listed = store.list_conversations(limit=50)
        if [c.id for c in listed] != [r[0] for r in conn.execute(PLAIN_LIST)]:
            raise SystemExit("store and plain list different conversations")
        # Open a conversation of average length (ids follow the plan: conversation c is c + 1).
        average = messages / conversations
        opened = 1 + min(sizes, key=lambda c: (abs(sizes[c] - average), c))
        if len(store.get_messages(opened)) != len(conn.execute(PLAIN_MESSAGES,
                                                               (opened,)).fetchall()):
            raise SystemExit(f"conversation {opened}: store and plain differ")
        match = plain_match(SEARCH_WORD)
        store_list, plain_list = paired_medians(
            lambda: store.list_conversations(limit=50),
            lambda: conn.execute(PLAIN_LIST).fetchall(), rounds)
        store_search, plain_search = paired_medians(
            lambda: store.search(SEARCH_WORD, limit=50),
            lambda: conn.execute(PLAIN_SEARCH, (match,)).fetchall(), rounds)
        store_open, plain_open = paired_medians(
            lambda: store.get_messages(opened),
            lambda: conn.execute(PLAIN_MESSAGES, (opened,)).fetchall(), rounds)
        contacts = int(conn.execute("SELECT count(*) FROM contacts").fetchone()[0])
        store.close()     # the last connection to close checkpoints and removes the WAL
        conn.close()
        store_bytes, plain_bytes = file_bytes(store_db), file_bytes(plain_db)
    ratios = {
        "insert_rate": plain_insert / store_insert,
        "list": store_list / plain_list,
        "search": store_search / plain_search,
        "get_messages": store_open / plain_open,
        "bytes_per_message": store_bytes / plain_bytes,
    }
    channels: dict[str, int] = {}
    for batch in data:
        for item in batch:
            channels[str(item.message.channel)] = channels.get(str(item.message.channel), 0) + 1
    return {
        "format": 1,
        "messages": messages,
        "conversations": conversations,
        "contacts": contacts,
        "messages_by_channel": channels,
        "batch": BATCH,
        "rounds": rounds,
        "sqlite": sqlite3.sqlite_version,
        "search_word": SEARCH_WORD,
        "search_hits": RARE_WORDS[SEARCH_WORD],
        "opened_conversation_messages": sizes[opened - 1],
        "store": {"insert_per_second": messages / store_insert, "list_seconds": store_list,
                  "search_seconds": store_search, "get_messages_seconds": store_open,
                  "bytes_per_message": store_bytes / messages},
        "plain": {"insert_per_second": messages / plain_insert, "list_seconds": plain_list,
                  "search_seconds": plain_search, "get_messages_seconds": plain_open,
                  "bytes_per_message": plain_bytes / messages},
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "within_target": ratios["list"] <= TARGET_RATIO and ratios["search"] <= TARGET_RATIO,
    }


def table(report: dict[str, Any]) -> str:
    s, p, r = report["store"], report["plain"], report["ratios"]

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:.3f}"

    rows = [
        ("insert (messages/s)", f"{s['insert_per_second']:,.0f}", f"{p['insert_per_second']:,.0f}",
         f"{r['insert_rate']:.2f}x rate"),
        ("list 50 newest (ms)", ms(s["list_seconds"]), ms(p["list_seconds"]),
         f"{r['list']:.2f}x time"),
        (f"search {report['search_word']} (ms)", ms(s["search_seconds"]),
         ms(p["search_seconds"]), f"{r['search']:.2f}x time"),
        (f"get_messages, {report['opened_conversation_messages']} msgs (ms)",
         ms(s["get_messages_seconds"]), ms(p["get_messages_seconds"]),
         f"{r['get_messages']:.2f}x time"),
        ("bytes per message", f"{s['bytes_per_message']:,.0f}", f"{p['bytes_per_message']:,.0f}",
         f"{r['bytes_per_message']:.2f}x size"),
    ]
    head = (f"{report['messages']:,} messages, {report['conversations']:,} conversations, "
            f"{report['contacts']:,} contacts, SQLite {report['sqlite']}; "
            f"medians of {report['rounds']} calls")
    lines = [head, f"{'':32} {'store':>10} {'plain':>10}  store/plain"]
    lines += [f"{name:32} {a:>10} {b:>10}  {ratio}" for name, a, b, ratio in rows]
    verdict = "within" if report["within_target"] else "NOT within"
    lines.append(f"list and search {verdict} {TARGET_RATIO}x of plain sqlite3")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int,
                        help="default: a tenth of --messages (10,000)")
    parser.add_argument("--rounds", type=int, default=301, help="timed calls per query and side")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.conversations is None:
        args.conversations = args.messages // 10
    if args.conversations < 50:
        parser.error("--conversations: at least 50 (a page to list)")
    if args.messages < max(args.conversations, sum(RARE_WORDS.values())):
        parser.error("--messages: at least one per conversation")
    report = run(args.messages, args.conversations, args.rounds)
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
