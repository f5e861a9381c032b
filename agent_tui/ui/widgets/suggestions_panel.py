"""The top knowledge entries for the customer's last message: number, score, title and why."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from agent_tui.engine.suggestions import RenderedSuggestion
from agent_tui.ui.format import plain_line

SHOWN = 3       # 1-9 take any of the nine ranked; three fit an 80x24 screen
OFF_TOPIC_BELOW = 0.005     # shows as 0.00


class SuggestionsPanel(Static):
    def __init__(self) -> None:
        super().__init__("", id="suggestions")

    def show(self, suggestions: list[RenderedSuggestion], *, knowledge_loaded: bool) -> None:
        self.update(suggestion_lines(suggestions, knowledge_loaded=knowledge_loaded))


def suggestion_lines(suggestions: list[RenderedSuggestion], *, knowledge_loaded: bool) -> Text:
    if not knowledge_loaded:
        return Text("No knowledge file loaded: no suggestions.", style="dim")
    if not suggestions:
        return Text("No suggestion for this message.", style="dim")
    text = Text()
    for i, s in enumerate(suggestions[:SHOWN], start=1):
        if i > 1:
            text.append("\n")
        text.append(f"{i} ", style="bold reverse")
        text.append(f" {s.suggestion.score:.2f} ", style="bold")
        text.append_text(plain_line(s.suggestion.title, limit=40))
        if s.suggestion.score < OFF_TOPIC_BELOW:
            text.append("  (a guess: nothing matches well)", style="dim italic")
        if s.suggestion.matched_terms:
            text.append("  why: ", style="dim")
            text.append_text(plain_line(", ".join(s.suggestion.matched_terms[:5]), style="dim"))
        if not s.rendered.complete:
            text.append("  missing: ", style="yellow")
            text.append_text(plain_line(", ".join(s.rendered.missing), style="yellow"))
    return text
