"""The store: contacts, conversations, messages, notes, cursors, outbox, leases.

`open_configured_store(config.store)` opens the store a config names, its encryption key
resolved; `open_store(path)` returns the store for a `[store] path`: a SQLite file (the embedded
default), or for a postgresql:// URL the PostgreSQL store for teams on several hosts
(agent_tui.store.postgres; needs the `postgres` extra, psycopg 3). `agent-tui store migrate`
copies a SQLite store into an empty PostgreSQL database (agent_tui.store.migrate).

The API is the protocol `StoreBackend` (agent_tui.store.base). Layout: agent_tui.store.sql holds
every query once (`SqlStore`, SQL with `?` placeholders, the row mappers); `SqliteStore`
(agent_tui.store.sqlite) and `PostgresStore` (agent_tui.store.postgres) are its two dialects:
connection, transactions and locks, type conversion, a few SQL fragments, search, change
detection. agent_tui.store.schema describes the tables once and renders them for each.

Threads: a Store object has one connection guarded by a lock, so it may be shared by threads,
but a read then waits behind a running write transaction. A thread that must never wait (the
UI while a sync ingests) uses its own `store.reader()`: a second connection on the same file,
which WAL lets read while another writes. Other processes simply open the file themselves;
`data_version()` tells cheaply whether anyone committed since the last look.

API (agent_tui.store.sql.SqlStore):
- ingest(account, messages, cursor_key=, cursor=) -> IngestResult: messages and cursor in one
  transaction (invariant 1); dedupe by (account, provider_id); tombstoned ids skipped; threading
  (mail: In-Reply-To/References, then normalised subject + same contact within 14 days, never into a
  closed conversation; chat: one open conversation per account, channel and contact, a closed one
  reopens within 7 days). A known provider id with a new delivery status or an edit updates it.
- get_cursor(account, key); record_outbound(account, message, conversation_id=); reader().
- list_conversations(status=, channel=, assignee=, tag=, limit=, offset=) newest activity first,
  count_conversations(...), waiting_conversations(), get_conversation(id), get_messages(id),
  get_message(id), get_raw(id), get_contact(id), contact_conversations(id), search(query, limit),
  iter_export(contact_id=), get_notes(id), data_version().
- set_status, wake_snoozed, assign, set_priority, add_tag, remove_tag, mark_read, set_enrichment,
  set_due, add_note, delete_message (tombstones the provider id).
- Outbox: outbox_enqueue (idempotent by key), outbox_claim_next, outbox_mark_sent,
  outbox_retry_later, outbox_mark_failed, outbox_mark_uncertain, outbox_requeue, outbox_cancel,
  outbox_stuck_sending, outbox_rows, outbox_counts. Illegal moves raise IllegalTransition.
- Leases: acquire_lease, renew_lease, release_lease, lease_holder.
- Contacts: find_contact, identity_owner, merge_contacts, split_contact, erase_contact (Art. 17:
  hashed tombstones keep the messages from coming back), purge_closed (retention).
- Proposed merges (never silent): propose_merge (a pair once, ever; never one rejected or a
  contact with itself), merge_proposals, reject_merge; merge_contacts accepts the pair's proposal,
  erase_contact deletes every proposal and hint naming the person. add_contact_hint and
  contact_hints remember an address seen in a message before any contact holds it;
  get_message_extra reads a message's connector extras (Telegram shared_phone, mail reply_to).
- Automation: record_auto_reply, last_auto_reply, automation_pending, record_decision (with
  the reply it queues, in one transaction),
  automation_decisions.

Schema: agent_tui.store.schema, upgraded on open by numbered steps (SQLite: `PRAGMA
user_version`, each step in a transaction; PostgreSQL: the row of `agent_tui_schema`); a store
from a newer agent-tui is refused with StoreError. The SQLite file is created 0600 (its
directory 0700). Benchmark against plain sqlite3: scripts/bench/store.py. With `[store]
encryption_key` the file is encrypted at rest with SQLCipher; every SQLite connection to the store
is opened by agent_tui.store.encryption.connect.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent_tui.errors import UsageError
from agent_tui.store.base import (
    ContactHint,
    IllegalTransition,
    IngestResult,
    MergeProposal,
    OutboxRow,
    QueuedReply,
    SearchHit,
    StoreBackend,
)
from agent_tui.store.sqlite import SqliteStore

# `Store` is the concrete SQLite class, as existing callers (and scripts that construct it)
# expect; backend-neutral code annotates with StoreBackend.
Store = SqliteStore

__all__ = ["ContactHint", "IllegalTransition", "IngestResult", "MergeProposal", "OutboxRow",
           "QueuedReply", "SearchHit", "Store", "StoreBackend", "open_configured_store",
           "open_store"]

if TYPE_CHECKING:
    def _sqlite_is_a_backend(store: SqliteStore) -> StoreBackend:
        return store   # mypy proves here that SqliteStore implements the whole protocol

    from agent_tui.config import StoreConfig
    from agent_tui.store.postgres import PostgresStore

    def _postgres_is_a_backend(store: PostgresStore) -> StoreBackend:
        return store   # ... and PostgresStore too


def open_store(path: str | Path, *, key: str | None = None) -> StoreBackend:
    """The SQLite store for a file path, the PostgreSQL store for a postgresql:// URL.

    `key`: the SQLite file's encryption key, resolved from `[store] encryption_key` with
    `agent_tui.store.encryption.store_key(config.store)`; None for an unencrypted file."""
    if str(path).startswith(("postgresql://", "postgres://")):
        try:
            from agent_tui.store.postgres import PostgresStore
        except ImportError:
            raise UsageError("[store] path: a PostgreSQL store needs psycopg: "
                             "pip install 'agent-tui[postgres]'") from None
        return PostgresStore(str(path))
    return SqliteStore(path, key=key)


def open_configured_store(store: StoreConfig) -> StoreBackend:
    """The store a config's `[store]` table names, with its encryption key resolved: what every
    command, the TUI, `run --once`, `doctor`, `stats` and the demo open.

    Raises SecretError (the key cannot be had) and StoreError (it does not open the file)."""
    from agent_tui.store.encryption import store_key

    if store.is_postgres:
        from urllib.parse import unquote

        from agent_tui.config import postgres_url_password
        from agent_tui.secrets import register_secret

        password = postgres_url_password(store.path)
        if password:        # allowed by allow_plaintext_secrets: still never in logs or errors
            register_secret(password)
            register_secret(unquote(password))
    return open_store(store.path, key=store_key(store))
