"""`agent-tui stats [--since 30d] [--json]`: the figures of agent_tui.insight.stats, as a report."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from agent_tui.automation.business_hours import BusinessHours
from agent_tui.config import Config
from agent_tui.errors import StoreError, UsageError
from agent_tui.insight.stats import ALL, Durations, Stats, compute_stats, duration
from agent_tui.store import open_configured_store

_PERIOD = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
BAR_WIDTH = 40


def parse_since(text: str, now: datetime) -> datetime:
    """"30d", "12h", "2w" back from now, or a date / ISO time ("2026-03-01")."""
    m = _PERIOD.match(text)
    if m:
        return now - int(m[1]) * _UNITS[m[2].lower()]
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since: cannot read {text!r}: expected e.g. 30d, 12h, 2w "
                         "or a date such as 2026-03-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_stats(config: Config, since: str, as_json: bool, stdout: TextIO,
              now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    start = parse_since(since, now)
    hours = BusinessHours.from_config(config.automation)
    if not config.store.is_postgres and not Path(config.store.path).is_file():
        raise StoreError(f"{config.store.path}: no store yet (run `agent-tui sync` first)")
    store = open_configured_store(config.store)
    try:
        stats = compute_stats(store, start, now, config.sla, hours)
    finally:
        store.close()
    if as_json:
        stdout.write(json.dumps(stats.as_json(), indent=2) + "\n")
    else:
        stdout.write(render(stats))
    return 0


def render(stats: Stats) -> str:
    """Plain text: a bar per day (stacked by channel letter), then the time and share figures."""
    lines = [f"Stats {stats.since:%Y-%m-%d %H:%M} - {stats.until:%Y-%m-%d %H:%M} UTC", ""]
    channels = sorted(stats.volume)
    days: set[date] = {d for per_day in stats.volume.values() for d in per_day}
    lines.append("Inbound messages per day"
                 + (f"  ({', '.join(f'{c[0]} = {c}' for c in channels)})" if channels else ""))
    if not days:
        lines.append("  none")
    peak = max((sum(stats.volume[c].get(d, 0) for c in channels) for d in days), default=0)
    for day in sorted(days):
        counts = {c: stats.volume[c].get(day, 0) for c in channels}
        total = sum(counts.values())
        bar = "".join(c[0] * round(n * BAR_WIDTH / peak) for c, n in counts.items())
        lines.append(f"  {day:%a %m-%d} {bar:<{BAR_WIDTH}} {total}")
    lines += ["", f"{'':14}{'count':>7}{'median':>10}{'p90':>10}"]
    for title, figures in (("First response", stats.first_response),
                           ("Resolution", stats.resolution)):
        lines.append(title)
        for key in sorted(figures, key=lambda k: (k == ALL, k)):
            lines.append(_durations_line(key, figures[key]))
    lines += ["", "SLA breaches"]
    for key in sorted(stats.sla, key=lambda k: (k == ALL, k)):
        sla = stats.sla[key]
        breached = f" ({sla.breaches / sla.waits:.0%})" if sla.waits else ""
        lines.append(f"  {key:<12}{sla.breaches} of {sla.waits}{breached}")
    automatic = stats.automatic_share
    lines += ["", f"Replies: {stats.replies}, automatic: {stats.automatic_replies}"
              + (f" ({automatic:.0%})" if automatic is not None else "")]
    use = stats.suggestions
    lines.append(f"Suggestions: {use.taken_unchanged} taken unchanged, {use.edited} edited, "
                 f"{use.ignored} ignored; {use.written} replies written without one")
    return "\n".join(lines) + "\n"


def _durations_line(key: str, d: Durations) -> str:
    return (f"  {key:<12}{d.count:>7}{duration(d.median_seconds):>10}"
            f"{duration(d.p90_seconds):>10}")
