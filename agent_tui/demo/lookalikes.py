"""Where the Twilio and Telegram look-alikes come from.

They are written for the connector tests (tests/fakes/). The demo needs them too, and an installed
wheel has no `tests` package, so they are looked up first in the package (`agent_tui.demo.fakes`,
where they belong once moved) and then in the source checkout. A channel whose look-alike or
connector cannot be imported is left out of the demo, with the reason shown.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

_PLACES = ("agent_tui.demo.fakes", "tests.fakes")
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _reach_source_checkout() -> None:
    """Make `tests.fakes` importable when running from a source checkout.

    The console script's import path starts at .venv/bin, not at the checkout, and an editable
    install maps only the packaged modules. Appended, so nothing installed is shadowed.
    """
    if (SOURCE_ROOT / "tests" / "fakes" / "__init__.py").is_file() and str(
            SOURCE_ROOT) not in sys.path:
        sys.path.append(str(SOURCE_ROOT))


def _find(module: str) -> tuple[ModuleType | None, str]:
    _reach_source_checkout()
    reasons = []
    for place in _PLACES:
        try:
            return importlib.import_module(f"{place}.{module}"), ""
        except ModuleNotFoundError as exc:
            reasons.append(f"{place}.{module}: {exc.name} not found")
    return None, "; ".join(reasons)


def _connector_missing(module: str) -> str:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        return f"{module}: {exc.name} not found"
    return ""


def twilio_fake() -> tuple[type | None, str]:
    """(FakeTwilio, "") or (None, why the SMS/WhatsApp channels are left out)."""
    missing = _connector_missing("connectors.twilio")
    if missing:
        return None, missing
    module, reason = _find("twilio_server")
    return (getattr(module, "FakeTwilio", None), reason) if module else (None, reason)


def telegram_fake() -> tuple[type | None, str]:
    """(FakeTelegram, "") or (None, why the Telegram channel is left out)."""
    missing = _connector_missing("connectors.telegram")
    if missing:
        return None, missing
    module, reason = _find("telegram_server")
    return (getattr(module, "FakeTelegram", None), reason) if module else (None, reason)
