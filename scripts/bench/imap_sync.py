#!/usr/bin/env python3
"""Benchmark: our initial IMAP sync against mbsync and a bare imaplib fetch, on a local Dovecot.

    .venv/bin/python scripts/bench/imap_sync.py [--messages 10000] [--repeat 2]

Fills a fresh Dovecot (tests/fakes/dovecot.py) with realistic mail written as Maildir files
(mixed sizes, HTML alternatives, some attachments, several charsets), lets Dovecot index it, and
then times on the same mailbox:
  (a) EmailConnector.fetch from an empty cursor, MIME parsing included, plus ingest into a fresh
      store when agent_tui.store is available (else parse only, and the JSON says so);
  (b) mbsync (isync) pulling the mailbox into an empty Maildir;
  (c) imaplib `UID FETCH 1:* BODY.PEEK[]` in one command - the floor.
Each is run --repeat times, the best time counts. (a) runs in a child process so its peak RSS is
its own. Also times an incremental sync of 10 new messages. Results go to
scripts/bench/results/imap_sync.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import imaplib
import json
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent_tui.model import Cursor  # noqa: E402 - after the path set-up above
from connectors.email import EmailConnector, EmailSettings  # noqa: E402
from tests.fakes.dovecot import DEFAULT_USER, Dovecot  # noqa: E402

RESULTS = REPO / "scripts" / "bench" / "results" / "imap_sync.json"

WORDS = [
    "order", "parcel", "delivery", "invoice", "refund", "return", "address", "tracking",
    "warehouse", "customer", "please", "thanks", "hello", "regards", "problem", "damaged",
    "missing", "week", "yesterday", "tomorrow", "payment", "bestellung", "lieferung", "paket",
    "rechnung", "rücksendung", "größe", "danke", "grüße", "freundlichen",
]
NAMES = ["Anna Müller", "Jörg Weiß", "Chloé Dubois", "Li Wei", "Sam Smith", "Olga Petrova",
         "Ümit Yılmaz", "Maria García", "Ana Lima", "Tom O'Neil"]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _paragraphs(rng: random.Random, size: int) -> str:
    out: list[str] = []
    total = 0
    while total < size:
        paragraph = " ".join(_sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(2, 6)))
        out.append(paragraph)
        total += len(paragraph)
    return "\n\n".join(out)


def make_message(number: int, rng: random.Random) -> bytes:
    """One realistic customer mail; about 70 % plain, 20 % HTML alternative, 10 % attachments."""
    name = rng.choice(NAMES)
    sender = f"customer{number % 700}@example.org"
    date = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=number * 7)
    subject = f"Bestellung {100000 + number % 3000}: {rng.choice(WORDS)} {rng.choice(WORDS)}"
    if number % 5 == 1:
        subject = "Re: " + subject
    headers = [
        f"From: {_encoded_name(name)} <{sender}>",
        "To: service@shop.test",
        f"Subject: {subject}",
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: <bench-{number}@example.org>",
        "MIME-Version: 1.0",
    ]
    if number % 5 == 1:
        headers.append(f"In-Reply-To: <bench-{number - 1}@example.org>")
        headers.append(f"References: <bench-{number - 1}@example.org>")
    text = _paragraphs(rng, rng.choice((400, 900, 1500, 3000, 6000)))
    kind = number % 10
    boundary = f"=_bench_{number}"
    if kind < 7:
        if kind % 2:
            body = _qp_latin1(text)
            headers += ["Content-Type: text/plain; charset=iso-8859-1",
                        "Content-Transfer-Encoding: quoted-printable"]
        else:
            body = text.encode()
            headers += ["Content-Type: text/plain; charset=utf-8",
                        "Content-Transfer-Encoding: 8bit"]
        return _join(headers, body)
    html = "<html><body>" + "".join(f"<p>{p}</p>" for p in text.split("\n\n")) + "</body></html>"
    parts = [
        (["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"],
         _b64(text.encode())),
        (["Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64"],
         _b64(html.encode())),
    ]
    if kind < 9:
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        return _join(headers, _multipart(boundary, parts))
    inner = f"{boundary}_alt"
    attachment = rng.randbytes(rng.choice((20_000, 60_000, 150_000)))
    filename = rng.choice(("rechnung.pdf", "foto.jpg", "Lieferschein März.pdf"))
    mixed = [
        ([f'Content-Type: multipart/alternative; boundary="{inner}"'],
         _multipart(inner, parts)),
        ([f"Content-Type: application/octet-stream; name*=utf-8''{_pct(filename)}",
          f"Content-Disposition: attachment; filename*=utf-8''{_pct(filename)}",
          "Content-Transfer-Encoding: base64"], _b64(attachment)),
    ]
    headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    return _join(headers, _multipart(boundary, mixed))


def _encoded_name(name: str) -> str:
    if name.isascii():
        return f'"{name}"'
    return "=?utf-8?b?" + base64.b64encode(name.encode()).decode() + "?="


def _pct(text: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c in ".-_" else
                   "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _qp_latin1(text: str) -> bytes:
    import quopri
    return quopri.encodestring(text.encode("latin-1", "replace"))


def _b64(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def _multipart(boundary: str, parts: list[tuple[list[str], bytes]]) -> bytes:
    out = b""
    for headers, body in parts:
        out += f"--{boundary}\r\n".encode() + "\r\n".join(headers).encode() + b"\r\n\r\n"
        out += body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _join(headers: list[str], body: bytes) -> bytes:
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return "\r\n".join(headers).encode() + b"\r\n\r\n" + body


# ---- the three contestants ----------------------------------------------------------------------

def settings(server: Dovecot) -> EmailSettings:
    return EmailSettings(
        name="bench", address=DEFAULT_USER, username=DEFAULT_USER,
        password=server.users[DEFAULT_USER], imap_host=server.host, imap_port=server.port,
        imap_tls="none", smtp_host="127.0.0.1", smtp_port=1, smtp_tls="none",
        folders=("INBOX",), sent_folder="", timeout=60.0)


def _open_store(path: Path) -> Any:
    """A fresh store when agent_tui.store exists (it is written in parallel), else None."""
    try:
        from agent_tui.store import Store  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    opener = getattr(Store, "open", None)
    return opener(str(path)) if opener else Store(str(path))


async def our_sync(config: EmailSettings, store_path: Path | None,
                   cursor: Cursor | None = None) -> dict[str, Any]:
    store = _open_store(store_path) if store_path else None
    connector = EmailConnector(config)
    count = 0
    started = time.perf_counter()
    try:
        async for batch in connector.fetch(cursor):
            if store is not None:
                store.ingest(config.name, batch.messages, cursor_key="imap", cursor=batch.cursor)
            count += len(batch.messages)
            cursor = batch.cursor
    finally:
        await connector.close()
    return {"seconds": time.perf_counter() - started, "messages": count, "cursor": cursor,
            "stored": store is not None}


def child_sync(args: argparse.Namespace) -> None:
    """Run (a) in this process and print its figures (peak RSS is then ours alone)."""
    config = EmailSettings(**json.loads(args.child_sync))
    store_path = Path(args.store) if args.store else None
    result = asyncio.run(our_sync(config, store_path))
    result["max_rss_mb"] = _peak_rss_mb()
    # The parse workers: reap them so that their peak counts among our children.
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    result["max_rss_worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result.pop("cursor")
    print(json.dumps(result))


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space exec made; ru_maxrss on Linux
    keeps the high-water mark of the process we were forked from (here the parent, which holds
    the whole generated mailbox), so it read ~170 MB whatever the sync used."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours_in_child(config: EmailSettings, workdir: Path) -> dict[str, Any]:
    store = workdir / "store.db"
    for leftover in workdir.glob("store.db*"):
        leftover.unlink()
    fields = {name: getattr(config, name) for name in EmailSettings.__dataclass_fields__}
    fields["folders"] = list(config.folders)
    completed = subprocess.run(
        [sys.executable, __file__, "--child-sync", json.dumps(fields), "--store", str(store)],
        check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def run_mbsync(server: Dovecot, workdir: Path) -> dict[str, Any]:
    local = workdir / "mbsync-maildir"
    state = workdir / "mbsync-state"
    shutil.rmtree(local, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    local.mkdir()
    state.mkdir()
    config = workdir / "mbsyncrc"
    config.write_text(f"""\
