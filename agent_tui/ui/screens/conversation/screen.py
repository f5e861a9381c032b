"""The conversation screen: one customer's timeline across channels, suggestions, the reply
composer (`reply`), attachments (`attachments`) and proposed merges (`merge_proposals`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from agent_tui.engine.suggestions import RenderedSuggestion, suggest_for
from agent_tui.errors import AgentTuiError
from agent_tui.model import Conversation, Message, Note
from agent_tui.ui import actions
from agent_tui.ui.format import plain_line
from agent_tui.ui.screens.conversation import attachments, merge_proposals
from agent_tui.ui.screens.conversation.attachments import SAVE_ID, SAVE_KEY
from agent_tui.ui.screens.conversation.merge_proposals import (
    ACCEPT_ID,
    ACCEPT_KEY,
    REJECT_ID,
    REJECT_KEY,
    Proposed,
    open_proposals,
)
from agent_tui.ui.screens.conversation.reply import ReplyController, reply_targets
from agent_tui.ui.widgets.composer import NOTE, REPLY, Composer, ReplyTarget
from agent_tui.ui.widgets.status_bar import StatusBar
from agent_tui.ui.widgets.suggestions_panel import OFF_TOPIC_BELOW, SuggestionsPanel
from agent_tui.ui.widgets.timeline import MessageTimeline

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp


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
        self.proposals: list[Proposed] = []     # open merge proposals of the contact
        self.reply = ReplyController(self, conversation_id)
        # Keys typed before the conversation finished loading ("enter 1 ctrl+s" in one go).
        self._pending_take: int | None = None
        self._pending_send = False
        self.show_quotes = False

    @property
    def agent_app(self) -> AgentApp:
        return cast("AgentApp", self.app)

    @property
    def mode(self) -> str | None:
        """REPLY or NOTE while the composer is open."""
        return self.reply.mode

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
        earlier = len({m.conversation_id for m in history} - {conversation.id})
        self.query_one("#conversation-header", Static).update(self._header(conversation,
                                                                            earlier))
        self.query_one(MessageTimeline).show(history, notes, self.conversation_id,
                                             show_quotes=self.show_quotes)
        self.query_one(SuggestionsPanel).show(
            suggestions, knowledge_loaded=self.agent_app.suggester is not None)
        self.reply.set_targets(targets)
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
        text.append(attachments.attachments_note(self.agent_app, self.history))
        text.append("\n ")
        text.append_text(plain_line(c.subject or "(no subject)", style="italic"))
        if earlier:
            text.append(f"  · {earlier} other conversation{'s' if earlier > 1 else ''} "
                        "of this contact shown", style="dim")
        if c.enrichment:
            fields = "  ".join(f"{k}: {v}" for k, v in sorted(c.enrichment.items()))
            text.append("\n ")
            text.append_text(plain_line(fields, style="cyan"))
        merge_proposals.append_proposals(text, self.proposals, self.agent_app.keymap)
        return text

    def update_status(self) -> None:
        if not self.query(StatusBar):
            return          # the refresh timer can fire before compose or after dismiss
        self.query_one(StatusBar).show(self.reply.status())

    # --- composer (reply.ReplyController) ------------------------------------------------

    def action_reply(self) -> None:
        self.reply.open(REPLY)

    def action_note(self) -> None:
        self.reply.open(NOTE)

    def action_next_identity(self) -> None:
        """i: reply on the contact's next address or channel (back to the first after the last)."""
        self.reply.next_identity()

    def action_take(self, number: int) -> None:
        if self.conversation is None:
            self._pending_take = number
            return
        if self.mode is not None and self.composer.editor.has_focus:
            self.composer.insert(str(number))
            return
        if number <= len(self.suggestions):
            taken = self.suggestions[number - 1]
            self.reply.take(taken.suggestion.entry_id, taken.rendered.text)

    def action_insert(self, number: int) -> None:
        if self.mode is not None and number <= len(self.suggestions):
            self.composer.insert(self.suggestions[number - 1].rendered.text)

    def action_send(self) -> None:
        if self.mode is None:
            # "1 ctrl+s" typed while loading: _show takes the suggestion, then sends.
            self._pending_send = self.conversation is None
            return
        if self.reply.send(suggestions_shown=bool(self.suggestions)):
            self.refresh_data()

    def action_editor(self) -> None:
        """Write the reply in $EDITOR (the terminal is handed over, then given back)."""
        self.reply.edit_in_editor()

    def action_back(self) -> None:
        if self.mode is not None:
            self.reply.close()
            return
        self.dismiss()

    # --- attachments ----------------------------------------------------------------------

    def with_attachments(self) -> list[Message]:
        """The messages shown here that have attachments, newest first."""
        return attachments.with_attachments(self.history)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save_attachments":
            return bool(self.with_attachments())
        if action in ("accept_merge", "reject_merge"):
            return bool(self.proposals)
        return True

    def action_save_attachments(self) -> None:
        """w: choose the message (the newest first) and a directory; saving never overwrites."""
        attachments.choose_and_save(self, self.agent_app, self.with_attachments())

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
        if self.proposals:
            merge_proposals.accept(self.agent_app, self.proposals[0], self.refresh_data)

    def action_reject_merge(self) -> None:
        """x: the two stay separate customers; the pair is never proposed again."""
        if self.proposals:
            merge_proposals.reject(self.agent_app, self.proposals[0], self.refresh_data)

    def action_contact(self) -> None:
        """c: the contact's identities, conversations and counts; export and erase."""
        from agent_tui.ui.screens.contact import ContactScreen

        if self.conversation is not None:
            self.app.push_screen(ContactScreen(self.conversation.contact_id))
