"""`agent-tui run --once`: what cron runs. Sync, decide, answer the routine, flush, report.

One run at a time (a lock file next to a SQLite store, an advisory lock on PostgreSQL that holds
across hosts; a second run exits 0 at once). Accounts whose fetch lease a TUI
holds are not fetched (invariant 10): the run works from the store and the outbox for them. Every
inbound message gets exactly one recorded decision, so a message is never answered twice across
runs; the per-contact window (invariant 5) holds even across channels of one contact.

`--dry-run` does not fetch (fetching would move cursors), decides on what the store holds, prints
the decisions and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.automation.rules import Decision, MessageFacts, decide, validate_rules
from agent_tui.automation.safety import refusal_reason
from agent_tui.config import Config
from agent_tui.engine.outbox import FlushResult
from agent_tui.engine.replies import automatic_reply_key, build_reply
from agent_tui.engine.runtime import account_address, flush_outbox, sync_once
from agent_tui.engine.suggestions import load_suggester, render_context
from agent_tui.engine.sync import SyncResult
from agent_tui.insight.urgency import assess
from agent_tui.knowledge.loader import load_knowledge
from agent_tui.knowledge.render import render
from agent_tui.knowledge.suggest import Suggester
from agent_tui.model import Message
from agent_tui.store import QueuedReply, StoreBackend, open_configured_store

# Messages older than this when automation first sees them get no automatic answer: turning
# auto_reply on must not answer last month's mail.
MAX_AGE = timedelta(hours=24)


@dataclass(slots=True)
class MessageReport:
    message_id: int
    conversation_id: int
    account: str
    sender: str
    decision: str              # replied | would-reply | left | skipped | actions
    why: str
    entry: str | None = None
    score: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "conversation_id": self.conversation_id,
                "account": self.account, "decision": self.decision, "why": self.why,
                "entry": self.entry, "score": None if self.score is None else round(self.score, 3)}


@dataclass(slots=True)
class RunReport:
    dry_run: bool
    syncs: list[SyncResult] = field(default_factory=list)
    messages: list[MessageReport] = field(default_factory=list)
    flush: FlushResult | None = None
    purged: int = 0
    alerts: list[str] = field(default_factory=list)

    @property
    def failed_accounts(self) -> list[str]:
        return [s.account for s in self.syncs if not s.ok]

    def as_json(self) -> dict[str, Any]:
        sent: dict[str, int] = {}
        failed: dict[str, int] = {}
        for o in self.flush.outcomes if self.flush else []:
            if o.state in ("sent", "reconciled"):
                sent[o.account] = sent.get(o.account, 0) + 1
            elif o.state in ("failed", "uncertain"):
                failed[o.account] = failed.get(o.account, 0) + 1
        accounts = [{**s.as_json(), "sent": sent.get(s.account, 0),
                     "send_failed": failed.get(s.account, 0)} for s in self.syncs]
        return {"format": 1, "dry_run": self.dry_run, "accounts": accounts,
                "messages": [m.as_json() for m in self.messages],
                "outbox": [o.as_json() for o in (self.flush.outcomes if self.flush else [])],
                "purged_conversations": self.purged, "early_warning": self.alerts}

    def text(self) -> str:
        lines = [s.summary_line() for s in self.syncs]
        if self.dry_run:
            lines.append("dry run: nothing fetched, nothing sent, nothing changed")
        for m in self.messages:
            score = f" {m.score:.2f}" if m.score is not None else ""
            entry = f" [{m.entry}{score}]" if m.entry else ""
            lines.append(f"message {m.message_id} (conversation {m.conversation_id}, "
                         f"{m.account}): {m.decision}{entry}: {m.why}")
        if self.flush:
            lines.append(f"outbox: {self.flush.count('sent')} sent, "
                         f"{self.flush.count('reconciled')} reconciled, "
                         f"{self.flush.count('retry')} to retry, {self.flush.count('failed')} "
                         f"failed, {self.flush.count('uncertain')} uncertain")
        if self.purged:
            lines.append(f"retention: {self.purged} closed conversations purged")
        lines.extend(f"early warning: {alert}" for alert in self.alerts)
        return "\n".join(lines) + "\n"


def lock_path(config: Config) -> Path:
    """The lock file of a SQLite store's runs (a PostgreSQL store locks in the database)."""
    return Path(config.store.path).parent / "run-once.lock"


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[bool]:
    """Yield True when this process holds the lock; the OS frees it if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)


class Automation:
    """Decides for each new inbound message: rules, then perhaps an automatic reply."""

    def __init__(self, config: Config, store: StoreBackend, suggester: Suggester | None, *,
                 now: datetime, dry_run: bool) -> None:
        validate_rules(config.rules)
        self.config = config
        self.store = store
        self.suggester = suggester
        self.now = now
        self.dry_run = dry_run
        auto = config.automation
        self.hours = BusinessHours.from_config(auto)
        self.window = timedelta(hours=auto.window_hours)
        self.own_addresses = {account_address(a).lower() for a in config.accounts}
        self.kb = load_knowledge(config.knowledge.path) if suggester is not None else None
        # Contacts answered in this run count at once: two messages of one contact in one run
        # get one reply.
        self.answered_now: dict[int, datetime] = {}

    def decide_all(self) -> list[MessageReport]:
        reports = []
        for message in self.store.automation_pending(since=self.now - MAX_AGE):
            report, reply = self.decide_one(message)
            reports.append(report)
            if not self.dry_run:
                # The decision and its reply in one transaction, the reply's key derived from
                # the message: a crash leaves both or neither, and a rerun finds it decided.
                self.store.record_decision(message.id, report.decision, report.why,
                                           entry_id=report.entry, score=report.score,
                                           at=self.now, reply=reply)
        return reports

    def decide_one(self, message: Message) -> tuple[MessageReport, QueuedReply | None]:
        """The decision on one message and the reply to queue with it (None: no reply)."""
        conversation = self.store.get_conversation(message.conversation_id)
        report = MessageReport(message.id, conversation.id, message.account, message.sender,
                               "left", "no rule or automatic answer applies")
        top = None
        if self.suggester is not None:
            found = self.suggester.suggest(message.text, subject=message.subject,
                                           channel=str(message.channel), top=1)
            top = found[0] if found else None
        if top is not None:
            report.entry, report.score = top.entry_id, top.score
        is_open = self.hours.is_open(self.now) if self.hours else True
        facts = MessageFacts(channel=str(message.channel), account=message.account,
                             sender=message.sender, tags=frozenset(conversation.tags),
                             top_entry=top.entry_id if top else None,
                             top_score=top.score if top else 0.0, business_hours=is_open,
                             urgency=assess(message.text, message.subject).urgency)
        decision = decide(self.config.rules, facts)
        if decision.rules:
            report.decision, report.why = "actions", "rules: " + ", ".join(decision.rules)
            if not self.dry_run:
                self._apply(conversation.id, decision)
        entry_id = self._reply_entry(decision, top, is_open)
        if entry_id is None:
            return report, None
        refusal = self._refusal(message, conversation.contact_id, entry_id, top)
        report.entry = entry_id
        if refusal is not None:
            report.decision = "left" if report.decision == "left" else report.decision
            report.why = f"no automatic reply: {refusal}"
            return report, None
        entry = self.kb.get(entry_id) if self.kb else None
        assert entry is not None  # _refusal checked it
        rendered = render(entry, render_context(self.config, conversation), str(message.channel))
        if not rendered.complete:
            report.why = ("no automatic reply: placeholders unfilled: "
                          + ", ".join(rendered.missing))
            return report, None
        self.answered_now[conversation.contact_id] = self.now
        if self.dry_run:
            report.decision, report.why = "would-reply", f"entry {entry_id}"
            return report, None
        reply = build_reply(self.store, conversation.id, rendered.text,
                            author="agent-tui (automatic)", automatic=True, entry_id=entry_id,
                            idempotency_key=automatic_reply_key(message))
        report.decision, report.why = "replied", f"entry {entry_id}"
        return report, reply

    def _reply_entry(self, decision: Decision, top: Any, is_open: bool) -> str | None:
        auto = self.config.automation
        if decision.after_hours and not is_open and auto.after_hours_entry:
            return auto.after_hours_entry
        if decision.reply_entry == "suggestion":
            return top.entry_id if top is not None else None
        if decision.reply_entry is not None:
            return decision.reply_entry
        # Without a rule: an `auto = true` entry with enough score answers on its own.
        if top is not None and top.entry.auto:
            return str(top.entry_id)
        return None

    def _refusal(self, message: Message, contact_id: int, entry_id: str,
                 top: Any) -> str | None:
        auto = self.config.automation
        if not auto.auto_reply:
            return "automation.auto_reply is off"
        # Safety first (RFC 3834): a bounce is reported as a bounce, whatever its score.
        last = self.answered_now.get(contact_id) or self.store.last_auto_reply(contact_id)
        unsafe = refusal_reason(channel=message.channel, sender=message.sender,
                                auto=message.auto, own_addresses=self.own_addresses,
                                last_auto_reply=last, now=self.now, window=self.window)
        if unsafe is not None:
            return unsafe
        entry = self.kb.get(entry_id) if self.kb else None
        if entry is None:
            return f"no knowledge entry {entry_id!r}"
        if not entry.auto:
            return f"entry {entry_id} is not marked auto = true"
        is_after_hours_notice = entry_id == auto.after_hours_entry
        if not is_after_hours_notice:
            if top is None or top.entry_id != entry_id:
                return f"entry {entry_id} is not the top suggestion"
            if top.score < auto.min_score:
                return f"score {top.score:.2f} below min_score {auto.min_score:.2f}"
        return None

    def _apply(self, conversation_id: int, decision: Decision) -> None:
        for tag in decision.tags:
            self.store.add_tag(conversation_id, tag)
        if decision.assign:
            self.store.assign(conversation_id, decision.assign)
        if decision.priority:
            self.store.set_priority(conversation_id, decision.priority)
        if decision.close:
            from agent_tui.model import ConversationStatus

            self.store.set_status(conversation_id, ConversationStatus.CLOSED)


async def run_once(config: Config, store: StoreBackend, *, dry_run: bool,
                   now: datetime | None = None) -> RunReport:
    report = RunReport(dry_run=dry_run)
    if not dry_run:
        report.syncs = await sync_once(config, store, progress=False)
    suggester = load_suggester(config)
    automation = Automation(config, store, suggester, now=now or datetime.now(UTC),
                            dry_run=dry_run)
    report.messages = automation.decide_all()
    if not dry_run:
        report.flush = await flush_outbox(config, store)
        from agent_tui.insight.early_warning import alerts_from_store

        report.alerts = [a.message for a in alerts_from_store(store, automation.now)]
        keep = config.privacy.keep_closed_days
        if keep is not None:
            report.purged = store.purge_closed(automation.now - timedelta(days=keep))
    return report


def _holder(lock: Path) -> str:
    """" (pid N)" of the run holding the lock, as it wrote it; "" when unreadable."""
    try:
        pid = lock.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def cmd_run_once(config: Config, *, dry_run: bool, as_json: bool,
                 stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    with _exclusive(config) as (store, busy):
        if store is None:
            if as_json:
                json.dump({"format": 1, "skipped": busy}, out)
                out.write("\n")
            else:
                out.write(busy + "\n")
            return 0
        report = asyncio.run(run_once(config, store, dry_run=dry_run))
    if as_json:
        json.dump(report.as_json(), out, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(report.text())
    return 1 if report.failed_accounts else 0


@contextlib.contextmanager
def _exclusive(config: Config) -> Iterator[tuple[StoreBackend | None, str]]:
    """The open store while this is the only run, else (None, why not). SQLite: a lock file
    next to the store, taken before opening it. PostgreSQL: an advisory lock, which holds
    across hosts, so cron on two machines never decides on one message twice."""
    if config.store.is_postgres:
        from agent_tui.store.postgres import PostgresStore

        store = open_configured_store(config.store)
        assert isinstance(store, PostgresStore)
        try:
            with store.run_once_lock() as held:
                busy = ("" if held else "already running: another `agent-tui run --once` "
                        f"holds the run lock of {store.where}; nothing to do")
                yield (store if held else None), busy
        finally:
            store.close()
        return
    lock = lock_path(config)
    with run_lock(lock) as held:
        if not held:
            yield None, (f"already running: another `agent-tui run --once`{_holder(lock)} "
                         f"holds {lock}; nothing to do")
            return
        store = open_configured_store(config.store)
        try:
            yield store, ""
        finally:
            store.close()
