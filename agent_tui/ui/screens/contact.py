"""c in a conversation: one customer — identities, conversations and counts; export and erase.

Export (x) asks for a directory and writes what `agent-tui contact export` writes (contact.json,
summary.txt, the original mail attachments). Erase (E) lists exactly what goes and asks for the
word `erase`, then removes the person from the store as `agent-tui contact erase` does (without
`--also-remote`: mail on the server stays) and goes back to the inbox. Reading, exporting and
erasing run in worker threads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from agent_tui.errors import AgentTuiError
from agent_tui.model import Contact, Conversation, Direction
from agent_tui.store.base import StoreBackend
from agent_tui.ui.format import CHANNEL_LETTER, contact_label, plain_line

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

CONFIRM_WORD = "erase"
REMOTE_WORDS = "erase server"   # also their mail on the IMAP servers (contact erase --also-remote)


@dataclass(slots=True)
class ContactFacts:
    """Everything the contact screen and the erase confirmation show, read in one go."""

    contact: Contact
    conversations: list[Conversation]
    messages: dict[int, int] = field(default_factory=dict)     # conversation id -> count
    inbound: int = 0
    outbound: int = 0
    notes: int = 0
    attachments: int = 0
    proposals: int = 0
    first: datetime | None = None
    last: datetime | None = None

    @property
    def message_count(self) -> int:
        return sum(self.messages.values())


def read_contact(store: StoreBackend, contact_id: int) -> ContactFacts:
    """Counts from the store (message bodies are read, as an export would: not on the UI
    thread)."""
    facts = ContactFacts(store.get_contact(contact_id), store.contact_conversations(contact_id))
    for conversation in facts.conversations:
        messages = store.get_messages(conversation.id)
        facts.messages[conversation.id] = len(messages)
        for m in messages:
            if m.direction is Direction.INBOUND:
                facts.inbound += 1
            else:
                facts.outbound += 1
            facts.attachments += len(m.attachments)
            facts.first = m.sent_at if facts.first is None else min(facts.first, m.sent_at)
            facts.last = m.sent_at if facts.last is None else max(facts.last, m.sent_at)
        facts.notes += len(store.get_notes(conversation.id))
    facts.proposals = len(store.merge_proposals(contact_id=contact_id))
    return facts


def _plural(n: int, word: str) -> str:
    many = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{n} {word if n == 1 else many}"


def conversation_line(c: Conversation, messages: int) -> str:
    subject = c.subject or c.preview or "(no subject)"
    return f"#{c.id} {c.channel} · {subject} · {c.status} · {_plural(messages, 'message')}"


def erase_text(facts: ContactFacts) -> Text:
    """Exactly what `E` removes: every identity, every conversation with its message count."""
    text = Text()
    text.append("From this store, for good:\n", style="bold")
    text.append_text(plain_line(contact_label(facts.contact)))
    text.append(f"\n{_plural(len(facts.contact.identities), 'identity')}:",
                style="bold")
    for identity in facts.contact.identities:
        text.append("\n  ")
        text.append_text(plain_line(f"{identity.kind} {identity.address}"))
    text.append(f"\n{_plural(len(facts.conversations), 'conversation')}, "
                f"{_plural(facts.message_count, 'message')}:", style="bold")
    for c in facts.conversations:
        text.append("\n  ")
        text.append_text(plain_line(conversation_line(c, facts.messages.get(c.id, 0)),
                                    limit=90))
    proposals = (f", {_plural(facts.proposals, 'open merge proposal')}" if facts.proposals
                 else "")
    text.append(f"\nwith their {_plural(facts.notes, 'note')}, "
                f"{_plural(facts.attachments, 'attachment')}, enrichment fields and automatic "
                f"decisions{proposals}. Later syncs skip these messages. Their mail on the "
                f"mail servers stays, unless you type {REMOTE_WORDS!r}: then it is deleted "
                "there first (and if a server cannot be reached, nothing is erased).")
    return text


class EraseContactScreen(ModalScreen[str | None]):
    """Names what will go; returns "store" once `erase` is typed, "server" for `erase server`
    (their mail on the servers too), None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="erase.cancel"),
    ]

    def __init__(self, facts: ContactFacts) -> None:
        super().__init__()
        self.facts = facts

    def compose(self) -> ComposeResult:
        with Vertical(id="erase-contact"):
            yield Label(f"Erase contact {self.facts.contact.id}?", id="erase-title")
            yield VerticalScroll(Static(erase_text(self.facts)), id="erase-what")
            yield Label(f"Type {CONFIRM_WORD} (or {REMOTE_WORDS}), then enter; escape cancels.",
                        id="erase-keys")
            yield Input(placeholder=CONFIRM_WORD, id="erase-word")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        typed = " ".join(event.value.lower().split())
        if typed in (CONFIRM_WORD, REMOTE_WORDS):
            self.dismiss("server" if typed == REMOTE_WORDS else "store")
        else:
            self.query_one("#erase-keys", Label).update(
                f"Nothing erased: type the word {CONFIRM_WORD} to confirm, or escape.")
            event.input.value = ""

    def action_cancel(self) -> None:
        self.dismiss(None)


class ContactScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="contact.back"),
        Binding("j", "cursor_down", "Down", show=False, id="contact.down"),
        Binding("k", "cursor_up", "Up", show=False, id="contact.up"),
        Binding("enter", "open", "Open", id="contact.open"),
        Binding("x", "export", "Export", id="contact.export"),
        Binding("E", "erase", "Erase", id="contact.erase"),
    ]

    def __init__(self, contact_id: int) -> None:
        super().__init__()
        self.contact_id = contact_id
        self.facts: ContactFacts | None = None
        self.exported_to: Path | None = None    # the last export's directory

    @property
    def agent_app(self) -> AgentApp:
        return cast("AgentApp", self.app)

    @property
    def table(self) -> DataTable[Text | str]:
        return cast("DataTable[Text | str]", self.query_one("#contact-conversations", DataTable))

    def compose(self) -> ComposeResult:
        yield Static(f" Contact {self.contact_id}", id="contact-title", markup=False)
        yield Static("", id="contact-summary")
        yield DataTable(id="contact-conversations", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.table.add_columns("Conv", "Ch", "Subject", "Status", "Msgs", "Last activity")
        self.table.focus()
        self.agent_app.report_keymap_clashes(self)
        self.refresh_data()

    # --- data -----------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self._load(self.agent_app)

    @work(thread=True, exclusive=True, group="contact-load")
    def _load(self, app: AgentApp) -> None:
        try:
            facts = read_contact(app.reads, self.contact_id)
        except AgentTuiError:
            app.deliver(self.dismiss, screen=self)      # merged away or erased meanwhile
            return
        app.deliver(self._show, facts, screen=self)

    def _show(self, facts: ContactFacts) -> None:
        self.facts = facts
        contact = facts.contact
        title = Text(f" Contact {contact.id} · ")
        title.append_text(plain_line(contact.display_name or "no name"))
        title.append(f" · {_plural(len(facts.conversations), 'conversation')}, "
                     f"{_plural(facts.message_count, 'message')}")
        self.query_one("#contact-title", Static).update(title)
        self.query_one("#contact-summary", Static).update(self._summary(facts))
        table = self.table
        row = table.cursor_row
        table.clear()
        for c in facts.conversations:
            when = c.last_activity_at.astimezone() if c.last_activity_at else None
            table.add_row(str(c.id), CHANNEL_LETTER.get(c.channel, "?"),
                          plain_line(c.subject or c.preview or "(no subject)", limit=60),
                          str(c.status), str(facts.messages.get(c.id, 0)),
                          f"{when:%Y-%m-%d %H:%M}" if when else "", key=str(c.id))
        if facts.conversations:
            table.move_cursor(row=min(row, len(facts.conversations) - 1))

    @staticmethod
    def _summary(facts: ContactFacts) -> Text:
        text = Text()
        text.append("Identities", style="bold")
        for identity in facts.contact.identities:
            text.append(f"\n  {identity.kind:<9}")
            text.append_text(plain_line(identity.address))
        channels = sorted({str(c.channel) for c in facts.conversations})
        text.append("\nCounts", style="bold")
        text.append(f"  {facts.inbound} in, {facts.outbound} out · "
                    f"{_plural(facts.notes, 'note')} · "
                    f"{_plural(facts.attachments, 'attachment')} · "
                    f"{', '.join(channels) or 'no channel'}")
        if facts.first is not None and facts.last is not None:
            text.append(f"\nWriting since {facts.first.astimezone():%Y-%m-%d}, "
                        f"last {facts.last.astimezone():%Y-%m-%d %H:%M}")
        if facts.proposals:
            text.append(f"\n⇄ {_plural(facts.proposals, 'open merge proposal')} "
                        "(y/x in a conversation decide)", style="yellow")
        return text

    # --- actions --------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        if self.facts is None or not self.facts.conversations:
            return
        row = self.table.cursor_row
        if 0 <= row < len(self.facts.conversations):
            from agent_tui.ui.screens.conversation import ConversationScreen

            self.app.push_screen(ConversationScreen(self.facts.conversations[row].id))

    def action_back(self) -> None:
        self.dismiss()

    def action_export(self) -> None:
        """x: everything held about this person into a new (or empty) directory."""
        from agent_tui.ui.screens.attachments import default_directory
        from agent_tui.ui.widgets.prompt import PromptScreen

        app = self.agent_app
        contact_id = self.contact_id
        start = f"{default_directory().rstrip('/')}/contact-{contact_id}-export"

        def done(answer: str | None) -> None:
            if answer:
                self.notify(f"Exporting contact {contact_id}…", timeout=2)
                self._export(app, contact_id, Path(answer).expanduser())

        app.push_screen(PromptScreen(f"Export contact {contact_id} to directory (new or empty):",
                                     start), done)

    @work(thread=True, group="contact-export")
    def _export(self, app: AgentApp, contact_id: int, out: Path) -> None:
        from agent_tui.engine.privacy import export_contact

        try:
            result = export_contact(app.reads, contact_id, out)
        except AgentTuiError as exc:
            app.deliver(partial(app.notify, str(exc), title="Export", severity="error"))
            return
        except OSError as exc:
            app.deliver(partial(app.notify, f"Cannot export to {out}: {exc.strerror or exc}",
                                title="Export", severity="error"))
            return
        app.deliver(setattr, self, "exported_to", out.resolve())
        app.deliver(partial(
            app.notify, f"Exported {_plural(result['messages'], 'message')} in "
            f"{_plural(result['conversations'], 'conversation')} and "
            f"{_plural(result['attachments'], 'attachment')} to {out.resolve()} "
            "(contact.json, summary.txt)", title="Export", timeout=10))

    def action_erase(self) -> None:
        """E: after the word `erase`, the person leaves the store; back to the inbox."""
        facts = self.facts
        if facts is None:
            return
        app = self.agent_app

        def done(where: str | None) -> None:
            if where:
                self.notify(f"Erasing contact {facts.contact.id}…", timeout=2)
                self._erase(app, facts, also_remote=where == "server")

        app.push_screen(EraseContactScreen(facts), done)

    @work(thread=True, exclusive=True, group="contact-erase")
    def _erase(self, app: AgentApp, facts: ContactFacts, *, also_remote: bool) -> None:
        """Deletes (on the servers first, if asked) and rewrites the database file (VACUUM):
        off the UI thread."""
        from agent_tui.engine.privacy import delete_contact_remotely

        deleted: dict[str, int] = {}
        try:
            if also_remote:
                deleted = asyncio.run(delete_contact_remotely(app.config, app.store,
                                                              facts.contact.id))
            removed = app.store.erase_contact(facts.contact.id)
        except AgentTuiError as exc:
            app.deliver(partial(app.notify, str(exc), title="Erase", severity="error"))
            return
        report = (f"Erased {contact_label(facts.contact)}: "
                  f"{_plural(removed['identities'], 'identity')}, "
                  f"{_plural(removed['conversations'], 'conversation')}, "
                  f"{_plural(removed['messages'], 'message')}"
                  + "".join(f"; {_plural(count, 'mail')} deleted on the server of {account}"
                            for account, count in deleted.items()))
        app.deliver(self._erased, app, report)

    @staticmethod
    def _erased(app: AgentApp, report: str) -> None:
        from agent_tui.ui.screens.inbox import InboxScreen

        # Every screen of this person goes: back to the inbox.
        while len(app.screen_stack) > 1 and not isinstance(app.screen, InboxScreen):
            app.pop_screen()
        app.poll_store()
        app.notify(report, title="Erase", timeout=8)
