"""Pre-work before the agent, after each stored batch of new customer messages:

- enrichment fields (order number, status...) for the conversation; a failing or slow enricher costs
  only its own fields (the knowledge enrichment module turns every failure into {} and a log line),
  and the shop look-ups of one batch share `[enrichment] batch_timeout`: once it is spent the rest
  of the batch is stored with the regex's fields only, so a slow shop system delays a sync by that
  much at most;
- urgency and tone: an urgent message raises the conversation's priority, a negative one tags it
  `negative`, so the inbox and rules see both.
"""

from __future__ import annotations

import asyncio
import logging

from agent_tui import views
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
    enriched = skipped = inbound = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.batch_timeout
    for message_id in message_ids:
        message = store.get_message(message_id)
        if message.direction is not Direction.INBOUND:
            continue
        inbound += 1
        tone = assess(message.text, message.subject)
        if tone.urgency == "high":
            store.set_priority(message.conversation_id, Priority.HIGH)
        if tone.negative:
            store.add_tag(message.conversation_id, "negative")
        shop = loop.time() < deadline
        if not shop and (config.command or config.url):
            skipped += 1
        fields = await run_enrichers(views.message_json(message),
                                     order_regex=config.order_regex or DEFAULT_ORDER_REGEX,
                                     command=config.command if shop else None,
                                     url=config.url if shop else None,
                                     timeout=config.timeout, deadline=deadline)
        if fields:
            store.set_enrichment(message.conversation_id, fields)
            enriched += 1
    if skipped:
        log.warning("enrichment: the batch's %gs for shop look-ups ran out; %d of %d new "
                    "messages stored without shop fields", config.batch_timeout, skipped, inbound)
    return enriched
