"""Assignment at ingest: `[assignment]` config, rules, round-robin among agents present, presence
leases, the sync hook, and two processes assigning at once (both store backends)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_tui.config import AssignmentConfig, AssignmentRule, load_config, parse_config
from agent_tui.engine.assignment import (
    PRESENCE_PREFIX,
    Presence,
    assign_new,
    assigner_for,
    candidates,
    present_agents,
)
from agent_tui.engine.runtime import Engine
from agent_tui.engine.sync import sync_account
from agent_tui.errors import ConfigError
from agent_tui.model import Channel, Cursor, Direction, InboundMessage
from agent_tui.store import Store
from connectors.base import Connector, FetchBatch, OutboundMessage
from tests.conftest import REPO, reopen_store, store_sql

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ROUND_ROBIN = AssignmentConfig(mode="round-robin")


def inbound(channel: Channel, provider_id: str, sender: str, minutes: int = 0) -> InboundMessage:
    return InboundMessage(channel=channel, provider_id=provider_id, direction=Direction.INBOUND,
                          sender=sender, sender_name="", recipients=["shop"],
                          sent_at=T0 + timedelta(minutes=minutes),
                          subject="Frage" if channel is Channel.EMAIL else "", text="Hallo")


def customers(count: int, prefix: str = "k", channel: Channel = Channel.EMAIL
              ) -> list[InboundMessage]:
    """`count` messages from `count` different customers: `count` new conversations."""
    return [inbound(channel, f"{prefix}{i}@x", f"{prefix}{i}@example.org", i) for i in range(count)]


def ingest(store: Store, account: str, messages: list[InboundMessage]) -> list[int]:
    return store.ingest(account, messages, cursor_key="main", cursor=None).new_message_ids


def present(store: Store, *agents: str) -> None:
    for agent in agents:
        assert Presence(store, agent, instance=f"test:{agent}").renew()


def expire_presence(store: Store, agent: str) -> None:
    """As if the agent's instance died a while ago: its presence lease has run out."""
    store_sql(store, "UPDATE leases SET expires_at='2000-01-01T00:00:00.000000Z' "
                     "WHERE name LIKE ?", (f"{PRESENCE_PREFIX}{agent}@%",))


def assignees(store: Store) -> Counter[str | None]:
    return Counter(c.assignee for c in store.list_conversations(limit=1000))


# --- config ----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent-tui.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_assignment_config_is_typed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[assignment]
mode = "round-robin"

[[assignment.rule]]
channel = "whatsapp"
agent = "Mia"

[[assignment.rule]]
channel = ["email", "sms"]
tag = ["vip", "#complaint"]
agent = ["Jonas", "Lea"]
"""), env={})
    assert config.assignment == AssignmentConfig(mode="round-robin", rules=(
        AssignmentRule(agents=("Mia",), channels=("whatsapp",)),
        AssignmentRule(agents=("Jonas", "Lea"), channels=("email", "sms"),
                       tags=("vip", "complaint"))))
    assert config.assignment.active
    assert not load_config(write(tmp_path, "[agent]\nname = 'Mia'\n"), env={}).assignment.active


ERRORS = {
    "unknown mode": ('[assignment]\nmode = "random"\n', 2, "[assignment] 'mode'",
                     'expected one of none, round-robin, got "random"'),
    "unknown key": ('[assignment]\nmode = "none"\nagents = ["Mia"]\n', 3,
                    "[assignment] 'agents'", "unknown key"),
    "rule without agent": ('[assignment]\n\n[[assignment.rule]]\nchannel = "sms"\n', 3,
                           "[[assignment.rule]] #1 'agent'", "missing required key"),
    "rule channel": ('[[assignment.rule]]\nagent = "Mia"\nchannel = ["fax"]\n', 3,
                     "[[assignment.rule]] #1 'channel'", "expected one of email"),
    "rule agent type": ('[[assignment.rule]]\nchannel = "sms"\nagent = 3\n', 3,
                        "[[assignment.rule]] #1 'agent'",
                        "expected a string or an array of strings, got 3"),
    "rule empty agent": ('[[assignment.rule]]\nagent = ["Mia", " "]\n', 2,
                         "[[assignment.rule]] #1 'agent'", "expected an agent's name"),
    "rule unknown key": ('[[assignment.rule]]\nagent = "Mia"\nchanel = "sms"\n', 3,
                         "[[assignment.rule]] #1 'chanel'", "did you mean 'channel'"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_assignment_errors_name_file_line_and_key(tmp_path: Path,
                                                  case: tuple[str, int, str, str]) -> None:
    text, line, where, message = case
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}:{line}: {where}: ")
    assert message in str(info.value)


# --- rules, without a store ------------------------------------------------------------------


def test_first_matching_rule_with_someone_present_wins(tmp_path: Path) -> None:
    config = parse_config("""
