"""Inbox views: which conversations the list shows. Built-in ones, plus saved views from the
config (`[[ui.view]]` tables with the same field names)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_tui.config import ASSIGNEE_ME, ASSIGNEE_NOBODY

ME = ASSIGNEE_ME            # assignee placeholder: the agent running the TUI
NOBODY = ASSIGNEE_NOBODY    # assignee placeholder: unassigned


@dataclass(frozen=True, slots=True)
class InboxView:
    name: str
    status: str | None = "open"     # None: every status
    channel: str | None = None
    assignee: str | None = None     # a name, ME or NOBODY; None: anyone
    tag: str | None = None
    queue: bool = False             # waiting customers ranked by waited time over the target
    overdue: bool = False           # only those past their channel's target (implies queue)

    @property
    def ranked(self) -> bool:
        return self.queue or self.overdue

    def with_channel(self, channel: str | None) -> InboxView:
        return dataclasses.replace(self, channel=channel)

    def with_tag(self, tag: str | None) -> InboxView:
        return dataclasses.replace(self, tag=tag)

    def store_assignee(self, agent_name: str) -> str | None:
        """The store's `assignee` filter: "" lists the unassigned ones."""
        if self.assignee == ME:
            return agent_name
        if self.assignee == NOBODY:
            return ""
        return self.assignee

    @classmethod
    def coerce(cls, saved: Mapping[str, Any] | object) -> InboxView:
        """A saved view from the config: a TOML table or a config dataclass with these fields."""
        if isinstance(saved, Mapping):
            fields = dict(saved)
        elif dataclasses.is_dataclass(saved) and not isinstance(saved, type):
            fields = dataclasses.asdict(saved)
        else:
            fields = vars(saved)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known})


BUILT_IN = (
    InboxView("queue", queue=True),
    InboxView("overdue", overdue=True),
    InboxView("open"),
    InboxView("mine", status=None, assignee=ME),
    InboxView("unassigned", assignee=NOBODY),
    InboxView("snoozed", status="snoozed"),
    InboxView("closed", status="closed"),
    InboxView("all", status=None),
)


def all_views(saved: Iterable[Mapping[str, Any] | object]) -> tuple[InboxView, ...]:
    return (*BUILT_IN, *(InboxView.coerce(s) for s in saved))
