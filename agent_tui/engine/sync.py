"""Sync: connectors -> store.

Each batch a connector yields is stored together with the cursor that covers it, in one transaction
(invariant 1); a crash between batches loses nothing and the next run resumes from the last cursor.
Only one process fetches an account at a time (invariant 10): the fetch lease is held in the store.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agent_tui.engine.contacts import DEFAULT_REGION, propose_merges
from agent_tui.engine.leases import dead_here, describe, holder_id
from agent_tui.errors import StoreError
from agent_tui.store import StoreBackend
from connectors.base import AuthError, ConflictError, Connector, ConnectorError

log = logging.getLogger(__name__)

CURSOR_KEY = "main"
FETCH_LEASE_SECONDS = 120


def fetch_lease_name(account: str) -> str:
    return f"fetch:{account}"


@dataclass(slots=True)
class SyncResult:
    account: str
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    skipped: int = 0
    seconds: float = 0.0
    error: str = ""
    error_kind: str = ""            # "auth" | "conflict" | "network" | "busy" | "store"
    new_message_ids: list[int] = field(default_factory=list)
    conversation_ids: set[int] = field(default_factory=set)
    assigned: dict[int, str] = field(default_factory=dict)   # new conversation -> agent

    @property
    def ok(self) -> bool:
        return not self.error or self.error_kind == "busy"

    def summary_line(self) -> str:
        if self.error_kind == "busy":
            return f"{self.account}: NOT FETCHED: {self.error}"
        if self.error:
            return f"{self.account}: FAILED: {self.error}"
        return (f"{self.account}: {self.new} new, {self.duplicates} already stored"
                f"{f', {self.skipped} deleted here' if self.skipped else ''} "
                f"({self.seconds:.1f} s)")

    def as_json(self) -> dict[str, Any]:
        return {"account": self.account, "ok": self.ok, "fetched": self.fetched, "new": self.new,
                "duplicates": self.duplicates, "skipped": self.skipped,
                "seconds": round(self.seconds, 3), "error": self.error or None,
                "error_kind": self.error_kind or None}


Progress = Callable[[str, int], None]
Enricher = Callable[[list[int]], Awaitable[int]]
Assigner = Callable[[list[int]], dict[int, str]]    # agent_tui.engine.assignment


async def after_ingest(store: StoreBackend, new_message_ids: list[int], *,
                       enrich: Enricher | None, assign: Assigner | None,
                       region: str = DEFAULT_REGION) -> dict[int, str]:
    """What follows storing new messages, however they came (fetched, or by webhook): merge
    proposals (never merges), enrichment, then assignment - after enrichment, so a rule by tag
    sees its `negative` tag. Returns the new conversations assigned, with their agent."""
    if not new_message_ids:
        return {}
    propose_merges(store, new_message_ids, region=region)
    if enrich is not None:
        await enrich(new_message_ids)
    return assign(new_message_ids) if assign is not None else {}


def _acquire_fetch_lease(store: StoreBackend, lease: str, holder: str) -> bool:
    """Take the lease, or take it over from a process of this host that died holding it (a
    killed sync restarted at once must not wait for the lease to expire)."""
    if store.acquire_lease(lease, holder, FETCH_LEASE_SECONDS):
        return True
    current = store.lease_holder(lease)
    if current is None or not dead_here(current):
        return False
    log.info("taking over %s from %s, which no longer runs", lease, current)
    store.release_lease(lease, current)     # only if still that holder; two restarts race safely
    return store.acquire_lease(lease, holder, FETCH_LEASE_SECONDS)


async def sync_account(store: StoreBackend, connector: Connector, account: str, *,
                       progress: Progress | None = None,
                       enrich: Enricher | None = None,
                       assign: Assigner | None = None,
                       region: str = DEFAULT_REGION) -> SyncResult:
    """Fetch everything new for one account and store it batch by batch."""
    result = SyncResult(account)
    started = time.monotonic()
    holder = holder_id()
    lease = fetch_lease_name(account)
    try:
        if not _acquire_fetch_lease(store, lease, holder):
            who = store.lease_holder(lease)
            result.error = (f"another agent-tui process ({describe(who) if who else 'unknown'}) "
                            "is fetching this account; what it fetches lands in the same store")
            result.error_kind = "busy"
            return result
    except StoreError as exc:
        result.error, result.error_kind = str(exc), "store"
        return result
    try:
        cursor = store.get_cursor(account, CURSOR_KEY)
        async for batch in connector.fetch(cursor):
            # Enrichment of the last batch may have outlasted the lease: another process may be
            # fetching now, and storing this batch (and its cursor) would race it.
            if not store.renew_lease(lease, holder, FETCH_LEASE_SECONDS):
                who = store.lease_holder(lease)
                result.error = (f"lost the fetch lease to {describe(who) if who else 'nobody'}; "
                                "stopped before storing more (nothing is lost: the next run "
                                "fetches the rest)")
                result.error_kind = "busy"
                break
            outcome = store.ingest(account, batch.messages, cursor_key=CURSOR_KEY,
                                   cursor=batch.cursor)
            result.fetched += len(batch.messages)
            result.new += outcome.new
            result.duplicates += outcome.duplicates
            result.skipped += outcome.skipped
            result.new_message_ids.extend(outcome.new_message_ids)
            result.conversation_ids.update(outcome.conversation_ids)
            if batch.read_elsewhere:
                store.mark_read_elsewhere(account, batch.read_elsewhere)
            result.assigned.update(await after_ingest(
                store, outcome.new_message_ids, enrich=enrich, assign=assign, region=region))
            if progress:
                progress(account, result.fetched)
    except AuthError as exc:
        result.error, result.error_kind = str(exc), "auth"
    except ConflictError as exc:
        result.error, result.error_kind = str(exc), "conflict"
    except ConnectorError as exc:
        result.error, result.error_kind = str(exc), "network"
    except StoreError as exc:
        # The database went away (a restart, a network cut): the batch and its cursor were
        # not stored together, so the next sync fetches it again; nothing is lost.
        result.error, result.error_kind = str(exc), "store"
    finally:
        with contextlib.suppress(StoreError):     # unreleased, the lease expires by itself
            store.release_lease(lease, holder)
        result.seconds = time.monotonic() - started
    if result.error:
        log.warning("sync %s failed: %s", account, result.error)
    return result
