"""Team mode: 4 agents acting at once on one store, SQLite and PostgreSQL side by side.

Usage: .venv/bin/python scripts/bench/team.py [--conversations N] [--agents A] [--seconds S]
                                              [--backends sqlite,postgres] [--no-lease] [--out FILE]

Each backend gets a fresh store seeded with N conversations (default 20,000; one customer
message each, mail, SMS, WhatsApp and Telegram). Then A agent processes (default 4), each with
its own store object, work through the queue at once, all in the same order (the longest-waiting
first, as `space` in the inbox walks it), so they keep colliding on the same conversations. For
each conversation an agent takes the reply lease (`reply:<id>`, as the composer does); only when
it holds the lease does it look whether a colleague took the conversation meanwhile (its
assignee, as the inbox shows it) and, if not, queue a reply through
`agent_tui.engine.replies.queue_reply`, assign it to itself and release the lease. (The look
reads the conversation by id; `outbox_rows(conversation_id=)` would be a full scan of the outbox
on SQLite, which has no index on outbox.conversation_id yet.) An observer process with its own
store object polls `data_version()` (what every TUI polls, every 0.5 s) as fast as it can and,
whenever it changes, counts the replies it can see.

Reported per backend:
- double replies: conversations with more than one reply at the end (must be 0);
- lease refusals (collisions the lease settled) and replies per second over all agents;
- propagation: for the k-th reply committed (by any agent), the time until the observer first
  saw k replies: the delay between one agent's change and its appearance in another store
  object, before the TUI's own poll interval (0.5 s; add half of it on average) is added.
Ratios PostgreSQL/SQLite follow. `--no-lease` is the control: the same agents without the lease
(look, then reply) must produce double replies, or the check would prove nothing.
The PostgreSQL run starts a private cluster (tests/fakes/postgres.py) and is skipped with a
message when psycopg or the server binaries are missing.
Results: a table on stdout and JSON in scripts/bench/results/team.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "scripts" / "bench" / "results" / "team.json"

from agent_tui.model import Channel, Direction, InboundMessage  # noqa: E402
from agent_tui.store import StoreBackend, open_store  # noqa: E402

BATCH = 500
LEASE_SECONDS = 300.0
OBSERVER_PAUSE = 0.001               # between two data_version() polls of the observer
TUI_POLL_SECONDS = 0.5               # agent_tui.ui.app.POLL_SECONDS
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
CHANNELS = ((Channel.EMAIL, "shop-mail"), (Channel.SMS, "shop-sms"),
            (Channel.WHATSAPP, "shop-wa"), (Channel.TELEGRAM, "shop-tg"))


# --- seeding ---------------------------------------------------------------------------------


def customer_message(i: int) -> tuple[str, InboundMessage]:
    channel, account = CHANNELS[i % len(CHANNELS)]
    if channel is Channel.EMAIL:
        sender = f"kunde{i}@example.org"
    elif channel is Channel.TELEGRAM:
        sender = str(100000 + i)
    else:
        sender = f"+4915{i:09d}"
    return account, InboundMessage(
        channel=channel, provider_id=f"bench-{i}" + ("@example.org" if channel is Channel.EMAIL
                                                       else ""),
        direction=Direction.INBOUND, sender=sender, sender_name=f"Kunde {i}",
        recipients=["service@shop.example"], sent_at=T0 + timedelta(seconds=i),
        subject=f"Bestellung {10000 + i}" if channel is Channel.EMAIL else "",
        text=f"Hallo, wo bleibt meine Bestellung {10000 + i}? Viele Grüße")


def seed(store: StoreBackend, conversations: int) -> float:
    started = time.perf_counter()
    by_account: dict[str, list[InboundMessage]] = {}
    for i in range(conversations):
        account, message = customer_message(i)
        by_account.setdefault(account, []).append(message)
    for account, messages in by_account.items():
        for start in range(0, len(messages), BATCH):
            store.ingest(account, messages[start:start + BATCH], cursor_key="main", cursor=None)
    return time.perf_counter() - started


# --- the agents and the observer (each its own process and store object) ----------------------


def agent(location: str, number: int, queue_ids: list[int], use_lease: bool, seconds: float,
          start: Any, results: Any) -> None:
    from agent_tui.engine.replies import queue_reply

    store = open_store(location)
    name = f"Agent{number}"
    holder = f"{name}@bench:{os.getpid()}"
    replied: list[tuple[float, int]] = []      # (monotonic time after commit, outbox id)
    refused = answered_before = 0
    start.wait()
    deadline = time.monotonic() + seconds
    for conversation_id in queue_ids:
        if time.monotonic() > deadline:
            break
        lease = f"reply:{conversation_id}"
        if use_lease and not store.acquire_lease(lease, holder, LEASE_SECONDS):
            refused += 1                # "Agent2 is replying": on to the next one
            continue
        try:
            if store.get_conversation(conversation_id).assignee is not None:
                answered_before += 1    # a colleague answered while we walked here
                continue
            outbox_id = queue_reply(store, conversation_id, f"Hallo, {name} hier: Ihre "
                                    "Bestellung ist unterwegs.", author=name)
            replied.append((time.monotonic(), outbox_id))
            store.assign(conversation_id, name)
        finally:
            if use_lease:
                store.release_lease(lease, holder)
    store.close()
    results.put({"agent": name, "replied": replied, "refused": refused,
                 "answered_before": answered_before})


def observer(location: str, stop: Any, ready: Any, results: Any) -> None:
    """Poll data_version() as a TUI does (only faster); on a change, count the replies seen."""
    store = open_store(location)
    seen: list[tuple[float, int]] = []          # (monotonic time, replies visible)
    version = store.data_version()
    polls = 0
    ready.set()
    while not stop.is_set():
        current = store.data_version()
        polls += 1
        if current != version:
            version = current
            count = sum(store.outbox_counts().values())
            now = time.monotonic()
            if not seen or count > seen[-1][1]:
                seen.append((now, count))
        else:
            time.sleep(OBSERVER_PAUSE)
    store.close()
    results.put({"observer": seen, "polls": polls})


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def propagation(commits: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """For the k-th commit (in time), the delay until the observer saw at least k replies."""
    delays: list[float] = []
    index = 0
    for k, committed in enumerate(sorted(commits), start=1):
        while index < len(seen) and seen[index][1] < k:
            index += 1
        if index == len(seen):
            break
        delays.append(max(0.0, seen[index][0] - committed))
    return delays


def run_backend(location: str, store: StoreBackend, *, agents: int, seconds: float,
                use_lease: bool) -> dict[str, Any]:
    queue_ids = [c.id for c in store.waiting_conversations(limit=1_000_000)]
    queue_ids.sort(key=lambda i: i)             # oldest first: everyone walks the same queue
    context = multiprocessing.get_context("spawn")
    start, stop, ready = context.Event(), context.Event(), context.Event()
    results = context.Queue()
    watcher = context.Process(target=observer, args=(location, stop, ready, results))
    watcher.start()
    workers = [context.Process(target=agent, args=(location, n, queue_ids, use_lease, seconds,
                                                   start, results))
               for n in range(1, agents + 1)]
    for worker in workers:
        worker.start()
    ready.wait(60)
    time.sleep(2.0)                 # let every agent import and open its store before the start
    began = time.monotonic()
    start.set()
    reports = [results.get(timeout=seconds + 600) for _ in workers]
    elapsed = time.monotonic() - began
    for worker in workers:
        worker.join()
    time.sleep(0.5)                 # the observer sees the last commits
    stop.set()
    seen = results.get(timeout=60)
    watcher.join()

    per_conversation = Counter(r.conversation_id for r in store.outbox_rows())
    doubles = sum(1 for count in per_conversation.values() if count > 1)
    commits = [at for report in reports for at, _ in report["replied"]]
    delays = propagation(commits, seen["observer"])
    replies = len(commits)
    return {
        "conversations": len(queue_ids),
        "agents": agents,
        "lease": use_lease,
        "replies": replies,
        "answered": len(per_conversation),
        "double_replies": doubles,
        "lease_refusals": sum(r["refused"] for r in reports),
        "answered_meanwhile": sum(r["answered_before"] for r in reports),
        "seconds": round(elapsed, 2),
        "replies_per_second": round(replies / elapsed, 1) if elapsed else 0.0,
        "per_agent": {r["agent"]: len(r["replied"]) for r in reports},
        "observer_polls": seen["polls"],
        "propagation_ms": {
            "samples": len(delays),
            "p50": round(1000 * statistics.median(delays), 2) if delays else None,
            "p90": round(1000 * percentile(delays, 0.90), 2) if delays else None,
            "p99": round(1000 * percentile(delays, 0.99), 2) if delays else None,
            "max": round(1000 * max(delays), 2) if delays else None,
        },
    }


# --- the two backends ------------------------------------------------------------------------


def bench_sqlite(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    path = workdir / "team.db"
    store = open_store(path)
    try:
        seeded = seed(store, args.conversations)
        result = run_backend(str(path), store, agents=args.agents, seconds=args.seconds,
                             use_lease=not args.no_lease)
    finally:
        store.close()
    return {"seed_seconds": round(seeded, 1), **result}


def bench_postgres(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return {"skipped": "psycopg is not installed (pip install -e '.[postgres]')"}
    from tests.fakes.postgres import PostgresServer

    if PostgresServer.binaries() is None:
        return {"skipped": "PostgreSQL server binaries not found "
                           "(Debian: apt-get install postgresql, or set $PG_BIN)"}
    with PostgresServer() as server:
        url = server.create_database()
        store = open_store(url)
        try:
            seeded = seed(store, args.conversations)
            result = run_backend(url, store, agents=args.agents, seconds=args.seconds,
                                 use_lease=not args.no_lease)
        finally:
            store.close()
    return {"seed_seconds": round(seeded, 1), **result}


def ratio(pg: dict[str, Any], lite: dict[str, Any], *path: str) -> float | None:
    a: Any = pg
    b: Any = lite
    for key in path:
        a, b = a.get(key) if a else None, b.get(key) if b else None
    return round(a / b, 2) if isinstance(a, int | float) and isinstance(b, int | float) and b \
        else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300.0,
                        help="stop the agents after this long (default 300)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-lease", action="store_true",
                        help="control run: the agents reply without taking the lease")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                              "cpus": os.cpu_count(), "conversations": args.conversations,
                              "agents": args.agents, "lease": not args.no_lease}
    with tempfile.TemporaryDirectory(prefix="agent-tui-team-") as workdir:
        if "sqlite" in backends:
            print(f"SQLite: seeding {args.conversations} conversations, then {args.agents} "
                  "agents ...", flush=True)
            report["sqlite"] = bench_sqlite(args, Path(workdir))
        if "postgres" in backends:
            print(f"PostgreSQL: seeding {args.conversations} conversations, then {args.agents} "
                  "agents ...", flush=True)
            report["postgres"] = bench_postgres(args)
            if "skipped" in report["postgres"]:
                print(f"PostgreSQL skipped: {report['postgres']['skipped']}", flush=True)

    lite, pg = report.get("sqlite") or {}, report.get("postgres") or {}
    rows = [("double replies", "double_replies"), ("lease refusals", "lease_refusals"),
            ("answered meanwhile", "answered_meanwhile"), ("replies", "replies"),
            ("replies/s", "replies_per_second"), ("seconds", "seconds")]
    print(f"\n{'':28}{'SQLite':>12}{'PostgreSQL':>12}{'PG/SQLite':>11}")
    for label, key in rows:
        print(f"{label:28}{lite.get(key, '-')!s:>12}{pg.get(key, '-')!s:>12}"
              f"{ratio(pg, lite, key) or '-'!s:>11}")
    for q in ("p50", "p90", "p99", "max"):
        left = (lite.get("propagation_ms") or {}).get(q, "-")
        right = (pg.get("propagation_ms") or {}).get(q, "-")
        print(f"{'change seen by another, ' + q + ' ms':28}{left!s:>12}{right!s:>12}"
              f"{ratio(pg, lite, 'propagation_ms', q) or '-'!s:>11}")
    report["ratios_pg_over_sqlite"] = {
        "replies_per_second": ratio(pg, lite, "replies_per_second"),
        **{f"propagation_{q}": ratio(pg, lite, "propagation_ms", q)
           for q in ("p50", "p90", "p99")}}
    print(f"(a TUI polls every {TUI_POLL_SECONDS} s: add {TUI_POLL_SECONDS / 2:.2f} s on "
          "average for what a person sees)")
    failed = [name for name in ("sqlite", "postgres")
              if (report.get(name) or {}).get("double_replies") and not args.no_lease]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if failed:
        print(f"DOUBLE REPLIES on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
