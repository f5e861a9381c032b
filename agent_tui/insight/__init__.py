"""Service levels and insight: urgency and tone, SLA due times, early warning, stats.

Nothing here imports Textual: the inbox, `run --once` and `agent-tui stats` all call into it.
"""
