"""Pre-work before the agent, after each stored batch of new customer messages:

- enrichment fields (order number, status...) for the conversation; a failing or slow enricher costs
  only its own fields (the knowledge enrichment module turns every failure into {} and a log line);
- urgency and tone: an urgent message raises the conversation's priority, a negative one tags it
  `negative`, so the inbox and rules see both.
"""

from __future__ import annotations

import logging

from agent_tui import output
from agent_tui.config import EnrichmentConfig
from agent_tui.insight.urgency import assess
from agent_tui.knowledge.enrichment import DEFAULT_ORDER_REGEX, run_enrichers
from agent_tui.model import Direction, Priority
from agent_tui.store import StoreBackend

log = logging.getLogger(__name__)


def configured(config: EnrichmentConfig) -> bool:
    return bool(config.order_regex or config.command or config.url)


async def enrich_messages(store: StoreBackend, config: EnrichmentConfig,
                          message_ids: list[int]) -> int:
    """Enrich the conversations of these new messages; returns how many got fields."""
    enriched = 0
    for message_id in message_ids:
        message = store.get_message(message_id)
        if message.direction is not Direction.INBOUND:
            continue
        tone = assess(message.text, message.subject)
        if tone.urgency == "high":
            store.set_priority(message.conversation_id, Priority.HIGH)
        if tone.negative:
            store.add_tag(message.conversation_id, "negative")
        fields = await run_enrichers(output.message_json(message),
                                     order_regex=config.order_regex or DEFAULT_ORDER_REGEX,
                                     command=config.command, url=config.url,
                                     timeout=config.timeout)
        if fields:
            store.set_enrichment(message.conversation_id, fields)
            enriched += 1
    return enriched
