"""One customer: the timeline across channels, suggestions, and the reply composer."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Static

from agent_tui.engine.attachments import SavedAttachment, media_fetcher, save_attachments
from agent_tui.engine.replies import last_inbound, queue_reply
from agent_tui.engine.suggestions import RenderedSuggestion, suggest_for
from agent_tui.errors import AgentTuiError
from agent_tui.model import Contact, Conversation, Message, Note
from agent_tui.store.base import MergeProposal, StoreBackend
from agent_tui.store.sql import identity_kind
from agent_tui.ui import actions
from agent_tui.ui.format import contact_label, plain_line
from agent_tui.ui.widgets.composer import NOTE, REPLY, Composer, ReplyTarget
from agent_tui.ui.widgets.confirm import ConfirmScreen
from agent_tui.ui.widgets.status_bar import StatusBar
from agent_tui.ui.widgets.suggestions_panel import OFF_TOPIC_BELOW, SuggestionsPanel
from agent_tui.ui.widgets.timeline import MessageTimeline

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

SAVE_KEY, SAVE_ID = "w", "conversation.save_attachments"
ACCEPT_KEY, ACCEPT_ID = "y", "conversation.accept_merge"
REJECT_KEY, REJECT_ID = "x", "conversation.reject_merge"
REPLY_LEASE_SECONDS = 300     # "Mia is replying"; expires by itself when an instance dies


def reply_targets(conversation: Conversation, messages: list[Message], contact: Contact,
                  others: list[Conversation]) -> list[ReplyTarget]:
    """Where a reply can go: first the address the customer wrote from (invariant 9), then the
    contact's other addresses on this channel, then the newest conversation on each other
    channel (a reply there goes out through that conversation's account)."""
    parent = last_inbound(messages)
    default = parent.sender if parent else conversation.contact_address
    last_at = parent.sent_at if parent else conversation.last_inbound_at
    targets = [ReplyTarget(conversation.id, conversation.channel, default, last_at)]
    kind = identity_kind(conversation.channel)
    targets.extend(ReplyTarget(conversation.id, conversation.channel, identity.address, last_at)
                   for identity in contact.identities
                   if identity.kind == kind and identity.address != default)
    seen = {conversation.channel}
    for other in others:            # newest activity first
        if other.channel not in seen and other.contact_address:
            seen.add(other.channel)
            targets.append(ReplyTarget(other.id, other.channel, other.contact_address,
                                       other.last_inbound_at))
    return targets


def save_report(saved: list[SavedAttachment], directory: str) -> tuple[str, SeverityLevel]:
    """The notification after `w`: where each file went, and why any was not saved."""
    written = [s.path for s in saved if s.path is not None]
    lines = []
    if written:
        lines.append(f"Saved {len(written)} file{'s' if len(written) > 1 else ''} "
                     f"to {written[0].parent}:")
        lines.extend(f"  {path.name}" for path in written)
    failed = [s for s in saved if s.path is None]
    if failed:
        lines.append(f"Not saved{' to ' + directory if not written else ''}:")
        lines.extend(f"  {s.attachment.name}: {s.problem}" for s in failed)
    severity: SeverityLevel = "information" if not failed else "warning" if written else "error"
    return "\n".join(lines), severity


@dataclass(frozen=True, slots=True)
class Proposed:
    """An open merge proposal as this conversation's contact sees it: `other` is the contact
    that would be merged into this one."""

    proposal: MergeProposal
    this: Contact
    other: Contact


def open_proposals(store: StoreBackend, contact_id: int) -> list[Proposed]:
    """The open proposals naming `contact_id`, oldest first, each with both contacts."""
    this = store.get_contact(contact_id)
    proposed = []
    for proposal in store.merge_proposals(contact_id=contact_id):
        other_id = proposal.contact_b if proposal.contact_a == contact_id else proposal.contact_a
        if other_id is None or other_id == contact_id:
            continue
        try:
            proposed.append(Proposed(proposal, this, store.get_contact(other_id)))
        except AgentTuiError:
            continue        # erased or merged away since the list was read
    return proposed


class ConversationScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="conversation.back"),
        Binding("r", "reply", "Reply", id="conversation.reply"),
        Binding("n", "note", "Note", id="conversation.note"),
        Binding("e", "close", "Close", id="conversation.close"),
        Binding("s", "snooze", "Snooze", id="conversation.snooze"),
        Binding("a", "assign", "Assign me", id="conversation.assign"),
        Binding("t", "tag", "Tag", id="conversation.tag"),
        Binding("m", "merge", "Merge contact", id="conversation.merge"),
        # Shown in the footer only while the contact has open merge proposals.
        Binding(ACCEPT_KEY, "accept_merge", "Accept merge", id=ACCEPT_ID),
        Binding(REJECT_KEY, "reject_merge", "Reject merge", id=REJECT_ID),
        Binding("c", "contact", "Contact", id="conversation.contact"),
        Binding("z", "toggle_quotes", "Quotes", id="conversation.quotes"),
        Binding("i", "next_identity", "Reply via", show=False, id="conversation.identity"),
        # Shown in the footer only when some message here has attachments.
        Binding(SAVE_KEY, "save_attachments", "Save attachments", id=SAVE_ID),
        # Not a priority binding: "1 ctrl+s" typed quickly must run in that order.
        Binding("ctrl+s", "send", "Send", id="conversation.send"),
        Binding("ctrl+e", "editor", "$EDITOR", priority=True, id="conversation.editor"),
        *[Binding(str(i), f"take({i})", f"Take suggestion {i}", show=False,
                  id=f"conversation.take{i}") for i in range(1, 10)],
        *[Binding(f"alt+{i}", f"insert({i})", f"Insert suggestion {i}", show=False,
                  priority=True, id=f"conversation.insert{i}") for i in range(1, 10)],
    ]

    def __init__(self, conversation_id: int, *, reply: bool = False) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.start_reply = reply
        self.conversation: Conversation | None = None
        self.messages: list[Message] = []
        self.history: list[Message] = []        # the contact's messages across conversations
        self.suggestions: list[RenderedSuggestion] = []
        self.targets: list[ReplyTarget] = []
        self.proposals: list[Proposed] = []     # open merge proposals of the contact
        self._target_index = 0
        self._confirmed_double = False
        # Keys typed before the conversation finished loading ("enter 1 ctrl+s" in one go).
        self._pending_take: int | None = None
        self._pending_send = False
        self._taken: tuple[str, str] | None = None     # (entry id, text) of a taken suggestion
        self.show_quotes = False

    @property
    def agent_app(self) -> AgentApp:
        return cast("AgentApp", self.app)

    @property
    def mode(self) -> str | None:
        """REPLY or NOTE while the composer is open."""
        return self.composer.mode

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    def compose(self) -> ComposeResult:
        yield Static("", id="conversation-header")
        yield MessageTimeline()
        with Vertical(id="reply-area"):
            yield SuggestionsPanel()
            yield Composer()
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        self.agent_app.report_keymap_clashes(self)
        self.refresh_data()
        if self.start_reply:
            self.call_after_refresh(self.action_reply)
        self.update_status()

    # --- data -----------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self._load(self.agent_app)

    @work(thread=True, exclusive=True, group="conversation-load")
    def _load(self, app: AgentApp) -> None:
        """Runs in a thread; the app comes in as an argument (the screen may be closed by the
        time the reads finish)."""
        store = app.reads
        try:
            conversation = store.get_conversation(self.conversation_id)
        except AgentTuiError:
            app.deliver(self.dismiss, screen=self)
            return
        messages = store.get_messages(self.conversation_id)
        # The contact's whole history across channels, this conversation's messages included.
        others = store.contact_conversations(conversation.contact_id)
        history: list[Message] = []
        for other in others:
            history.extend(messages if other.id == conversation.id
                           else store.get_messages(other.id))
        history.sort(key=lambda m: (m.sent_at, m.id))
        notes = store.get_notes(self.conversation_id)
        contact = store.get_contact(conversation.contact_id)
        targets = reply_targets(conversation, messages, contact, others)
        proposals = open_proposals(store, contact.id)
        suggestions: list[RenderedSuggestion] = []
        if app.suggester is not None:
            ranked = suggest_for(app.config, app.suggester, conversation, messages, top=9)
            # Scores that show as 0.00 mean "off topic": the best of them stays as a guess
            # (marked so in the panel), the rest would only be noise on the number keys.
            suggestions = ([s for s in ranked if s.suggestion.score >= OFF_TOPIC_BELOW]
                           or ranked[:1])
        app.deliver(self._show, conversation, messages, history, notes, suggestions, targets,
                    proposals, screen=self)

    def _show(self, conversation: Conversation, messages: list[Message],
              history: list[Message], notes: list[Note],
              suggestions: list[RenderedSuggestion], targets: list[ReplyTarget],
              proposals: list[Proposed]) -> None:
        if conversation.unread:
            # Written only when it changes: an unchanged store spares the inbox a reload.
            self.agent_app.run_blocking(lambda: self.agent_app.store.mark_read(conversation.id))
        self.conversation, self.messages, self.suggestions = conversation, messages, suggestions
        had_attachments, had_proposals = bool(self.with_attachments()), bool(self.proposals)
        self.history, self.proposals = history, proposals
        if (had_attachments != bool(self.with_attachments())
                or had_proposals != bool(proposals)):
            self.refresh_bindings()         # w, y and x come into (or leave) the footer
        # A reload keeps the identity chosen with `i` if it is still there.
        chosen = self.targets[self._target_index] if self.targets else None
        self.targets = targets
        self._target_index = targets.index(chosen) if chosen in targets else 0
        earlier = len({m.conversation_id for m in history} - {conversation.id})
        self.query_one("#conversation-header", Static).update(self._header(conversation,
                                                                            earlier))
        self.query_one(MessageTimeline).show(history, notes, self.conversation_id,
                                             show_quotes=self.show_quotes)
        self.query_one(SuggestionsPanel).show(
            suggestions, knowledge_loaded=self.agent_app.suggester is not None)
        self.composer.set_target(targets[self._target_index], len(targets) - 1)
        if self._pending_take is not None:
            number, self._pending_take = self._pending_take, None
            self.action_take(number)
        if self._pending_send and self.mode is not None:
            self.action_send()
        self._pending_send = False

    def _header(self, c: Conversation, earlier: int) -> Text:
        text = Text()
        text.append(f" {c.channel} ", style="reverse bold")
        text.append(" ")
        text.append_text(plain_line(c.contact_name or c.contact_address, style="bold"))
        if c.contact_name:
            text.append(" ")
            text.append_text(plain_line(f"<{c.contact_address}>"))
        text.append(f"  #{c.id} {c.status} · {c.account}")
        if c.assignee:
            text.append_text(plain_line(f" · {c.assignee}"))
        if c.tags:
            text.append_text(plain_line(" · " + ", ".join(c.tags)))
        files = sum(len(m.attachments) for m in self.history)
        if files:
            key = self.agent_app.keymap.get(SAVE_ID, SAVE_KEY).split(",")[0]
            text.append(f" · 📎 {files} ({key} saves)")
        text.append("\n ")
        text.append_text(plain_line(c.subject or "(no subject)", style="italic"))
        if earlier:
            text.append(f"  · {earlier} other conversation{'s' if earlier > 1 else ''} "
                        "of this contact shown", style="dim")
        if c.enrichment:
            fields = "  ".join(f"{k}: {v}" for k, v in sorted(c.enrichment.items()))
            text.append("\n ")
            text.append_text(plain_line(fields, style="cyan"))
        keymap = self.agent_app.keymap
        accept = keymap.get(ACCEPT_ID, ACCEPT_KEY).split(",")[0]
        reject = keymap.get(REJECT_ID, REJECT_KEY).split(",")[0]
        for i, proposed in enumerate(self.proposals):
            # The first one is what y and x act on; the next comes up once it is decided.
            text.append("\n ")
            text.append("⇄ same customer? " if i == 0 else "⇄ also proposed: ",
                        style="bold yellow")
            text.append_text(plain_line(f"{proposed.proposal.reason}: "
                                        f"{contact_label(proposed.other)}"))
            if i == 0:
                text.append(f"  ({accept} merges into this contact, {reject} rejects)",
                            style="dim")
        return text

    def update_status(self) -> None:
        if not self.query(StatusBar):
            return          # the refresh timer can fire before compose or after dismiss
        other = self._other_replier()
        if other is None and self.mode == REPLY:
            self.agent_app.store.renew_lease(self._lease, self._holder, REPLY_LEASE_SECONDS)
        self.query_one(StatusBar).show(f"{other} is replying" if other else "")

    # --- composer -------------------------------------------------------------------------

    @property
    def _lease(self) -> str:
        return f"reply:{self.conversation_id}"

    @property
    def _holder(self) -> str:
        return f"{self.agent_app.agent_name}@{os.uname().nodename}:{os.getpid()}"

    def _other_replier(self) -> str | None:
        """Who else is replying to this conversation right now (a colleague's TUI), if anyone."""
        holder = self.agent_app.reads.lease_holder(self._lease)
        if holder is None or holder == self._holder:
            return None
        return holder.split("@", 1)[0]

    def _open_composer(self, mode: str, text: str = "") -> None:
        if mode == REPLY and self.mode != REPLY and not self.agent_app.store.acquire_lease(
                self._lease, self._holder, REPLY_LEASE_SECONDS):
            self.notify(f"{self._other_replier()} is replying to this conversation",
                        severity="warning", timeout=5)
        self.composer.open(mode, text)

    def action_reply(self) -> None:
        self._open_composer(REPLY)

    def action_note(self) -> None:
        self._open_composer(NOTE)

    def action_next_identity(self) -> None:
        """i: reply on the contact's next address or channel (back to the first after the last)."""
        if len(self.targets) < 2:
            self.notify("This contact has no other address", timeout=2)
            return
        self._target_index = (self._target_index + 1) % len(self.targets)
        self.composer.set_target(self.targets[self._target_index], len(self.targets) - 1)
        if self.mode is None:
            self._open_composer(REPLY)

    def action_take(self, number: int) -> None:
        if self.conversation is None:
            self._pending_take = number
            return
        if self.mode is not None and self.composer.editor.has_focus:
            self.composer.insert(str(number))
            return
        if number <= len(self.suggestions):
            taken = self.suggestions[number - 1]
            self._taken = (taken.suggestion.entry_id, taken.rendered.text)
            self._open_composer(REPLY, taken.rendered.text)

    def action_insert(self, number: int) -> None:
        if self.mode is not None and number <= len(self.suggestions):
            self.composer.insert(self.suggestions[number - 1].rendered.text)

    def action_send(self) -> None:
        if self.mode is None:
            # "1 ctrl+s" typed while loading: _show takes the suggestion, then sends.
            self._pending_send = self.conversation is None
            return
        text = self.composer.text.strip()
        if not text:
            self.notify("Nothing to send", severity="warning")
            return
        app = self.agent_app
        if self.mode == NOTE:
            app.run_blocking(lambda: app.store.add_note(self.conversation_id, app.agent_name,
                                                         text))
            self.notify("Note saved", timeout=2)
        else:
            other = self._other_replier()
            if other is not None and not self._confirmed_double:
                self._confirmed_double = True
                self.notify(f"{other} is replying too: ctrl+s again sends anyway",
                            severity="warning", timeout=6)
                return
            entry_id, original = self._taken or (None, "")
            target = self.targets[self._target_index] if self.targets else None
            # The default address is left to queue_reply; a chosen identity is named.
            to = target.address if target and self._target_index > 0 else None
            conversation_id = target.conversation_id if target else self.conversation_id
            outbox_id = app.run_blocking(lambda: queue_reply(
                app.store, conversation_id, text, author=app.agent_name, to=to,
                entry_id=entry_id,
                suggestion_edited=entry_id is not None and text != original.strip(),
                suggestions_shown=bool(self.suggestions)))
            if outbox_id is None:
                return
            app.wake_outbox()
            self.notify(f"Reply queued (outbox {outbox_id})", timeout=3)
        self._close_composer()
        self.refresh_data()

    def _close_composer(self) -> None:
        if self.mode == REPLY:
            self.agent_app.store.release_lease(self._lease, self._holder)
        self._confirmed_double = False
        self._taken = None
        self.composer.close()

    def action_editor(self) -> None:
        """Write the reply in $EDITOR (the terminal is handed over, then given back)."""
        if self.mode is None:
            self._open_composer(REPLY)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write(self.composer.text)
            path = Path(handle.name)
        try:
            with self.app.suspend():
                subprocess.run([*shlex.split(editor), str(path)], check=False)
            self.composer.set_text(path.read_text())
        except (OSError, ValueError) as exc:
            self.notify(f"Cannot run {editor}: {exc}", severity="error")
        finally:
            path.unlink(missing_ok=True)

    def action_back(self) -> None:
        if self.mode is not None:
            self._close_composer()
            return
        self.dismiss()

    # --- attachments ----------------------------------------------------------------------

    def with_attachments(self) -> list[Message]:
        """The messages shown here that have attachments, newest first."""
        return [m for m in reversed(self.history) if m.attachments]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save_attachments":
            return bool(self.with_attachments())
        if action in ("accept_merge", "reject_merge"):
            return bool(self.proposals)
        return True

    def action_save_attachments(self) -> None:
        """w: choose the message (the newest first) and a directory; saving never overwrites."""
        from agent_tui.ui.screens.attachments import SaveAttachmentsScreen, default_directory

        messages = self.with_attachments()
        if not messages:
            self.notify("No attachments in this conversation", timeout=2)
            return
        app = self.agent_app

        def done(answer: tuple[Message, str] | None) -> None:
            if answer is not None:
                message, directory = answer
                app.attachment_directory = directory
                self._save_attachments(app, message, directory)

        app.push_screen(SaveAttachmentsScreen(
            messages, app.attachment_directory or default_directory()), done)

    @work(thread=True, group="save-attachments")
    def _save_attachments(self, app: AgentApp, message: Message, directory: str) -> None:
        """Reads the mail source and writes files: off the UI thread. The report goes to the app,
        so it is shown even if this screen was closed meanwhile."""
        try:
            saved = save_attachments(app.reads, message, directory, media_fetcher(app.config))
        except OSError as exc:
            app.deliver(partial(app.notify, f"Cannot save to {directory}: "
                                f"{exc.strerror or exc}", severity="error"))
            return
        report, severity = save_report(saved, directory)
        app.deliver(partial(app.notify, report, title="Attachments", severity=severity,
                            timeout=8))

    def action_toggle_quotes(self) -> None:
        self.show_quotes = not self.show_quotes
        self.refresh_data()

    def _act(self, act: actions.Action) -> None:
        act(self.agent_app, self.conversation_id)
        self.refresh_data()

    def action_close(self) -> None:
        self._act(actions.close)

    def action_snooze(self) -> None:
        self._act(actions.snooze)

    def action_assign(self) -> None:
        self._act(actions.assign_to_me)

    def action_tag(self) -> None:
        self._act(actions.tag)

    def action_merge(self) -> None:
        self._act(actions.merge)

    # --- proposed merges and the contact --------------------------------------------------

    def action_accept_merge(self) -> None:
        """y: the first proposed contact becomes part of this conversation's contact."""
        if not self.proposals:
            return
        proposed = self.proposals[0]
        keep, other = proposed.this, proposed.other
        app = self.agent_app

        def done(yes: bool | None) -> None:
            if not yes:
                return
            if not self._write(lambda: app.store.merge_contacts(keep.id, other.id)):
                return          # the store said no (and the app showed why)
            app.notify(f"Contact {other.id} merged into contact {keep.id}: one customer, "
                       "one history", timeout=4)
            self.refresh_data()

        body = Text()
        body.append("Merge\n  ")
        body.append_text(plain_line(contact_label(other), style="bold"))
        body.append("\ninto this conversation's contact\n  ")
        body.append_text(plain_line(contact_label(keep), style="bold"))
        body.append(f"\nIts identities and conversations move to contact {keep.id}, and this "
                    "timeline shows both histories.\nProposed because: ")
        body.append_text(plain_line(proposed.proposal.reason))
        app.push_screen(ConfirmScreen("Accept the proposed merge?", body), done)

    def action_reject_merge(self) -> None:
        """x: the two stay separate customers; the pair is never proposed again."""
        if not self.proposals:
            return
        proposed = self.proposals[0]
        this, other = proposed.this, proposed.other
        app = self.agent_app

        def done(yes: bool | None) -> None:
            if not yes:
                return
            if self._write(lambda: app.store.reject_merge(this.id, other.id)):
                app.notify(f"Contacts {this.id} and {other.id} stay two customers",
                           timeout=4)
            self.refresh_data()

        body = Text()
        body.append("Keep these two customers apart:\n  ")
        body.append_text(plain_line(contact_label(this), style="bold"))
        body.append("\n  ")
        body.append_text(plain_line(contact_label(other), style="bold"))
        body.append("\nThe pair is not proposed again (m, or agent-tui contact merge, can still "
                    "join them).\nProposed because: ")
        body.append_text(plain_line(proposed.proposal.reason))
        app.push_screen(ConfirmScreen("Reject the proposed merge?", body), done)

    def _write(self, change: Callable[[], None]) -> bool:
        """A store change; False when the store refused it (the app has said why)."""
        def changed() -> bool:
            change()
            return True
        return bool(self.agent_app.run_blocking(changed))

    def action_contact(self) -> None:
        """c: the contact's identities, conversations and counts; export and erase."""
        from agent_tui.ui.screens.contact import ContactScreen

        if self.conversation is not None:
            self.app.push_screen(ContactScreen(self.conversation.contact_id))
