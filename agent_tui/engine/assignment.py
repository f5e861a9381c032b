"""Assignment at ingest: who gets a new conversation (`[assignment]` in the config).

A new conversation (one whose every message arrived in the stored batch; a later message in it
changes nothing) goes to the agents of the first `[[assignment.rule]]` that matches its channel
and tags, else, with `mode = "round-robin"`, to the agents present, in turn. Only an agent who
is present gets one: with nobody present it stays unassigned (the `unassigned` view shows it).

Presence: every running agent-tui (its Engine) holds a lease `presence:<agent>@<instance>` in
the store and renews it; when the instance dies the lease expires after PRESENCE_SECONDS, and
the agent is absent from then on. The store picks the agent whose newest conversation is the
oldest (`assign_unassigned`) in one transaction with `WHERE assignee IS NULL`, so several
processes syncing at once never assign a conversation twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from agent_tui.config import AssignmentConfig
from agent_tui.engine.leases import holder_id
from agent_tui.engine.sync import Assigner
from agent_tui.errors import AgentTuiError
from agent_tui.model import Conversation
from agent_tui.store import StoreBackend

log = logging.getLogger(__name__)

PRESENCE_PREFIX = "presence:"
PRESENCE_SECONDS = 60.0          # an instance that stops renewing is absent after this
PRESENCE_RENEW_SECONDS = 15.0


def presence_lease_name(agent: str, instance: str) -> str:
    return f"{PRESENCE_PREFIX}{agent}@{instance}"


def present_agents(store: StoreBackend) -> list[str]:
    """The agents with a running agent-tui (an unexpired presence lease), sorted by name."""
    names = store.lease_holders(PRESENCE_PREFIX)
    return sorted({name.removeprefix(PRESENCE_PREFIX).rpartition("@")[0] for name in names}
                  - {""})


@dataclass(slots=True)
class Presence:
    """One instance's presence lease for one agent: `renew()` it more often than it expires,
    `release()` it on the way out (a crash leaves it to expire)."""

    store: StoreBackend
    agent: str
    instance: str = ""
    seconds: float = PRESENCE_SECONDS

    def __post_init__(self) -> None:
        self.instance = self.instance or holder_id()

    @property
    def lease(self) -> str:
        return presence_lease_name(self.agent, self.instance)

    def renew(self) -> bool:
        """Take or prolong the lease; False if the store refused (it never should: the name is
        this instance's own)."""
        if self.store.renew_lease(self.lease, self.instance, self.seconds):
            return True
        return self.store.acquire_lease(self.lease, self.instance, self.seconds)

    def release(self) -> None:
        self.store.release_lease(self.lease, self.instance)


def candidates(config: AssignmentConfig, conversation: Conversation,
               present: Sequence[str]) -> tuple[str, ...]:
    """The agents who may get this conversation, in the order of their turn: those present of
    the first matching rule that has any present, else (round-robin) everyone present."""
    here = set(present)
    for rule in config.rules:
        if rule.matches(str(conversation.channel), conversation.tags):
            agents = tuple(a for a in rule.agents if a in here)
            if agents:
                return agents
    if config.mode == "round-robin":
        return tuple(sorted(here))
    return ()


def assign_new(store: StoreBackend, config: AssignmentConfig,
               message_ids: Sequence[int]) -> dict[int, str]:
    """Assign the conversations these newly stored messages started; returns id -> agent."""
    if not config.active or not message_ids:
        return {}
    started = store.conversations_started_by(message_ids)
    if not started:
        return {}
    present = present_agents(store)
    if not present:
        log.info("%d new conversation(s) left unassigned: no agent present", len(started))
        return {}
    groups: dict[tuple[str, ...], list[int]] = {}
    for conversation_id in started:
        conversation = store.get_conversation(conversation_id)
        if conversation.assignee is not None:
            continue
        agents = candidates(config, conversation, present)
        if agents:
            groups.setdefault(agents, []).append(conversation_id)
    assigned: dict[int, str] = {}
    for agents, conversation_ids in groups.items():
        assigned.update(store.assign_unassigned(conversation_ids, agents))
    return assigned


def assigner_for(config: AssignmentConfig, store: StoreBackend) -> Assigner | None:
    """The hook sync calls after each stored batch, or None when nothing is configured."""
    if not config.active:
        return None

    def assign(message_ids: list[int]) -> dict[int, str]:
        try:
            return assign_new(store, config, message_ids)
        except AgentTuiError as exc:    # the messages are stored; a person can assign them
            log.warning("assignment of new conversations failed: %s", exc)
            return {}

    return assign
