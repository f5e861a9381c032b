"""agent-tui: a terminal inbox for customer service."""

__version__ = "0.1.0"
