"""The bottom line: per-account sync state, outbox counts and the early-warning signal."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Static

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp


class StatusBar(Static):
    """One line, plain text (account names and errors come from outside)."""

    def __init__(self) -> None:
        super().__init__("", id="status", markup=False)

    def show(self, prefix: str = "") -> None:
        text = cast("AgentApp", self.app).status_text()
        self.update(f"{prefix} │ {text}" if prefix else text)
