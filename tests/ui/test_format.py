"""The queue's Waited column reads at a glance (issue 25)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_tui.ui.format import waited

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("ago", "shown"), [
    (timedelta(seconds=20), "0m"),
    (timedelta(minutes=45), "45m"),
    (timedelta(hours=5, minutes=7), "5h 07m"),
    (timedelta(hours=45, minutes=11), "1d 21h"),
    (timedelta(days=6, hours=23), "6d 23h"),
    (timedelta(days=12, hours=5), "12d"),
    (timedelta(minutes=-3), "0m"),            # a clock a little ahead of ours
])
def test_waited(ago: timedelta, shown: str) -> None:
    assert waited(NOW - ago, NOW) == shown
    assert len(shown) <= 6                    # the column's width


def test_nothing_waited_shows_nothing() -> None:
    assert waited(None, NOW) == ""
