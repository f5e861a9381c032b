"""The app: owns the store, the engine worker, the suggester and the live-refresh timer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.keys import _normalize_key_list  # how Textual reads keymap keys ('?')
from textual.notifications import SeverityLevel
from textual.screen import Screen

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.config import DEFAULT_THEME, Config
from agent_tui.errors import AgentTuiError
from agent_tui.sanitize import clean_line, clean_text
from agent_tui.store.base import StoreBackend
from agent_tui.ui.screens.inbox import InboxScreen
from agent_tui.ui.views import InboxView, all_views

if TYPE_CHECKING:
    from agent_tui.engine.runtime import Engine
    from agent_tui.knowledge import Suggester

STARTED = time.perf_counter()
POLL_SECONDS = 0.5
EARLY_WARNING_SECONDS = 300.0
CLOCK_REFRESH_SECONDS = 60.0    # waited times move on even when nothing was written
SIXTEEN_COLOUR_THEME = "ansi-dark"
STATS = "Stats"     # the inbox key's description and the palette command


class AgentApp(App[int]):
    """The blended inbox."""

    CSS_PATH = "app.tcss"
    TITLE = "agent-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
    ]

    def __init__(self, config: Config, store: StoreBackend, engine: Engine | None = None, *,
                 clock: Callable[[], datetime] | None = None,
                 suggester: Suggester | None = None, load_suggester: bool = True) -> None:
        super().__init__()
        self.config = config
        self.store = store
        # Workers and the poll timer read through their own connection, so the screen never
        # waits behind the engine's write transactions (WAL: readers do not block).
        self.reads: StoreBackend = store.reader()
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.suggester: Suggester | None = suggester
        self._load_suggester = load_suggester and suggester is None
        self.agent_name = config.agent.who
        self._data_version = -1
        self._refreshed_at = time.monotonic()
        self.cold_start_seconds: float | None = None
        self.alerts: list[str] = []     # early warning: "sms: 23 messages in the last hour"
        self.search_hits: list[int] = []    # conversations of the last / search, for n and N
        self.attachment_directory: str | None = None   # where `w` saved last, offered again
        # The built-in views, then the saved ones ([[ui.view]]); `v` cycles through them.
        self.views: tuple[InboxView, ...] = all_views(config.ui.views)
        # [ui.keymap]: {binding id: keys}, applied by Textual to every screen's bindings.
        self.keymap: dict[str, str] = dict(config.ui.keymap)
        self._clashes_reported: set[str] = set()
        if self.keymap:
            self.set_keymap(self.keymap)
        try:
            self.business_hours = BusinessHours.from_config(config.automation)
        except AgentTuiError:
            self.business_hours = None
        if self.config.ui.theme and self.config.ui.theme in self.available_themes:
            self.theme = self.config.ui.theme
        if self.theme == DEFAULT_THEME and self.console.color_system in ("standard", "windows"):
            # A 16-colour terminal: the terminal's own palette reads better than approximations
            # of the default theme's true colours.
            self.theme = SIXTEEN_COLOUR_THEME

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every notification is literal text, whoever asks for it (screens and widgets pass
        `markup=True` by default): most quote what an agent typed, a customer sent or a server
        answered, and markup there would style, link or run actions, and a stray `[/]` crashed
        the app. `markup` is accepted for Textual's signature and ignored."""
        super().notify(clean_text(message), title=clean_line(title), severity=severity,
                       timeout=timeout, markup=False)

    def on_mount(self) -> None:
        self.push_screen(InboxScreen())
        self.cold_start_seconds = time.perf_counter() - STARTED
        if self.engine is not None:
            self.run_worker(self.engine.run(), name="engine", group="engine", exit_on_error=False)
        if self._load_suggester:
            self._load_suggestions()
        self.set_interval(POLL_SECONDS, self.poll_store)
        self._check_early_warning()
        self.set_interval(EARLY_WARNING_SECONDS, self._check_early_warning)

    @work(thread=True, exclusive=True, group="early-warning")
    def _check_early_warning(self) -> None:
        from agent_tui.insight.early_warning import alerts_from_store

        alerts = [a.message for a in alerts_from_store(self.reads, self.clock())]
        self.deliver(setattr, self, "alerts", alerts)

    @work(thread=True, exclusive=True, group="suggester")
    def _load_suggestions(self) -> None:
        from agent_tui.engine.suggestions import load_suggester

        try:
            suggester = load_suggester(self.config)
        except AgentTuiError as exc:
            self.deliver(partial(self.notify, str(exc), title="Knowledge file",
                                 severity="warning"))
            return
        self.deliver(setattr, self, "suggester", suggester)

    def poll_store(self) -> None:
        """Live updates: another process (sync, a colleague) committed; refresh what is shown."""
        if not self.screen_stack:
            return          # shutting down
        version = self.reads.data_version()
        stale = time.monotonic() - self._refreshed_at > CLOCK_REFRESH_SECONDS
        if version != self._data_version or stale:
            self._data_version = version
            self._refreshed_at = time.monotonic()
            # Only the screen on top reloads now; the ones below reload when shown again.
            refresh = getattr(self.screen, "refresh_data", None)
            if refresh is not None:
                refresh()
        status = getattr(self.screen, "update_status", None)
        if status is not None:
            status()

    def on_unmount(self) -> None:
        self.workers.cancel_all()
        self.reads.close()

    def status_text(self) -> str:
        parts = [f"⚠ {alert}" for alert in self.alerts]
        if self.engine is not None:
            for account, state in self.engine.status().items():
                short = state if len(state) <= 40 else state[:39] + "…"
                parts.append(f"{account}: {short}")
        counts = self.reads.outbox_counts()
        queued = counts.get("queued", 0) + counts.get("sending", 0)
        failed = counts.get("failed", 0) + counts.get("uncertain", 0)
        parts.append(f"outbox {queued} queued" + (f", {failed} need you" if failed else ""))
        return " │ ".join(parts)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """ctrl+p: every key of the current screen by its description, after Textual's own."""
        yield from super().get_system_commands(screen)
        seen = {"Quit"}
        for source in (screen, self):
            for binding in getattr(source, "BINDINGS", []):
                if not isinstance(binding, Binding) or binding.description in seen:
                    continue
                seen.add(binding.description)
                key = self.keys_of(binding).split(",")[0]
                yield SystemCommand(binding.description, f"key {key}",
                                    partial(source.run_action, binding.action))
        if STATS not in seen:       # the inbox has a key for it; every screen has the palette
            yield SystemCommand(STATS, "Volume per channel, response times, SLA breaches",
                                self.action_stats)

    def keys_of(self, binding: Binding) -> str:
        """The keys a binding answers to, after the user's keymap."""
        if binding.id and binding.id in self.keymap:
            return self.keymap[binding.id]
        return binding.key_display or binding.key

    def report_keymap_clashes(self, screen: Screen[Any]) -> None:
        """A key that [ui.keymap] gives to one binding is taken from any other binding of the
        screen (or the app) that had it. Textual does that silently; say so, once a binding."""
        if not self.keymap:
            return
        bindings = [b for source in (screen, self) for b in getattr(source, "BINDINGS", [])
                    if isinstance(b, Binding)]
        given: dict[str, Binding] = {}
        for binding in bindings:
            if binding.id in self.keymap:
                for key in _normalize_key_list(self.keymap[binding.id]).split(","):
                    given.setdefault(key, binding)
        for binding in bindings:
            if binding.id in self.keymap or binding.id in self._clashes_reported:
                continue
            lost = [key for key in _normalize_key_list(binding.key).split(",") if key in given]
            if lost:
                self._clashes_reported.add(binding.id or binding.action)
                taker = given[lost[0]]
                self.notify(f"[ui.keymap] gave {', '.join(lost)} to {taker.description!r} "
                            f"({taker.id}): {binding.description!r} ({binding.id}) lost it",
                            title="Keymap", severity="warning", timeout=8)

    def action_stats(self) -> None:
        from agent_tui.ui.screens.stats import open_stats

        open_stats(self)

    def action_help(self) -> None:
        from agent_tui.ui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def wake_outbox(self) -> None:
        if self.engine is not None:
            self.engine.wake_outbox()

    def deliver(self, callback: Callable[..., Any], *args: Any,
                screen: Screen[Any] | None = None) -> None:
        """From a worker thread: run `callback` on the UI thread, unless the app stopped (or
        `screen` closed) while the worker read: the result is then of no use to anyone, and the
        widgets it would fill may already be gone."""
        def on_ui_thread() -> None:
            if self.is_running and (screen is None or screen in self.screen_stack):
                callback(*args)
        try:
            self.call_from_thread(on_ui_thread)
        except RuntimeError:
            if self.is_running:
                raise

    def run_blocking(self, what: Callable[[], Any]) -> Any:
        """Run a store write; report a user error as a notification instead of crashing."""
        try:
            result = what()
        except AgentTuiError as exc:
            self.notify(str(exc), severity="error")
            return None
        self.poll_store()           # show our own change at once, not at the next tick
        return result
