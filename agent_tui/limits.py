"""How much of a message per-message analysis reads.

Enrichment, urgency and tone, suggestions and contact hints run on every inbound message during
sync; a mail of megabytes (or of 100,000 spaces after "order") must cost them no more than an
ordinary long mail. What matters for each of them is near the top of the customer's text.
"""

from __future__ import annotations

ANALYSIS_CHARS = 20_000


def bounded(text: str, limit: int = ANALYSIS_CHARS) -> str:
    """The first `limit` characters of `text`."""
    return text[:limit]
