"""Pre-work before the agent: fields such as `order.number` and `order.status` for a message.

A regex extracts order numbers; a command (the message as JSON on stdin, a JSON object of fields
on stdout) or an HTTP endpoint (the message as a JSON POST body, a JSON object back) adds the
shop's own data. Enrichment runs during sync and must never stop it: every failure (timeout, bad
exit, bad JSON) returns {} for that enricher and logs one warning line.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from agent_tui.limits import bounded
from agent_tui.sanitize import clean_line

log = logging.getLogger(__name__)

# A typical shop order number: an optional #/prefix and 4 to 12 digits after a hint word. The
# whitespace runs are possessive: with plain `\s*` runs side by side, "order" and 1,000 spaces took
# 12 s (each run could take any share of the spaces), and this pattern runs on every message.
DEFAULT_ORDER_REGEX = (r"(?i)(?:bestell(?:ung|nummer|nr\.?)?|auftrag(?:snummer)?|order|"
                       r"rechnung(?:snummer)?|invoice)\s*+(?:(?:nr\.?|no\.?|number|nummer)\s*+)?"
                       r"(?:[:#]\s*+)?(?P<number>[A-Z]{0,3}-?\d{4,12})")

# A pattern from the config may backtrack without bound: it runs in the `regex` module with this
# budget per message, and on overrun the message simply has no order number.
CONFIG_REGEX_SECONDS = 0.1


class PatternTimeout(Exception):
    """A configured pattern used up its time budget on one message."""


@functools.lru_cache(maxsize=8)
def _compiled(pattern: str) -> Any:
    if pattern == DEFAULT_ORDER_REGEX:
        return re.compile(pattern)              # ours, and linear: no budget needed
    import regex  # only a configured pattern pays for the import

    return regex.compile(pattern)


def search_bounded(pattern: str, text: str) -> Any:
    """`pattern.search(text)` on at most ANALYSIS_CHARS of text; a configured pattern runs with
    CONFIG_REGEX_SECONDS and raises PatternTimeout past it (re.error/regex.error if invalid)."""
    compiled = _compiled(pattern)
    text = bounded(text)
    if isinstance(compiled, re.Pattern):
        return compiled.search(text)
    try:
        return compiled.search(text, timeout=CONFIG_REGEX_SECONDS)
    except TimeoutError as exc:
        raise PatternTimeout(pattern) from exc


def extract_fields(text: str, order_regex: str | None = DEFAULT_ORDER_REGEX) -> dict[str, str]:
    """`{"order.number": ...}` from the first match of `order_regex` (its group `number`, else
    its first group, else the whole match); {} when nothing matches, the regex is invalid or it
    ran out of time (each logged with the pattern)."""
    if not order_regex:
        return {}
    try:
        match = search_bounded(order_regex, text)
    except PatternTimeout:
        log.warning("enrichment: order_regex %r gave up after %gs on one message; it is stored "
                    "without an order number (make the pattern simpler)",
                    order_regex, CONFIG_REGEX_SECONDS)
        return {}
    except Exception as exc:                    # re.error or regex.error: both name the problem
        log.warning("enrichment: order_regex %r is invalid: %s", order_regex, exc)
        return {}
    if not match:
        return {}
    if "number" in match.groupdict():
        value = match.group("number")
    else:
        value = match.group(1) if match.groups() else match.group(0)
    return {"order.number": clean_line(value)} if value else {}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"order": {"status": "sent"}} -> {"order.status": "sent"}; lists and nulls are dropped."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            flat[name] = str(value)
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
    return flat


def _fields_from(raw: bytes | str, source: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("enrichment: %s did not return JSON: %s", source, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("enrichment: %s returned %s, not a JSON object", source, type(data).__name__)
        return {}
    return _flatten(data)


async def run_command(command: str | Sequence[str], message_json: Mapping[str, Any],
                      timeout: float) -> dict[str, str]:
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        return {}
    source = f"command {argv[0]!r}"
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        log.warning("enrichment: %s cannot start: %s", source, exc.strerror or exc)
        return {}
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(json.dumps(message_json, default=str).encode()), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        log.warning("enrichment: %s timed out after %gs", source, timeout)
        return {}
    if process.returncode != 0:
        first = stderr.decode(errors="replace").strip().splitlines()[:1]
        log.warning("enrichment: %s exited %s%s", source, process.returncode,
                    f": {first[0]}" if first else "")
        return {}
    return _fields_from(stdout, source)


async def run_http(url: str, message_json: Mapping[str, Any], timeout: float) -> dict[str, str]:
    import aiohttp

    source = f"endpoint {url}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            payload = json.loads(json.dumps(message_json, default=str))
            async with session.post(url, json=payload) as response:
                if response.status >= 400:
                    log.warning("enrichment: %s answered HTTP %s", source, response.status)
                    return {}
                body = await response.read()
    except TimeoutError:
        log.warning("enrichment: %s timed out after %gs", source, timeout)
        return {}
    except aiohttp.ClientError as exc:
        log.warning("enrichment: %s failed: %s", source, exc)
        return {}
    return _fields_from(body, source)


async def run_enrichers(message_json: Mapping[str, Any], *, order_regex: str | None = None,
                        command: str | Sequence[str] | None = None, url: str | None = None,
                        timeout: float = 5.0) -> dict[str, str]:
    """All configured enrichers for one message (its `subject` and `text` are searched by the
    regex; the command and endpoint get the whole object, plus the fields found so far under
    `fields`). Later sources override earlier ones: regex, then command, then HTTP."""
    text = f"{message_json.get('subject', '')}\n{message_json.get('text', '')}"
    fields = extract_fields(text, order_regex) if order_regex else {}
    request = {**message_json, "fields": dict(fields)}
    if command:
        fields.update(await run_command(command, request, timeout))
    if url:
        fields.update(await run_http(url, {**request, "fields": dict(fields)}, timeout))
    return fields
