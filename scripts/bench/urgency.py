"""Benchmark of the urgency marker: does "high" agree with the tickets' priority column?

Usage: .venv/bin/python scripts/bench/urgency.py [--out FILE]

Data (read from ../shared/data, CC BY-NC: measured here, never copied into the repo):
- german-dev.csv (synthetic German help-desk tickets, priority high/medium/low). Rows are split in
  file order: even rows are the dev half the lexicon was tuned on, odd rows the test half reported.
- the rows marked "en" in dataset-tickets-multi-lang-4-20k.first2181rows.csv, split the same way.
  Its priorities follow the wording much less than the German set's do.

A prediction is positive when `assess(...).urgency == "high"`; the label is positive for priority
"high". Baselines on the same rows: the majority class (never "high"), a random marker with the same
positive rate as the lexicon (expected values, no sampling), and "always high". The dev half also
gets a sweep of the threshold, to show where HIGH_AT sits.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "intents" / "german-support-tickets"
RESULTS = REPO / "scripts" / "bench" / "results" / "urgency.json"

from agent_tui.insight import urgency  # noqa: E402

csv.field_size_limit(10_000_000)


@dataclass(frozen=True, slots=True)
class Ticket:
    subject: str
    body: str
    high: bool


def _read(path: Path, language: str | None = None) -> list[Ticket]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [Ticket(row["subject"] or "", (row["body"] or "").replace("\\n", "\n"),
                       row["priority"] == "high")
                for row in csv.DictReader(handle)
                if language is None or row["language"] == language]


def _metrics(predicted: list[bool], actual: list[bool]) -> dict[str, float]:
    tp = sum(p and a for p, a in zip(predicted, actual, strict=True))
    fp = sum(p and not a for p, a in zip(predicted, actual, strict=True))
    fn = sum(a and not p for p, a in zip(predicted, actual, strict=True))
    correct = sum(p == a for p, a in zip(predicted, actual, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "accuracy": round(correct / len(actual), 3),
            "predicted_positive_rate": round(sum(predicted) / len(predicted), 3)}


def _random_baseline(prevalence: float, rate: float) -> dict[str, float]:
    """Expected figures of a marker that says "high" at random with probability `rate`."""
    f1 = 2 * prevalence * rate / (prevalence + rate) if prevalence + rate else 0.0
    return {"precision": round(prevalence, 3), "recall": round(rate, 3), "f1": round(f1, 3),
            "accuracy": round(prevalence * rate + (1 - prevalence) * (1 - rate), 3),
            "predicted_positive_rate": round(rate, 3)}


def _evaluate(tickets: list[Ticket], lang: str | None, sweep: bool = False) -> dict[str, object]:
    started = time.perf_counter()
    assessments = [urgency.assess(t.body, t.subject, lang) for t in tickets]
    elapsed = time.perf_counter() - started
    actual = [t.high for t in tickets]
    predicted = [a.urgency == "high" for a in assessments]
    prevalence = sum(actual) / len(actual)
    lexicon = _metrics(predicted, actual)
    report: dict[str, object] = {
        "rows": len(tickets),
        "high_share": round(prevalence, 3),
        "lexicon": lexicon,
        "baseline_majority": _metrics([False] * len(actual), actual),
        "baseline_random_same_rate": _random_baseline(prevalence,
                                                      lexicon["predicted_positive_rate"]),
        "baseline_always_high": _metrics([True] * len(actual), actual),
        "negative_share": round(sum(a.negative for a in assessments) / len(assessments), 3),
        "microseconds_per_message": round(elapsed / len(tickets) * 1e6, 1),
    }
    if sweep:
        report["threshold_sweep"] = {
            str(threshold): _metrics([a.score >= threshold for a in assessments], actual)
            for threshold in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    german = DATA / "german-dev.csv"
    multi = DATA / "dataset-tickets-multi-lang-4-20k.first2181rows.csv"
    if not german.is_file():
        print(f"data not found: {german} (it lives beside the checkout in ../shared/data)",
              file=sys.stderr)
        return 1
    tickets = _read(german)
    results: dict[str, object] = {
        "format": 1,
        "threshold": urgency.HIGH_AT,
        "german_dev_half_tuned": _evaluate(tickets[0::2], "de", sweep=True),
        "german_test_half": _evaluate(tickets[1::2], "de"),
    }
    if multi.is_file():
        english = _read(multi, "en")
        results["english_dev_half_tuned"] = _evaluate(english[0::2], "en", sweep=True)
        results["english_test_half"] = _evaluate(english[1::2], "en")
        results["english_test_half_language_unknown"] = _evaluate(english[1::2], None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
