"""Loading the config file: TOML -> the typed, frozen dataclasses of `agent_tui.config.types`,
with errors that name file, line and key.

The file is found via `--config FILE`, then `$AGENT_TUI_CONFIG`, then
`platformdirs.user_config_dir("agent-tui")/agent-tui.toml`; with no file at all a default config
(no accounts) is returned so the TUI and the demo still start. Secrets stay unresolved references
(`SecretRef`); `agent_tui.secrets` resolves them when a connector needs them (DESIGN.md inv. 6).

tomllib reports no line numbers for values: `agent_tui.config.line_index` maps key paths to lines.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import platformdirs

from agent_tui.config.line_index import KeyPath, TomlLineIndex, key_assigned
from agent_tui.config.types import (
    ACCOUNT_TYPES,
    ASSIGNEE_ME,
    ASSIGNEE_NOBODY,
    ASSIGNMENT_MODES,
    CHANNELS,
    DEFAULT_IMAP_PORTS,
    DEFAULT_SMTP_PORTS,
    DEFAULT_THEME,
    KNOWN_KEYS,
    POSTGRES_PREFIXES,
    PRIORITIES,
    SERVE_HOST,
    SERVE_PORT,
    TELEGRAM_API_BASE,
    TLS_MODES,
    TWILIO_API_BASE,
    UI_BINDING_IDS,
    VIEW_STATUSES,
    Account,
    AgentConfig,
    AssignmentConfig,
    AssignmentRule,
    AutomationConfig,
    Config,
    EmailAccount,
    EnrichmentConfig,
    KnowledgeConfig,
    PrivacyConfig,
    Rule,
    SavedView,
    SecretRef,
    ServeConfig,
    SlaConfig,
    StoreConfig,
    TelegramAccount,
    TwilioAccount,
    UiConfig,
    postgres_url_password,
)
from agent_tui.errors import ConfigError
from agent_tui.loopback import is_loopback_host

APP_NAME = "agent-tui"
CONFIG_FILE_NAME = "agent-tui.toml"
CONFIG_ENV_VAR = "AGENT_TUI_CONFIG"
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_KEY_NAME = re.compile(
    r"(?:(?:ctrl|alt|shift|meta|super|hyper)\+)*(?:[A-Za-z0-9_]+|[^\sA-Za-z0-9_,+])")


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
        raise ConfigError(f"TOML syntax error at column {position.group(2)}: "
                          f"{message[: position.start()]}", path=shown, line=line,
                          key=key_assigned(lines[line - 1]) if line <= len(lines) else None
                          ) from None
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
            if postgres_url_password(value):
                # libpq reads the password from ~/.pgpass or PGPASSWORD when the URL has none.
                self.plaintext_secret(
                    (*t.where, "path"), allow_plaintext,
                    refused="a password in the URL is a plaintext secret and is refused; leave "
                            "it out and keep it in ~/.pgpass or PGPASSWORD (libpq reads both), "
                            "or set allow_plaintext_secrets = true",
                    advice="the URL holds a password: prefer ~/.pgpass or PGPASSWORD")
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
            self.plaintext_secret(
                where, allow_plaintext,
                refused=f"plaintext secrets are refused; store it with `agent-tui secret set "
                        f"{account}` and write \"keyring:agent-tui/{account}\" (or \"env:VAR\", "
                        f"\"cmd:...\"), or set allow_plaintext_secrets = true",
                advice=f"prefer \"keyring:agent-tui/{account}\", \"env:VAR\" or \"cmd:...\"")
        return ref

    def plaintext_secret(self, where: KeyPath, allowed: bool, *, refused: str,
                         advice: str) -> None:
        """A secret written into the file: refused unless allowed, then a warning, and the file
        must not be readable by group or others (check_permissions)."""
        if not allowed:
            raise self.error(where, refused)
        self.plaintext_secret_at = self.plaintext_secret_at or where
        self.warn(where, f"plaintext secret in the config file; {advice}")

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

