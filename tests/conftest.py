"""Shared test helpers: where the shared data lives, and how a missing server is reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def require_integration() -> bool:
    return os.environ.get("REQUIRE_INTEGRATION") == "1"


def missing(reason: str) -> None:
    """Skip for a missing server or data set, or fail when CI requires integration tests."""
    if require_integration():
        pytest.fail(f"REQUIRE_INTEGRATION=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        missing(f"shared data not found at {SHARED_DATA} (CI has it beside the checkout)")
    return SHARED_DATA
