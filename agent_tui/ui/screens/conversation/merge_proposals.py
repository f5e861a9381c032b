"""The contact's proposed merges as a conversation shows them: a line each in the header, and
`y` (accept: one customer, one history) or `x` (reject: never proposed again) after a
confirmation. A proposal is never acted on silently (DESIGN.md "Contact")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from agent_tui.errors import AgentTuiError
from agent_tui.model import Contact
from agent_tui.store.base import MergeProposal, StoreBackend
from agent_tui.ui.format import contact_label, plain_line
from agent_tui.ui.widgets.confirm import ConfirmScreen

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

ACCEPT_KEY, ACCEPT_ID = "y", "conversation.accept_merge"
REJECT_KEY, REJECT_ID = "x", "conversation.reject_merge"


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


def append_proposals(text: Text, proposals: list[Proposed], keymap: Mapping[str, str]) -> None:
    """The header's lines: the first proposal with the keys that decide it, then the others."""
    accept = keymap.get(ACCEPT_ID, ACCEPT_KEY).split(",")[0]
    reject = keymap.get(REJECT_ID, REJECT_KEY).split(",")[0]
    for i, proposed in enumerate(proposals):
        # The first one is what y and x act on; the next comes up once it is decided.
        text.append("\n ")
        text.append("⇄ same customer? " if i == 0 else "⇄ also proposed: ",
                    style="bold yellow")
        text.append_text(plain_line(f"{proposed.proposal.reason}: "
                                    f"{contact_label(proposed.other)}"))
        if i == 0:
            text.append(f"  ({accept} merges into this contact, {reject} rejects)",
                        style="dim")


def accept(app: AgentApp, proposed: Proposed, refresh: Callable[[], None]) -> None:
    """y: the proposed contact becomes part of this conversation's contact, once confirmed."""
    keep, other = proposed.this, proposed.other

    def done(yes: bool | None) -> None:
        if not yes:
            return
        if not _write(app, lambda: app.store.merge_contacts(keep.id, other.id)):
            return          # the store said no (and the app showed why)
        app.notify(f"Contact {other.id} merged into contact {keep.id}: one customer, "
                   "one history", timeout=4, markup=False)
        refresh()

    body = Text()
    body.append("Merge\n  ")
    body.append_text(plain_line(contact_label(other), style="bold"))
    body.append("\ninto this conversation's contact\n  ")
    body.append_text(plain_line(contact_label(keep), style="bold"))
    body.append(f"\nIts identities and conversations move to contact {keep.id}, and this "
                "timeline shows both histories.\nProposed because: ")
    body.append_text(plain_line(proposed.proposal.reason))
    app.push_screen(ConfirmScreen("Accept the proposed merge?", body), done)


def reject(app: AgentApp, proposed: Proposed, refresh: Callable[[], None]) -> None:
    """x: the two stay separate customers and the pair is never proposed again, once confirmed."""
    this, other = proposed.this, proposed.other

    def done(yes: bool | None) -> None:
        if not yes:
            return
        if _write(app, lambda: app.store.reject_merge(this.id, other.id)):
            app.notify(f"Contacts {this.id} and {other.id} stay two customers",
                       timeout=4, markup=False)
        refresh()

    body = Text()
    body.append("Keep these two customers apart:\n  ")
    body.append_text(plain_line(contact_label(this), style="bold"))
    body.append("\n  ")
    body.append_text(plain_line(contact_label(other), style="bold"))
    body.append("\nThe pair is not proposed again (m, or agent-tui contact merge, can still "
                "join them).\nProposed because: ")
    body.append_text(plain_line(proposed.proposal.reason))
    app.push_screen(ConfirmScreen("Reject the proposed merge?", body), done)


def _write(app: AgentApp, change: Callable[[], None]) -> bool:
    """A store change; False when the store refused it (the app has said why)."""
    def changed() -> bool:
        change()
        return True
    return bool(app.run_blocking(changed))
