"""The demo directory: its config file, its knowledge file, its store.

The config uses plaintext secrets (`allow_plaintext_secrets = true`, file mode 0600): they are
made-up demo credentials for servers that live only while the demo runs, and a plain file lets a
second terminal use the same config (`agent-tui --config DIR/agent-tui.toml list`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from agent_tui.demo import scenario
from agent_tui.demo.sandbox import Sandbox
from agent_tui.errors import UsageError

CONFIG_NAME = "agent-tui.toml"
KNOWLEDGE_NAME = "knowledge.toml"
STORE_NAME = "agent.db"
MARKER = ".agent-tui-demo"            # says "this directory belongs to a demo" before reuse
KNOWLEDGE_FILES = ("knowledge.de.toml", "knowledge.en.toml")
_ENTRY_ID = re.compile(r'^(id\s*=\s*")([^"]+)(")', re.MULTILINE)


def examples_directory() -> Path:
    """Where the example knowledge files are: package data (demo/data/, for an installed
    wheel) when present, else examples/ of the source checkout this package runs from."""
    packaged = Path(__file__).resolve().parent / "data"
    if all((packaged / name).is_file() for name in KNOWLEDGE_FILES):
        return packaged
    return Path(__file__).resolve().parents[2] / "examples"


def prepare_directory(directory: Path) -> None:
    """Make the directory ready for a fresh demo run.

    A directory of an earlier demo is reused: its store is removed, since the sandbox servers
    start empty again and old provider ids would not match them. Anything else must be empty.
    """
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER
    if marker.exists():
        for name in (STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm", "customers.log",
                     "demo.log"):
            (directory / name).unlink(missing_ok=True)
    elif any(directory.iterdir()):
        raise UsageError(f"{directory}: not empty and not an earlier demo directory; "
                         "give an empty or new directory to --dir")
    marker.write_text("agent-tui demo data; safe to delete\n", encoding="utf-8")


def write_knowledge(directory: Path, examples: Path | None = None) -> Path:
    """One knowledge file from the German and English examples (English ids get "-en")."""
    source = examples or examples_directory()
    parts = []
    for name in KNOWLEDGE_FILES:
        path = source / name
        if not path.is_file():
            raise UsageError(f"{path}: knowledge example not found; the demo runs from a "
                             "source checkout (see README)")
        text = path.read_text(encoding="utf-8")
        if name.endswith(".en.toml"):
            text = _ENTRY_ID.sub(lambda m: f"{m.group(1)}{m.group(2)}-en{m.group(3)}", text)
        parts.append(f"# --- from {name} ---\n{text.rstrip()}\n")
    target = directory / KNOWLEDGE_NAME
    target.write_text("\n".join(parts), encoding="utf-8")
    return target


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string for everything written here.
    return json.dumps(value, ensure_ascii=False)


def config_text(directory: Path, sandbox: Sandbox) -> str:
    lines = [
        "# agent-tui demo config: written by `agent-tui demo`, valid while the demo runs.",
        "allow_plaintext_secrets = true       # made-up credentials of the demo's own servers",
        "",
        "[agent]",
        f"name = {_toml(scenario.AGENT_NAME)}",
        'language = "de"',
        "",
        "[store]",
        f"path = {_toml(str(directory / STORE_NAME))}",
        "",
        "[knowledge]",
        f"path = {_toml(KNOWLEDGE_NAME)}",
        "",
        "[automation]",
        "auto_reply = true",
        "min_score = 0.75",
        "window_hours = 24",
        "",
        "[enrichment]",
        f"order_regex = {_toml(scenario.ORDER_REGEX)}",
        f"url = {_toml(sandbox.enrichment.url)}",
        "timeout = 5",
        "",
        "[[rule]]",
        'name = "urgent complaints to Mia"',
        'match = { urgency = "high" }',
        f'actions = {{ assign = {_toml(scenario.AGENT_NAME)}, tag = "complaint", '
        'priority = "high" }',
        "",
        "[[account]]",
        'name = "shop-mail"',
        'type = "email"',
        f"address = {_toml(scenario.SHOP_MAIL)}",
        f"username = {_toml(scenario.SHOP_MAIL)}",
        f"password = {_toml(scenario.SHOP_MAIL_PASSWORD)}",
        f'imap_host = "{sandbox.imap.host}"',
        f"imap_port = {sandbox.imap.port}",
        'imap_tls = "none"',
        f'smtp_host = "{sandbox.smtp.host}"',
        f"smtp_port = {sandbox.smtp.port}",
        'smtp_tls = "none"',
        'sent_folder = "Sent"',
    ]
    if sandbox.twilio is not None:
        lines += [
            "",
            "[[account]]",
            'name = "shop-sms"',
            'type = "twilio"',
            f"account_sid = {_toml(sandbox.twilio.account_sid)}",
            f"auth_token = {_toml(sandbox.twilio.auth_token)}",
            f"sms_from = {_toml(scenario.SHOP_NUMBER)}",
            f"whatsapp_from = {_toml('whatsapp:' + scenario.SHOP_NUMBER)}",
            f"api_base = {_toml(sandbox.twilio_base)}",
            "poll_interval = 5",
        ]
    if sandbox.telegram is not None:
        lines += [
            "",
            "[[account]]",
            'name = "shop-telegram"',
            'type = "telegram"',
            f"token = {_toml(sandbox.telegram_token)}",
            f"api_base = {_toml(sandbox.telegram_base)}",
        ]
    return "\n".join(lines) + "\n"


def write_config(directory: Path, sandbox: Sandbox) -> Path:
    """The config pointing at the sandbox's servers, readable by the owner only."""
    path = directory / CONFIG_NAME
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(config_text(directory, sandbox))
    path.chmod(0o600)                 # an existing file keeps its old mode through O_CREAT
    return path

