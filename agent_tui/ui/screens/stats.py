"""S in the inbox (or "Stats" in the command palette): the figures of `agent-tui stats`.

Volume per channel per day as a chart, median and p90 first-response and resolution times,
SLA breaches, the share answered automatically and how suggestions were used. The figures come
from agent_tui.insight.stats (read through a read-only connection of their own) in a worker.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, ClassVar, cast

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from agent_tui.errors import AgentTuiError
from agent_tui.insight.stats import ALL, Stats, duration
from agent_tui.ui.format import CHANNEL_LETTER

if TYPE_CHECKING:
    from agent_tui.ui.app import AgentApp

DEFAULT_SINCE = "30d"
LETTER = {str(channel): letter for channel, letter in CHANNEL_LETTER.items()}
# Colour helps, the letters carry the meaning (NO_COLOR, 16 colours).
COLOUR = {"email": "blue", "sms": "green", "whatsapp": "magenta", "telegram": "cyan"}


def _order(keys: list[str]) -> list[str]:
    """Channels by name, "all" last (as the CLI prints them)."""
    return sorted(keys, key=lambda k: (k == ALL, k))


class VolumeChart:
    """Inbound messages per day: one bar per day, stacked by channel, as wide as the screen."""

    LABEL = 11          # "Mon 11-23 "

    def __init__(self, stats: Stats) -> None:
        self.channels = sorted(stats.volume)
        self.days: list[date] = sorted({d for per_day in stats.volume.values() for d in per_day})
        self.counts = {day: {c: stats.volume[c].get(day, 0) for c in self.channels}
                       for day in self.days}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.days:
            yield Text("  no inbound messages in this period", style="dim")
            return
        peak = max(sum(counts.values()) for counts in self.counts.values())
        width = max(10, min(options.max_width - self.LABEL - 8, 100))
        for day in self.days:
            counts = self.counts[day]
            line = Text(f"  {day:%a %m-%d} ", style="dim")
            for channel, n in counts.items():
                cells = round(n * width / peak)
                if n and not cells:
                    cells = 1           # a day with one SMS among hundreds of mails still shows it
                line.append(LETTER.get(channel, "?") * cells,
                            style=f"bold {COLOUR.get(channel, '')} reverse")
            line.append(f" {sum(counts.values())}")
            yield line


def legend(stats: Stats) -> Text:
    text = Text("Inbound messages per day", style="bold")
    for channel in sorted(stats.volume):
        text.append("  ")
        text.append(f" {LETTER.get(channel, '?')} ",
                    style=f"bold {COLOUR.get(channel, '')} reverse")
        text.append(f" {channel}")
    return text


def times_table(stats: Stats) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=False,
                  title="Response and resolution times, SLA breaches", title_justify="left",
                  title_style="bold")
    table.add_column("channel")
    for header in ("answered", "median", "p90", "closed", "median", "p90"):
        table.add_column(header, justify="right")
    table.add_column("SLA breaches", justify="right")
    keys = _order(list({*stats.first_response, *stats.resolution, *stats.sla}))
    for key in keys:
        first = stats.first_response.get(key)
        resolved = stats.resolution.get(key)
        sla = stats.sla.get(key)
        breaches = (f"{sla.breaches} of {sla.waits}"
                    + (f" ({sla.breaches / sla.waits:.0%})" if sla.waits else "")) if sla else "-"
        table.add_row(
            Text(key, style="bold" if key == ALL else ""),
            str(first.count) if first else "0",
            duration(first.median_seconds if first else None),
            duration(first.p90_seconds if first else None),
            str(resolved.count) if resolved else "0",
            duration(resolved.median_seconds if resolved else None),
            duration(resolved.p90_seconds if resolved else None),
            Text(breaches, style="bold red" if sla and sla.breaches else ""))
    return table


def stats_renderable(stats: Stats) -> RenderableType:
    automatic = stats.automatic_share
    use = stats.suggestions
    replies = Text()
    replies.append("Replies ", style="bold")
    replies.append(f"{stats.replies}, answered automatically {stats.automatic_replies}"
                   + (f" ({automatic:.0%})" if automatic is not None else ""))
    suggestions = Text()
    suggestions.append("Suggestions ", style="bold")
    suggestions.append(f"{use.taken_unchanged} taken unchanged, {use.edited} edited, "
                       f"{use.ignored} ignored; {use.written} replies written without one")
    return Group(legend(stats), VolumeChart(stats), Text(""), times_table(stats), Text(""),
                 replies, suggestions)


class StatsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="stats.back"),
        Binding("p", "period", "Period", id="stats.period"),
        Binding("r", "reload", "Reload", id="stats.reload"),
        Binding("j", "scroll(1)", "Down", show=False, id="stats.down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="stats.up"),
    ]

    def __init__(self, since: str = DEFAULT_SINCE) -> None:
        super().__init__()
        self.since = since
        self.stats: Stats | None = None

    @property
    def agent_app(self) -> AgentApp:
        return cast("AgentApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(f" Stats · last {self.since}", id="stats-title", markup=False)
        yield VerticalScroll(Static(Text("Reading the store…", style="dim"), id="stats-body"),
                             id="stats")
        yield Footer()

    def on_mount(self) -> None:
        self.agent_app.report_keymap_clashes(self)
        self.query_one("#stats", VerticalScroll).focus()
        self.action_reload()

    def action_reload(self) -> None:
        self._load(self.agent_app, self.since)

    @work(thread=True, exclusive=True, group="stats-load")
    def _load(self, app: AgentApp, since: str) -> None:
        """Aggregates over the whole period: never on the UI thread."""
        from agent_tui.insight.commands import parse_since
        from agent_tui.insight.stats import compute_stats

        now = app.clock()
        try:
            start = parse_since(since, now)
            stats = compute_stats(app.reads, start, now, app.config.sla, app.business_hours)
        except AgentTuiError as exc:
            app.deliver(self._failed, str(exc), screen=self)
            return
        app.deliver(self._show, since, stats, screen=self)

    def _show(self, since: str, stats: Stats) -> None:
        self.since, self.stats = since, stats
        self.query_one("#stats-title", Static).update(self._title(since, stats.since,
                                                                  stats.until))
        self.query_one("#stats-body", Static).update(stats_renderable(stats))

    def _failed(self, problem: str) -> None:
        self.query_one("#stats-body", Static).update(Text(problem, style="bold red"))

    @staticmethod
    def _title(since: str, start: datetime, until: datetime) -> str:
        return f" Stats · {start:%Y-%m-%d %H:%M} – {until:%Y-%m-%d %H:%M} UTC ({since})"

    def action_period(self) -> None:
        from agent_tui.insight.commands import parse_since
        from agent_tui.ui.widgets.prompt import PromptScreen

        app = self.agent_app

        def done(answer: str | None) -> None:
            if not answer:
                return
            try:
                parse_since(answer, app.clock())
            except AgentTuiError as exc:
                app.notify(str(exc), severity="error")
                return
            self._load(app, answer)

        app.push_screen(PromptScreen("Stats since (30d, 12h, 2w or a date such as 2026-03-01):",
                                     self.since), done)

    def action_scroll(self, lines: int) -> None:
        self.query_one("#stats", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_back(self) -> None:
        self.dismiss()


def open_stats(app: AgentApp) -> None:
    """From the inbox key or the command palette; once is enough."""
    if not isinstance(app.screen, StatsScreen):
        app.push_screen(StatsScreen())

