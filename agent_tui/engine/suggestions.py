"""Suggestions for a conversation: the knowledge ranking plus what the store knows to fill them.

One place builds the render context (contact, agent, subject, enrichment), so the TUI, `reply
--entry` and `run --once` fill placeholders the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent_tui.config import Config
from agent_tui.errors import NotFound

# Straight from the submodules: `agent_tui.knowledge.render` the module shadows the lazy name.
from agent_tui.knowledge.loader import Entry, load_knowledge
from agent_tui.knowledge.render import RenderContext, Rendered, render
from agent_tui.knowledge.suggest import Suggester, Suggestion
from agent_tui.model import Conversation, Direction, Message


def render_context(config: Config, conversation: Conversation) -> RenderContext:
    return RenderContext(
        contact_name=conversation.contact_name,
        agent_name=config.agent.name,
        conversation_subject=conversation.subject,
        fields=dict(conversation.enrichment),
    )


def question_of(messages: list[Message]) -> tuple[str, str]:
    """The text and subject to rank: the customer's latest message (the open question)."""
    for message in reversed(messages):
        if message.direction is Direction.INBOUND:
            return message.text, message.subject
    return "", ""


@dataclass(frozen=True, slots=True)
class RenderedSuggestion:
    suggestion: Suggestion
    rendered: Rendered


def suggest_for(config: Config, suggester: Suggester, conversation: Conversation,
                messages: list[Message], *, top: int = 3) -> list[RenderedSuggestion]:
    text, subject = question_of(messages)
    if not text and not subject:
        return []
    context = render_context(config, conversation)
    channel = str(conversation.channel)
    return [RenderedSuggestion(s, render(s.entry, context, channel))
            for s in suggester.suggest(text, subject=subject, channel=channel, top=top)]


def load_suggester(config: Config, path: Path | None = None) -> Suggester | None:
    """The suggester for the configured knowledge file; None when there is no file."""
    knowledge = path or config.knowledge.path
    if not knowledge.exists():
        return None
    cache = None if config.store.is_postgres else Path(config.store.path).parent / "cache"
    return Suggester.for_file(knowledge, cache_dir=cache, embeddings=config.knowledge.embeddings)


def render_entry_for(config: Config, conversation: Conversation, entry_id: str) -> Rendered:
    kb = load_knowledge(config.knowledge.path)
    entry: Entry | None = kb.get(entry_id)
    if entry is None:
        raise NotFound(f"{config.knowledge.path}: no entry {entry_id!r}")
    return render(entry, render_context(config, conversation), str(conversation.channel))
