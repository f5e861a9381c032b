"""Fill an entry's placeholders for one conversation; a missing value marks the text incomplete."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_tui.knowledge.loader import Entry

SHORT_CHANNELS = frozenset({"sms", "whatsapp", "telegram"})
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}\s]*)\}")


@dataclass(frozen=True, slots=True)
class RenderContext:
    contact_name: str = ""
    contact_first_name: str = ""
    agent_name: str = ""
    conversation_subject: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)   # enrichment: "order.number", ...

    def values(self) -> dict[str, str]:
        first_name = self.contact_first_name or (
            self.contact_name.split()[0] if self.contact_name.strip()
            and "@" not in self.contact_name else "")
        values = {str(key): str(value) for key, value in self.fields.items()
                  if value is not None and str(value).strip()}
        for key, value in (("contact.name", self.contact_name),
                           ("contact.first_name", first_name),
                           ("agent.name", self.agent_name),
                           ("conversation.subject", self.conversation_subject)):
            if value.strip():
                values[key] = value
        return values


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    missing: list[str]           # placeholder names nothing filled, in order of use
    complete: bool               # False: never send automatically


def render(entry: Entry, context: RenderContext, channel: str = "email") -> Rendered:
    """The entry's text for `channel` (`short` on sms/whatsapp/telegram when it has one).

    An unfilled placeholder stays in the text as `{name}`, so a person sees what to fill in.
    """
    template = entry.short if channel in SHORT_CHANNELS and entry.short else entry.body
    values = context.values()
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name in values:
            return values[name]
        if name not in missing:
            missing.append(name)
        return token

    text = _PLACEHOLDER.sub(fill, template)
    return Rendered(text=text, missing=missing, complete=not missing)
