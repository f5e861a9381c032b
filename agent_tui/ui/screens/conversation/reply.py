"""The reply composer of one conversation and the lease behind "Mia is replying".

Opening the composer for a reply takes the conversation's lease in the store, so a colleague's
TUI shows who is answering; sending or closing gives it back, and it expires by itself when an
instance dies. The controller also knows where a reply can go (`reply_targets`) and which
suggestion it started from, for the outbox's record.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from agent_tui.engine.leases import holder_id
from agent_tui.engine.replies import last_inbound, queue_reply
from agent_tui.model import Contact, Conversation, Message
from agent_tui.store.sql import identity_kind
from agent_tui.ui.widgets.composer import NOTE, REPLY, Composer, ReplyTarget

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

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


class ReplyController:
    """The composer of `screen` for conversation `conversation_id`, with its lease, the chosen
    reply target and the suggestion a reply was taken from."""

    def __init__(self, screen: Screen[None], conversation_id: int) -> None:
        self.screen = screen
        self.conversation_id = conversation_id
        self.targets: list[ReplyTarget] = []
        self.target_index = 0
        self.confirmed_double = False
        self.taken: tuple[str, str] | None = None     # (entry id, text) of a taken suggestion

    @property
    def app(self) -> AgentApp:
        return cast("AgentApp", self.screen.app)

    @property
    def composer(self) -> Composer:
        return self.screen.query_one(Composer)

    @property
    def mode(self) -> str | None:
        """REPLY or NOTE while the composer is open."""
        return self.composer.mode

    # --- the lease ------------------------------------------------------------------------

    @property
    def lease(self) -> str:
        return f"reply:{self.conversation_id}"

    @property
    def holder(self) -> str:
        return f"{self.app.agent_name}@{holder_id()}"

    def other_replier(self) -> str | None:
        """Who else is replying to this conversation right now (a colleague's TUI), if anyone."""
        holder = self.app.reads.lease_holder(self.lease)
        if holder is None or holder == self.holder:
            return None
        return holder.split("@", 1)[0]

    def status(self) -> str:
        """The status bar's line; renews our lease while we reply and nobody else does."""
        other = self.other_replier()
        if other is None and self.mode == REPLY:
            self.app.store.renew_lease(self.lease, self.holder, REPLY_LEASE_SECONDS)
        return f"{other} is replying" if other else ""

    # --- the composer ---------------------------------------------------------------------

    def set_targets(self, targets: list[ReplyTarget]) -> None:
        """After a reload: the identity chosen with `i` stays chosen if it is still there."""
        chosen = self.targets[self.target_index] if self.targets else None
        self.targets = targets
        self.target_index = targets.index(chosen) if chosen in targets else 0
        self.composer.set_target(targets[self.target_index], len(targets) - 1)

    def open(self, mode: str, text: str = "") -> None:
        if mode == REPLY and self.mode != REPLY and not self.app.store.acquire_lease(
                self.lease, self.holder, REPLY_LEASE_SECONDS):
            self.screen.notify(f"{self.other_replier()} is replying to this conversation",
                               severity="warning", timeout=5)
        self.composer.open(mode, text)

    def close(self) -> None:
        if self.mode == REPLY:
            self.app.store.release_lease(self.lease, self.holder)
        self.confirmed_double = False
        self.taken = None
        self.composer.close()

    def take(self, entry_id: str, text: str) -> None:
        """Start the reply with a suggestion's rendered text."""
        self.taken = (entry_id, text)
        self.open(REPLY, text)

    def next_identity(self) -> None:
        """Reply on the contact's next address or channel (back to the first after the last)."""
        if len(self.targets) < 2:
            self.screen.notify("This contact has no other address", timeout=2)
            return
        self.target_index = (self.target_index + 1) % len(self.targets)
        self.composer.set_target(self.targets[self.target_index], len(self.targets) - 1)
        if self.mode is None:
            self.open(REPLY)

    def send(self, *, suggestions_shown: bool) -> bool:
        """Save the note or queue the reply; True once done (the composer is closed then)."""
        text = self.composer.text.strip()
        if not text:
            self.screen.notify("Nothing to send", severity="warning")
            return False
        app = self.app
        if self.mode == NOTE:
            app.run_blocking(lambda: app.store.add_note(self.conversation_id, app.agent_name,
                                                         text))
            self.screen.notify("Note saved", timeout=2)
        else:
            other = self.other_replier()
            if other is not None and not self.confirmed_double:
                self.confirmed_double = True
                self.screen.notify(f"{other} is replying too: ctrl+s again sends anyway",
                                   severity="warning", timeout=6)
                return False
            entry_id, original = self.taken or (None, "")
            target = self.targets[self.target_index] if self.targets else None
            # The default address is left to queue_reply; a chosen identity is named.
            to = target.address if target and self.target_index > 0 else None
            conversation_id = target.conversation_id if target else self.conversation_id
            outbox_id = app.run_blocking(lambda: queue_reply(
                app.store, conversation_id, text, author=app.agent_name, to=to,
                entry_id=entry_id,
                suggestion_edited=entry_id is not None and text != original.strip(),
                suggestions_shown=suggestions_shown))
            if outbox_id is None:
                return False
            app.wake_outbox()
            self.screen.notify(f"Reply queued (outbox {outbox_id})", timeout=3)
        self.close()
        return True

    def edit_in_editor(self) -> None:
        """Write the reply in $EDITOR (the terminal is handed over, then given back)."""
        if self.mode is None:
            self.open(REPLY)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write(self.composer.text)
            path = Path(handle.name)
        try:
            with self.app.suspend():
                subprocess.run([*shlex.split(editor), str(path)], check=False)
            self.composer.set_text(path.read_text())
        except (OSError, ValueError) as exc:
            self.screen.notify(f"Cannot run {editor}: {exc}", severity="error")
        finally:
            path.unlink(missing_ok=True)
