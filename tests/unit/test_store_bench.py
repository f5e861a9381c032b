"""The store benchmark still runs against the current store API (a tiny run, no timing claims)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "store.py"


def test_store_benchmark_runs_and_writes_its_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_store", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_store", bench)   # dataclasses look themselves up
    spec.loader.exec_module(bench)
    out = tmp_path / "store.json"
    assert bench.main(["--messages", "1000", "--rounds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["messages"], report["conversations"], report["search_hits"]) == \
        (1000, 100, bench.RARE_WORDS[bench.SEARCH_WORD])
    assert set(report["ratios"]) == {"insert_rate", "list", "search", "get_messages",
                                     "bytes_per_message"}
    assert "list 50 newest" in capsys.readouterr().out