[assignment]
mode = "none"
[[assignment.rule]]
channel = "whatsapp"
tag = "vip"
agent = "Lea"
[[assignment.rule]]
channel = "whatsapp"
agent = ["Mia", "Jonas"]
""", tmp_path / "agent-tui.toml").assignment

    class Conv:
        def __init__(self, channel: str, tags: list[str]) -> None:
            self.channel, self.tags = channel, tags

    vip, plain, mail = Conv("whatsapp", ["vip"]), Conv("whatsapp", []), Conv("email", ["vip"])
    everyone = ["Jonas", "Lea", "Mia"]
    assert candidates(config, vip, everyone) == ("Lea",)            # type: ignore[arg-type]
    assert candidates(config, vip, ["Jonas", "Mia"]) == ("Mia", "Jonas")  # type: ignore[arg-type]
    assert candidates(config, plain, everyone) == ("Mia", "Jonas")  # type: ignore[arg-type]
    assert candidates(config, mail, everyone) == ()                 # type: ignore[arg-type]
    assert candidates(config, plain, ["Lea"]) == ()                 # type: ignore[arg-type]
    round_robin = AssignmentConfig("round-robin", config.rules)
    assert candidates(round_robin, plain, ["Lea"]) == ("Lea",)      # type: ignore[arg-type]
    assert candidates(round_robin, mail, everyone) == tuple(everyone)  # type: ignore[arg-type]


# --- on the store (SQLite, then PostgreSQL) ----------------------------------------------------


def test_presence_expires_when_an_instance_dies(store: Store) -> None:
    present(store, "Mia", "Jonas")
    lea = Presence(store, "Lea", instance="otherhost:7")
    assert lea.renew() and lea.renew()
    assert present_agents(store) == ["Jonas", "Lea", "Mia"]
    expire_presence(store, "Lea")                                # her TUI was killed
    assert present_agents(store) == ["Jonas", "Mia"]
    assert lea.renew()                                             # she starts again
    assert present_agents(store) == ["Jonas", "Lea", "Mia"]
    lea.release()
    Presence(store, "Mia", instance="test:Mia").release()
    assert present_agents(store) == ["Jonas"]
    assert set(store.lease_holders(PRESENCE_PREFIX)) == {"presence:Jonas@test:Jonas"}


def test_round_robin_between_two_present_agents_never_the_absent_one(store: Store) -> None:
    present(store, "Mia", "Jonas", "Lea")
    expire_presence(store, "Lea")
    new = ingest(store, "mail", customers(6))
    assigned = assign_new(store, ROUND_ROBIN, new)
    assert [assigned[c] for c in sorted(assigned)] == ["Jonas", "Mia"] * 3
    assert assignees(store) == {"Jonas": 3, "Mia": 3}
    # A second message in a known conversation assigns nothing, even if it is unassigned now.
    first = min(assigned)
    store.assign(first, None)
    again = ingest(store, "mail", [inbound(Channel.EMAIL, "k0-2@x", "k0@example.org", 30)])
    assert store.get_message(again[0]).conversation_id == first
    assert assign_new(store, ROUND_ROBIN, again) == {}
    assert store.get_conversation(first).assignee is None
    # The turn carries on across batches: Jonas's newest is older than Mia's.
    more = assign_new(store, ROUND_ROBIN, ingest(store, "mail", customers(2, "n")))
    assert list(more.values()) == ["Jonas", "Mia"]


def test_nobody_present_or_mode_none_leaves_conversations_unassigned(store: Store) -> None:
    new = ingest(store, "mail", customers(3))
    assert assign_new(store, ROUND_ROBIN, new) == {}               # nobody runs agent-tui
    present(store, "Mia")
    assert assign_new(store, AssignmentConfig(mode="none"), new) == {}
    assert assigner_for(AssignmentConfig(mode="none"), store) is None
    assert assignees(store) == {None: 3}


def test_a_rule_by_channel_and_one_by_tag(store: Store) -> None:
    config = AssignmentConfig(mode="round-robin", rules=(
        AssignmentRule(agents=("Lea",), tags=("negative",)),
        AssignmentRule(agents=("Mia",), channels=("whatsapp",))))
    present(store, "Mia", "Jonas")
    chats = ingest(store, "wa", customers(3, "+4917000", Channel.WHATSAPP))
    mails = ingest(store, "mail", customers(2))
    angry = ingest(store, "mail", customers(1, "angry"))
    store.add_tag(store.get_message(angry[0]).conversation_id, "negative")   # as enrichment does
    assigned = assign_new(store, config, chats + mails + angry)
    by_channel = {store.get_conversation(c).channel: a for c, a in assigned.items()}
    assert by_channel[Channel.WHATSAPP] == "Mia"
    assert sorted(a for c, a in assigned.items()
                  if store.get_conversation(c).channel is Channel.WHATSAPP) == ["Mia"] * 3
    # Mail goes round, Jonas (never assigned) first; Lea's rule needs Lea, who is absent.
    assert [assigned[store.get_message(m).conversation_id] for m in mails + angry] == \
        ["Jonas", "Mia", "Jonas"]
    assert assignees(store) == {"Mia": 4, "Jonas": 2}
    present(store, "Lea")
    angry2 = ingest(store, "mail", customers(1, "angry2"))
    store.add_tag(store.get_message(angry2[0]).conversation_id, "negative")
    assert list(assign_new(store, config, angry2).values()) == ["Lea"]
    # A whatsapp message while Mia is away goes round the ones present.
    Presence(store, "Mia", instance="test:Mia").release()
    late = ingest(store, "wa", customers(1, "+4917999", Channel.WHATSAPP))
    assert list(assign_new(store, config, late).values()) == ["Jonas"]   # Lea had the last


class ScriptedFetch(Connector):
    """Yields the given batches from fetch(); nothing else is used by sync."""

    name = "mail"

    def __init__(self, batches: list[list[InboundMessage]]) -> None:
        self.batches = batches

    async def fetch(self, cursor: Cursor | None) -> AsyncIterator[FetchBatch]:
        for number, messages in enumerate(self.batches, 1):
            yield FetchBatch(messages, {"batch": number}, number == len(self.batches))

    async def send(self, message: OutboundMessage) -> str:
        raise AssertionError("not used")

    async def reconcile(self, message: OutboundMessage, attempted_at: datetime) -> str | None:
        raise AssertionError("not used")

    async def check(self) -> str:
        return "ok"


async def test_sync_assigns_new_conversations_after_each_batch(store: Store) -> None:
    present(store, "Mia", "Jonas")
    connector = ScriptedFetch([customers(3), [*customers(1, "z"),
                                              inbound(Channel.EMAIL, "k1-2@x", "k1@example.org")]])
    result = await sync_account(store, connector, "mail",
                                assign=assigner_for(ROUND_ROBIN, store))
    assert result.error == "" and result.new == 5
    assert sorted(result.assigned.values()) == ["Jonas", "Jonas", "Mia", "Mia"]
    assert assignees(store) == {"Jonas": 2, "Mia": 2}


async def test_a_running_engine_keeps_its_agent_present(store: Store, tmp_path: Path) -> None:
    config = parse_config('[agent]\nname = "Mia"\n', tmp_path / "agent-tui.toml")
    engine = Engine(config, store)
    task = asyncio.create_task(engine.run())
    await engine.started.wait()
    assert present_agents(store) == ["Mia"]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert present_agents(store) == []                   # released on the way out
    watcher = Engine(config, store, present=False)       # `sync --watch` is nobody
    task = asyncio.create_task(watcher.run())
    await watcher.started.wait()
    assert present_agents(store) == []
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --- two processes at once ---------------------------------------------------------------------

WORKER = """
import json, sys
from agent_tui.config import AssignmentConfig
from agent_tui.engine.assignment import assign_new
from agent_tui.model import Channel, Direction
from agent_tui.store import open_store
from agent_tui.model import InboundMessage
from datetime import UTC, datetime, timedelta