IMAPAccount bench
Host {server.host}
Port {server.port}
User {DEFAULT_USER}
Pass {server.users[DEFAULT_USER]}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns INBOX
Sync Pull
Create Near
SyncState {state}/
""")
    os.chmod(config, 0o600)
    started = time.perf_counter()
    subprocess.run(["mbsync", "-q", "-c", str(config), "bench"], check=True,
                   capture_output=True)
    seconds = time.perf_counter() - started
    messages = sum(1 for _ in (local / "INBOX" / "new").iterdir()) + sum(
        1 for _ in (local / "INBOX" / "cur").iterdir())
    return {"seconds": seconds, "messages": messages}


def run_imaplib(server: Dovecot) -> dict[str, Any]:
    started = time.perf_counter()
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(DEFAULT_USER, server.users[DEFAULT_USER])
    imap.select("INBOX", readonly=True)
    status, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
    imap.logout()
    seconds = time.perf_counter() - started
    assert status == "OK"
    messages = sum(1 for item in data if isinstance(item, tuple))
    return {"seconds": seconds, "messages": messages}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: float(r["seconds"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--child-sync", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sync:
        child_sync(args)
        return 0
    if not Dovecot.available() or shutil.which("mbsync") is None:
        print("needs /usr/sbin/dovecot and mbsync (Debian: dovecot-imapd isync)", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="agent-tui-bench-"))
    os.chmod(workdir, 0o755)
    server = Dovecot(workdir / "dovecot")
    try:
        rng = random.Random(4)
        started = time.perf_counter()
        total_bytes = 0
        for number in range(args.messages):
            raw = make_message(number, rng)
            total_bytes += len(raw)
            server.deliver(raw)
        fill_seconds = time.perf_counter() - started
        server.start()
        # Dovecot indexes the new mailbox on first access; pay that (and warm the page cache)
        # before anything is timed, so all three contestants see the same server state.
        run_imaplib(server)

        config = settings(server)
        ours = [run_ours_in_child(config, workdir) for _ in range(args.repeat)]
        mbsync = [run_mbsync(server, workdir) for _ in range(args.repeat)]
        floor = [run_imaplib(server) for _ in range(args.repeat)]

        initial = asyncio.run(our_sync(config, None))
        for number in range(args.messages, args.messages + 10):
            server.deliver(make_message(number, rng))
        incremental = asyncio.run(our_sync(config, None, initial["cursor"]))

        a, b, c = best(ours), best(mbsync), best(floor)
        result = {
            "format": 1,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": args.messages,
            "mailbox_mb": round(total_bytes / 2**20, 1),
            "fill_seconds": round(fill_seconds, 2),
            "repeat": args.repeat,
            "ours": {"seconds": round(a["seconds"], 3), "messages": a["messages"],
                     "max_rss_mb": round(a["max_rss_mb"], 1),
                     "max_rss_parse_worker_mb": round(a["max_rss_worker_mb"], 1),
                     "includes": "fetch + MIME parse" + (" + store ingest" if a["stored"]
                                                         else " (agent_tui.store missing)")},
            "mbsync": {"seconds": round(b["seconds"], 3), "messages": b["messages"]},
            "imaplib_floor": {"seconds": round(c["seconds"], 3), "messages": c["messages"]},
            "ratio_ours_to_mbsync": round(a["seconds"] / b["seconds"], 2),
            "ratio_ours_to_floor": round(a["seconds"] / c["seconds"], 2),
            "incremental_10": {"seconds": round(incremental["seconds"], 3),
                               "messages": incremental["messages"]},
            "all_runs": {"ours": [round(r["seconds"], 3) for r in ours],
                         "mbsync": [round(r["seconds"], 3) for r in mbsync],
                         "imaplib_floor": [round(r["seconds"], 3) for r in floor]},
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
