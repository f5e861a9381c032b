"""The fetch lease across crashes (issue 19): a dead holder of this host is taken over at once,
a live one or one on another host is waited for, and a lost lease stops the fetch before the next
batch is stored."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

from agent_tui.engine.leases import dead_here, holder_id
from agent_tui.engine.sync import FETCH_LEASE_SECONDS, fetch_lease_name, sync_account
from connectors.base import Cursor, FetchBatch
from tests.unit.test_assignment import ScriptedFetch, customers

HOST = socket.gethostname()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_holders_of_this_host_are_judged_by_pid_and_start_time() -> None:
    assert not dead_here(holder_id())
    own_pid, _, started = holder_id().partition(":")[2].partition(":")
    assert own_pid == str(os.getpid()) and started
    assert dead_here(f"{HOST}:{_dead_pid()}:123")
    # A live pid with another start time is a new process that got a dead holder's pid.
    assert dead_here(f"{HOST}:{os.getpid()}:1")
    assert not dead_here(f"other-host.example:{_dead_pid()}:123")    # never judged from here
    assert not dead_here(f"{HOST}:{os.getpid()}")                      # the old form: pid only
    assert dead_here(f"{HOST}:{_dead_pid()}")
    assert not dead_here("garbage")


async def test_a_dead_holders_lease_is_taken_over_at_once(store: Any) -> None:
    lease = fetch_lease_name("mail")
    crashed = f"{HOST}:{_dead_pid()}:999"
    assert store.acquire_lease(lease, crashed, FETCH_LEASE_SECONDS)
    result = await sync_account(store, ScriptedFetch([customers(2)]), "mail")
    assert result.error == "" and result.new == 2


async def test_a_live_holder_is_left_alone_and_the_summary_says_so(store: Any) -> None:
    lease = fetch_lease_name("mail")
    elsewhere = f"other-host.example:{_dead_pid()}:999"
    assert store.acquire_lease(lease, elsewhere, FETCH_LEASE_SECONDS)
    result = await sync_account(store, ScriptedFetch([customers(2)]), "mail")
    assert result.new == 0 and result.error_kind == "busy"
    assert result.summary_line().startswith("mail: NOT FETCHED: another agent-tui process "
                                            f"(pid {elsewhere.split(':')[1]} on other-host")
    assert store.lease_holder(lease) == elsewhere


class StolenBetweenBatches(ScriptedFetch):
    """After the first batch is stored, another process takes the lease (ours had expired)."""

    def __init__(self, store: Any, batches: list[Any]) -> None:
        super().__init__(batches)
        self.store = store

    async def fetch(self, cursor: Cursor | None) -> AsyncIterator[FetchBatch]:
        lease = fetch_lease_name("mail")
        async for batch in super().fetch(cursor):
            yield batch
            holder = self.store.lease_holder(lease)
            self.store.release_lease(lease, holder)
            assert self.store.acquire_lease(lease, "other-host.example:1:1", FETCH_LEASE_SECONDS)


async def test_a_lost_lease_stops_the_fetch_before_the_next_batch_is_stored(store: Any) -> None:
    connector = StolenBetweenBatches(store, [customers(2), customers(3, "z")])
    result = await sync_account(store, connector, "mail")
    assert result.new == 2 and result.error_kind == "busy"
    assert "lost the fetch lease to pid 1 on other-host.example" in result.error
    assert store.get_cursor("mail", "main") == {"batch": 1}      # the second batch's cursor: not
    assert store.lease_holder(fetch_lease_name("mail")) == "other-host.example:1:1"
