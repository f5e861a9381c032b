"""TUI benchmark: a big store against a small one, and our inbox against a bare Textual app.

    .venv/bin/python scripts/bench/tui.py [--messages 100000] [--conversations 20000]

Each scenario runs in its own interpreter (fresh imports, honest RSS): time to the first painted
inbox, latency of `j` and of opening a conversation, and peak RSS. Targets (issue 7): first paint
<= 1.5x the bare app; `j` and open on 20,000 conversations within 1.2x of 100; RSS <= 1.5x.
Writes scripts/bench/results/tui.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "scripts" / "bench" / "results"
WORDS = ["Bestellung", "Paket", "Lieferung", "Rechnung", "Rücksendung", "Größe", "Farbe",
         "Gutschein", "Zahlung", "order", "delivery", "refund", "invoice", "size", "colour",
         "voucher", "payment"]


def build_store(path: Path, messages: int, conversations: int) -> None:
    sys.path.insert(0, str(ROOT))
    from agent_tui.model import Channel, Direction, InboundMessage
    from agent_tui.store import open_store

    store = open_store(path)
    now = datetime.now(UTC)
    batch: list[InboundMessage] = []
    for i in range(messages):
        c = i % conversations
        batch.append(InboundMessage(
            channel=Channel.EMAIL, provider_id=f"m{i}@bench", direction=Direction.INBOUND,
            sender=f"kunde{c}@example.org", sender_name=f"Kunde {c}",
            recipients=["service@shop.example"],
            sent_at=now - timedelta(minutes=(messages - i) * 3), subject=f"Frage {c}",
            text=" ".join(WORDS[(i + k) % len(WORDS)] for k in range(40)),
            references=[f"m{i - conversations}@bench"] if i >= conversations else []))
        if len(batch) == 1000:
            store.ingest("shop", batch, cursor_key="main", cursor=None)
            batch = []
    if batch:
        store.ingest("shop", batch, cursor_key="main", cursor=None)
    store.close()


SCENARIO = r'''
import asyncio, json, sys, time
started = time.perf_counter()
kind, db = sys.argv[1], sys.argv[2]

async def main():
    if kind == "bare":
        from textual.app import App
        from textual.widgets import DataTable

        class Bare(App):
            def compose(self):
                yield DataTable()

            def on_mount(self):
                table = self.query_one(DataTable)
                table.add_columns("a", "b", "c")
                for i in range(50):
                    table.add_row(str(i), "x" * 20, "y" * 40)

        app = Bare()
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            first = time.perf_counter() - started
        return {"first_paint": first}
    from agent_tui.config import parse_config
    from agent_tui.store import open_store
    from agent_tui.ui.app import AgentApp
    from pathlib import Path
    config = parse_config(f'[store]\npath = "{db}"\n[knowledge]\npath = "/nonexistent"\n',
                          Path(db).parent / "c.toml")
    app = AgentApp(config, open_store(db), None, load_suggester=False)
    async with app.run_test(size=(160, 48)) as pilot:
        while not getattr(app.screen, "rows", None):
            await pilot.pause(0.01)
        first = time.perf_counter() - started
        j = []
        for _ in range(30):
            t = time.perf_counter()
            await pilot.press("j")
            await pilot.pause()
            j.append(time.perf_counter() - t)
        opens = []
        for _ in range(5):
            t = time.perf_counter()
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            opens.append(time.perf_counter() - t)
            await pilot.press("escape")
            # The inbox reloads in a thread after escape; let it finish so the next open is
            # timed alone (typing is never blocked by that reload).
            await app.workers.wait_for_complete()
            await pilot.pause()
    return {"first_paint": first, "j": sorted(j)[len(j) // 2], "open": sorted(opens)[2]}

result = asyncio.run(main())
# VmHWM of this interpreter; ru_maxrss would carry over the parent's peak across fork.
with open("/proc/self/status") as status:
    hwm = next(line for line in status if line.startswith("VmHWM:"))
result["rss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(result))
'''


def run(kind: str, db: Path, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", SCENARIO, kind, str(db)], check=True,
                             capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big" / "agent.db", Path(tmp) / "small" / "agent.db"
        t = time.perf_counter()
        build_store(big, args.messages, args.conversations)
        build_store(small, 100, 100)
        print(f"stores built in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        bare = run("bare", small, args.repeats)
        small_r = run("inbox", small, args.repeats)
        big_r = run("inbox", big, args.repeats)
    ratios = {
        "first_paint_big_vs_bare": big_r["first_paint"] / bare["first_paint"],
        "j_big_vs_small": big_r["j"] / small_r["j"],
        "open_big_vs_small": big_r["open"] / small_r["open"],
        "rss_big_vs_small": big_r["rss_mb"] / small_r["rss_mb"],
    }
    print(f"{'':24}{'bare':>10}{'100 msgs':>12}{'big store':>12}")
    print(f"{'first paint (s)':24}{bare['first_paint']:10.3f}{small_r['first_paint']:12.3f}"
          f"{big_r['first_paint']:12.3f}")
    print(f"{'j latency (ms)':24}{'':10}{small_r['j'] * 1000:12.1f}{big_r['j'] * 1000:12.1f}")
    print(f"{'open latency (ms)':24}{'':10}{small_r['open'] * 1000:12.1f}"
          f"{big_r['open'] * 1000:12.1f}")
    print(f"{'peak RSS (MB)':24}{bare['rss_mb']:10.1f}{small_r['rss_mb']:12.1f}"
          f"{big_r['rss_mb']:12.1f}")
    for name, value in ratios.items():
        print(f"{name:28} {value:6.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tui.json").write_text(json.dumps(
        {"format": 1, "messages": args.messages, "conversations": args.conversations,
         "bare": bare, "small": small_r, "big": big_r, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
