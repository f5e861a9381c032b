"""The SQLite schema, as migrations counted by `PRAGMA user_version`.

Append a step to MIGRATIONS to change the schema; never edit a step that has shipped.
Timestamps are ISO 8601 UTC text of fixed width, so they sort as text.
"""

from __future__ import annotations

SCHEMA_V1 = """
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE identities (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                 -- email | phone | telegram
    address TEXT NOT NULL,
    UNIQUE (kind, address)
);
CREATE INDEX identities_contact ON identities(contact_id);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    contact_address TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    account TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    norm_subject TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'open',
    snoozed_until TEXT,
    closed_at TEXT,
    assignee TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    priority TEXT NOT NULL DEFAULT 'normal',
    first_inbound_at TEXT,
    last_inbound_at TEXT,
    waiting_since TEXT,                 -- first inbound message not yet answered
    last_activity_at TEXT NOT NULL,
    due_at TEXT,
    unread INTEGER NOT NULL DEFAULT 0,
    preview TEXT NOT NULL DEFAULT '',
    enrichment TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX conversations_activity ON conversations(last_activity_at DESC);
CREATE INDEX conversations_status_activity ON conversations(status, last_activity_at DESC);
CREATE INDEX conversations_contact ON conversations(contact_id, account, channel);
CREATE INDEX conversations_subject ON conversations(contact_id, norm_subject);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    channel TEXT NOT NULL,
    direction TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_name TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '[]',
    sent_at TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    html TEXT NOT NULL DEFAULT '',
    attachments TEXT NOT NULL DEFAULT '[]',
    auto_flags TEXT NOT NULL DEFAULT '{}',
    in_reply_to TEXT NOT NULL DEFAULT '',
    refs TEXT NOT NULL DEFAULT '[]',
    delivery_status TEXT NOT NULL DEFAULT '',
    defects TEXT NOT NULL DEFAULT '[]',
    content_hash TEXT NOT NULL DEFAULT '',
    edited INTEGER NOT NULL DEFAULT 0,
    extra TEXT NOT NULL DEFAULT '{}',
    raw BLOB,
    UNIQUE (account, provider_id)
);
CREATE INDEX messages_conversation ON messages(conversation_id, sent_at);

CREATE VIRTUAL TABLE messages_fts USING fts5(
    subject, sender, sender_name, text,
    content='messages', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, subject, sender, sender_name, text)
    VALUES (new.id, new.subject, new.sender, new.sender_name, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, subject, sender, sender_name, text)
    VALUES ('delete', old.id, old.subject, old.sender, old.sender_name, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF subject, sender, sender_name, text ON messages
BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, subject, sender, sender_name, text)
    VALUES ('delete', old.id, old.subject, old.sender, old.sender_name, old.text);
    INSERT INTO messages_fts(rowid, subject, sender, sender_name, text)
    VALUES (new.id, new.subject, new.sender, new.sender_name, new.text);
END;

CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX notes_conversation ON notes(conversation_id);

CREATE TABLE cursors (
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account, key)
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    attempted_at TEXT,
    claimed_by TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    provider_id TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Provider ids of messages deleted or erased here, as hashes only: a later sync skips them.
CREATE TABLE tombstones (
    key_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

CREATE TABLE auto_replies (
    contact_id INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX auto_replies_contact ON auto_replies(contact_id, at);

-- One decision of `run --once` per inbound message: a message is never decided (or answered) twice.
CREATE TABLE automation (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    decision TEXT NOT NULL,
    why TEXT NOT NULL,
    entry_id TEXT,
    score REAL,
    at TEXT NOT NULL
);
"""

# 2: the queue (open conversations by waiting time) without a scan of every conversation.
SCHEMA_V2 = """
CREATE INDEX conversations_waiting ON conversations(status, waiting_since)
    WHERE waiting_since IS NOT NULL;
"""


# 3: proposed merges (never silent). A proposal pairs two living contacts (lower id first) with
# the reason and the message that showed it; a pair is proposed once, ever, so a rejection is
# remembered.
# The store keeps the contact columns pointing at living contacts (a merge moves them to the
# surviving contact, an accepted one keeps only contact_a), so erasing a contact finds every row
# that names it. A hint is an address seen in a contact's message
# (a signature phone, a Reply-To, a shared Telegram phone) that no contact held yet: the first
# message from that address later proposes the merge.
SCHEMA_V3 = """
CREATE TABLE merge_proposals (
    id INTEGER PRIMARY KEY,
    contact_a INTEGER NOT NULL,
    contact_b INTEGER,                      -- NULL once accepted: the pair is one contact
    merged_id INTEGER,                      -- accepted: the id merged into contact_a (history)
    reason TEXT NOT NULL,
    message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    state TEXT NOT NULL DEFAULT 'open',     -- open | accepted | rejected
    created_at TEXT NOT NULL,
    resolved_at TEXT,
    CHECK (contact_b IS NULL OR contact_a < contact_b),
    UNIQUE (contact_a, contact_b)
);
CREATE INDEX merge_proposals_b ON merge_proposals(contact_b);
CREATE INDEX merge_proposals_state ON merge_proposals(state, created_at);

CREATE TABLE contact_hints (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                 -- email | phone | telegram
    address TEXT NOT NULL,
    reason TEXT NOT NULL,
    message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    UNIQUE (contact_id, kind, address)
);
CREATE INDEX contact_hints_address ON contact_hints(kind, address);
"""

# The conversation screen and the reply lease ask for one conversation's outbox rows.
SCHEMA_V4 = """
CREATE INDEX outbox_conversation ON outbox(conversation_id);
"""

MIGRATIONS: list[str] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4]
