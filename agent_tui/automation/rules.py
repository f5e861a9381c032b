"""`[[rule]]` tables from the config: match new inbound messages, collect actions.

Match keys (all optional, all must hold):
  channel     "email" or a list          account   account name or a list
  sender      glob pattern(s) on the sender address, e.g. "*@bigcustomer.example"
  tags        tag(s) the conversation must carry
  entry       knowledge entry id(s) the top suggestion must be
  min_score   the top suggestion's score must reach this
  time        "business_hours" | "after_hours"
  urgency     "high" | "normal" (when an urgency marker is known)
Actions: tag (str or list), assign, priority (low|normal|high), close (bool),
  reply (a knowledge entry id, or "suggestion" for the top suggestion),
  after_hours (bool: reply with `[automation] after_hours_entry` outside business hours).
Rules apply in order; later actions of the same kind win, tags add up, the first reply wins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_tui.config import Rule
from agent_tui.errors import ConfigError

MATCH_KEYS = {"channel", "account", "sender", "tags", "entry", "min_score", "time", "urgency"}
ACTION_KEYS = {"tag", "assign", "priority", "close", "reply", "after_hours"}


@dataclass(frozen=True, slots=True)
class MessageFacts:
    channel: str
    account: str
    sender: str
    tags: frozenset[str]
    top_entry: str | None
    top_score: float
    business_hours: bool
    urgency: str | None = None


@dataclass(slots=True)
class Decision:
    rules: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    assign: str | None = None
    priority: str | None = None
    close: bool = False
    reply_entry: str | None = None       # an entry id, or "suggestion"
    reply_rule: str | None = None
    after_hours: bool = False


def _values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def validate_rules(rules: Sequence[Rule]) -> None:
    for rule in rules:
        for key in rule.match:
            if key not in MATCH_KEYS:
                raise ConfigError(f"unknown match key (known: {', '.join(sorted(MATCH_KEYS))})",
                                  key=f"rule {rule.name!r} match.{key}")
        for key in rule.actions:
            if key not in ACTION_KEYS:
                raise ConfigError(f"unknown action (known: {', '.join(sorted(ACTION_KEYS))})",
                                  key=f"rule {rule.name!r} actions.{key}")
        time_value = rule.match.get("time")
        if time_value is not None and time_value not in ("business_hours", "after_hours"):
            raise ConfigError("expected 'business_hours' or 'after_hours'",
                              key=f"rule {rule.name!r} match.time")


def matches(match: Mapping[str, Any], facts: MessageFacts) -> bool:
    for key, wanted in match.items():
        if key == "channel" and facts.channel not in _values(wanted):
            return False
        if key == "account" and facts.account not in _values(wanted):
            return False
        if key == "sender" and not any(fnmatch.fnmatch(facts.sender.lower(), p.lower())
                                       for p in _values(wanted)):
            return False
        if key == "tags" and not set(_values(wanted)) <= facts.tags:
            return False
        if key == "entry" and facts.top_entry not in _values(wanted):
            return False
        if key == "min_score" and facts.top_score < float(wanted):
            return False
        if key == "time" and (wanted == "business_hours") != facts.business_hours:
            return False
        if key == "urgency" and facts.urgency not in _values(wanted):
            return False
    return True


def decide(rules: Sequence[Rule], facts: MessageFacts) -> Decision:
    decision = Decision()
    for rule in rules:
        if not matches(rule.match, facts):
            continue
        decision.rules.append(rule.name)
        actions = rule.actions
        decision.tags.extend(t for t in _values(actions.get("tag", [])) if t not in decision.tags)
        if "assign" in actions:
            decision.assign = str(actions["assign"])
        if "priority" in actions:
            decision.priority = str(actions["priority"])
        if actions.get("close"):
            decision.close = True
        if decision.reply_entry is None and "reply" in actions:
            decision.reply_entry, decision.reply_rule = str(actions["reply"]), rule.name
        if actions.get("after_hours"):
            decision.after_hours = True
    return decision
