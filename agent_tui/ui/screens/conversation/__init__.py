"""One customer's conversation: the screen (`screen`), its reply composer and lease (`reply`),
its attachments (`attachments`) and the contact's proposed merges (`merge_proposals`)."""

from __future__ import annotations

from agent_tui.ui.screens.conversation.screen import ConversationScreen

__all__ = ["ConversationScreen"]
