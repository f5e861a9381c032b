"""The Textual inbox. Only this package imports Textual; it reads the store, writes the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_tui.config import Config
    from agent_tui.engine.runtime import Engine
    from agent_tui.store import StoreBackend


def run_tui(config: Config, store: StoreBackend, engine: Engine | None = None) -> int:
    from agent_tui.ui.app import AgentApp

    app = AgentApp(config, store, engine)
    app.run()
    return app.return_code or 0
