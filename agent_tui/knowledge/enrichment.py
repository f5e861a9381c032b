"""Pre-work before the agent: fields such as `order.number` and `order.status` for a message.

A regex extracts order numbers; a command (the message as JSON on stdin, a JSON object of fields
on stdout) or an HTTP endpoint (the message as a JSON POST body, a JSON object back) adds the
shop's own data. Enrichment runs during sync and must never stop it: every failure (timeout, bad
exit, bad JSON) returns {} for that enricher and logs one warning line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agent_tui.limits import bounded
from agent_tui.sanitize import clean_line

log = logging.getLogger(__name__)

# What a shop system may send back, per look-up: its output (stdout, stderr or the HTTP body; more
# ends the look-up with no fields), and the fields kept from it. Its values are data that end up
# in replies and on screen.
OUTPUT_LIMIT = 1_000_000        # bytes
MAX_FIELDS = 200
MAX_NAME_CHARS = 100
MAX_VALUE_CHARS = 1000
MAX_REDIRECTS = 3
EXIT_GRACE = 1.0                # seconds for a killed command to be reaped

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
    return _bounded(_flatten(data), source)


def _bounded(fields: Mapping[str, str], source: str) -> dict[str, str]:
    """The shop's fields as data: one clean line each (no terminal control), names and values cut
    to their limits, at most MAX_FIELDS of them; one warning says what was cut."""
    clean: dict[str, str] = {}
    cut = 0
    for raw_name, raw_value in fields.items():
        name, value = clean_line(raw_name)[:MAX_NAME_CHARS], clean_line(raw_value)
        if not name:
            continue
        if len(value) > MAX_VALUE_CHARS or len(clean) == MAX_FIELDS:
            cut += 1
        if len(clean) < MAX_FIELDS:
            clean[name] = value[:MAX_VALUE_CHARS]
    if cut:
        log.warning("enrichment: %s returned %d field(s) over the limits (%d fields, %d "
                    "characters each); cut", source, cut, MAX_FIELDS, MAX_VALUE_CHARS)
    return clean


class _OutputTooLarge(Exception):
    pass


class _Readable(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


async def _read_capped(stream: _Readable, limit: int) -> bytes:
    """All of a stream, or _OutputTooLarge as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size > limit:
            raise _OutputTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """The message on the command's stdin; a command that does not read it is no failure."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


async def run_command(command: str | Sequence[str], message_json: Mapping[str, Any],
                      timeout: float, output_limit: int = OUTPUT_LIMIT) -> dict[str, str]:
    """Run the shop's command in a session of its own; whatever happens (done, timed out, too
    much output), its whole process group is ended before this returns, so nothing it started
    outlives the look-up."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        return {}
    source = f"command {argv[0]!r}"
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        log.warning("enrichment: %s cannot start: %s", source, exc.strerror or exc)
        return {}
    assert process.stdin and process.stdout and process.stderr
    stdout = asyncio.ensure_future(_read_capped(process.stdout, output_limit))
    stderr = asyncio.ensure_future(_read_capped(process.stderr, output_limit))
    steps: list[asyncio.Future[Any]] = [
        stdout, stderr, asyncio.ensure_future(process.wait()),
        asyncio.ensure_future(_feed(process.stdin, json.dumps(message_json, default=str).encode()))]
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*steps)
    except TimeoutError:
        log.warning("enrichment: %s timed out after %gs", source, timeout)
        return {}
    except _OutputTooLarge:
        log.warning("enrichment: %s wrote more than %d bytes; stopped", source, output_limit)
        return {}
    finally:
        for step in steps:
            step.cancel()
        # The group id is the command's pid (its own session), reserved while any member lives:
        # this ends what it left running too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        # wait() also waits for the pipes to close: one that left the group (setsid) may hold them.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_GRACE):
                await process.wait()
    if process.returncode != 0:
        first = stderr.result().decode(errors="replace").strip().splitlines()[:1]
        log.warning("enrichment: %s exited %s%s", source, process.returncode,
                    f": {clean_line(first[0])[:200]}" if first else "")
        return {}
    return _fields_from(stdout.result(), source)


async def run_http(url: str, message_json: Mapping[str, Any], timeout: float,
                   output_limit: int = OUTPUT_LIMIT) -> dict[str, str]:
    import aiohttp

    source = f"endpoint {url}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            payload = json.loads(json.dumps(message_json, default=str))
            async with session.post(url, json=payload, max_redirects=MAX_REDIRECTS) as response:
                if response.status >= 400:
                    log.warning("enrichment: %s answered HTTP %s", source, response.status)
                    return {}
                if (response.content_length or 0) > output_limit:
                    raise _OutputTooLarge
                body = await _read_capped(response.content, output_limit)
    except TimeoutError:
        log.warning("enrichment: %s timed out after %gs", source, timeout)
        return {}
    except _OutputTooLarge:
        log.warning("enrichment: %s answered more than %d bytes; stopped", source, output_limit)
        return {}
    except aiohttp.ClientError as exc:
        log.warning("enrichment: %s failed: %s", source, exc)
        return {}
    return _fields_from(body, source)


async def run_enrichers(message_json: Mapping[str, Any], *, order_regex: str | None = None,
                        command: str | Sequence[str] | None = None, url: str | None = None,
                        timeout: float = 5.0, deadline: float | None = None) -> dict[str, str]:
    """All configured enrichers for one message (its `subject` and `text` are searched by the
    regex; the command and endpoint get the whole object, plus the fields found so far under
    `fields`). Later sources override earlier ones: regex, then command, then HTTP. Each look-up
    gets `timeout` seconds, and none runs past `deadline` (event loop time), if given."""
    text = f"{message_json.get('subject', '')}\n{message_json.get('text', '')}"
    fields = extract_fields(text, order_regex) if order_regex else {}
    request = {**message_json, "fields": dict(fields)}
    loop = asyncio.get_running_loop()

    def time_left() -> float:
        return timeout if deadline is None else min(timeout, deadline - loop.time())

    if command and time_left() > 0:
        fields.update(await run_command(command, request, time_left()))
    if url and time_left() > 0:
        fields.update(await run_http(url, {**request, "fields": dict(fields)}, time_left()))
    return fields