location, account, count, shared = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = open_store(location)
config = AssignmentConfig(mode="round-robin")
t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
print("ready", flush=True)
sys.stdin.readline()                      # both start together
assigned = {}
for start in range(0, count, 4):         # ingest in batches, assign after each (as sync does)
    batch = [InboundMessage(channel=Channel.SMS, provider_id=f"{account}-{i}",
                            sender=f"+49170{account}{i:04d}", direction=Direction.INBOUND,
                            sender_name="", recipients=[],
                            sent_at=t0 + timedelta(seconds=i), subject="", text="Hallo")
             for i in range(start, min(start + 4, count))]
    new = store.ingest(account, batch, cursor_key="main", cursor=None).new_message_ids
    assigned.update(assign_new(store, config, new))
    # ...and both try the conversations the parent stored before, at the same time
    assigned.update(assign_new(store, config, json.loads(shared)))
print(json.dumps(assigned), flush=True)
store.close()
"""


def test_two_processes_ingesting_at_once_never_assign_a_conversation_twice(store: Store) -> None:
    shared = ingest(store, "mail", customers(24))          # stored while nobody was present
    assert assign_new(store, ROUND_ROBIN, shared) == {}
    present(store, "Mia", "Jonas")
    location = str(getattr(store, "url", None) or store.path)
    workers = [subprocess.Popen(
        [sys.executable, "-c", WORKER, location, account, "20", json.dumps(shared)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for account in ("11", "22")]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results: list[dict[str, str]] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    first, second = ({int(k): v for k, v in r.items()} for r in results)
    assert not set(first) & set(second), "a conversation was assigned by both processes"
    total = {**first, **second}
    assert len(total) == 24 + 40
    check = reopen_store(store)
    try:
        for conversation_id, agent in total.items():
            assert check.get_conversation(conversation_id).assignee == agent
        counts = assignees(check)
    finally:
        check.close()
    assert set(counts) == {"Mia", "Jonas"} and abs(counts["Mia"] - counts["Jonas"]) <= 2
