"""Time the imports of the CLI (what cron pays) and of the TUI (what a person waits for).

Usage: .venv/bin/python scripts/cold_start.py [--runs N]. Each figure is the median over N fresh
interpreters, so module caches of the measuring process do not flatter the result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TARGETS = {
    "python (baseline)": "pass",
    "cli + run --once path": "import agent_tui.cli, agent_tui.engine.runtime, agent_tui.store",
    "tui": "import agent_tui.ui.app",
}


def time_import(statement: str) -> float:
    code = f"import time; t=time.perf_counter(); {statement}; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {name: statistics.median(time_import(stmt) for _ in range(args.runs))
               for name, stmt in TARGETS.items()}
    for name, seconds in results.items():
        print(f"{name:<24} {seconds * 1000:8.1f} ms")
    print(json.dumps({"format": 1, "import_seconds": results}))


if __name__ == "__main__":
    main()
