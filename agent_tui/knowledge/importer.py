"""Build a knowledge file from a labelled CSV (`agent-tui knowledge import`)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from agent_tui.errors import UsageError
from agent_tui.knowledge.text import Analyzer, detect_language

KEYWORDS_PER_ENTRY = 8
_NON_ID = re.compile(r"[^a-z0-9]+")


def entry_id_for(label: str) -> str:
    """DESIGN.md: lower-cased, every run outside [a-z0-9] replaced by `-`, trimmed."""
    return _NON_ID.sub("-", label.lower()).strip("-")


def _toml_string(value: str) -> str:
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    escaped = "".join(c if c.isprintable() or c in "\\" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _toml_list(values: list[str]) -> str:
    if not values:
        return "[]"
    return "[\n" + "".join(f"    {_toml_string(v)},\n" for v in values) + "]"


def read_labelled_csv(csv_path: Path, text_column: str, label_column: str,
                      answer_column: str | None) -> list[tuple[str, str, str]]:
    """(text, label, answer) rows; UsageError naming the file and column on bad input."""
    try:
        with csv_path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for column in (text_column, label_column, answer_column):
                if column is not None and column not in columns:
                    raise UsageError(f"{csv_path}: no column '{column}' "
                                     f"(columns: {', '.join(columns) or 'none'})")
            rows = []
            for row in reader:
                text = (row.get(text_column) or "").strip()
                label = (row.get(label_column) or "").strip()
                answer = (row.get(answer_column) or "").strip() if answer_column else ""
                if text and label:
                    rows.append((text, label, answer))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{csv_path}: not UTF-8 (byte {exc.start}); save the CSV as UTF-8"
                         ) from None
    except OSError as exc:
        raise UsageError(f"{csv_path}: cannot read: {exc.strerror or exc}") from None
    except csv.Error as exc:
        raise UsageError(f"{csv_path}: not a valid CSV: {exc}") from None
    return rows


def import_csv(csv_path: Path, text_column: str, label_column: str,
               answer_column: str | None = None) -> str:
    """The TOML text of a knowledge file: one entry per label, its texts as examples, the most
    common answer as body, and the words most typical of the label as keywords."""
    rows = read_labelled_csv(csv_path, text_column, label_column, answer_column)
    if not rows:
        raise UsageError(f"{csv_path}: no rows with both '{text_column}' and '{label_column}'")
    lang = detect_language(text for text, _, _ in rows[:500])
    analyzer = Analyzer(lang)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for text, label, answer in rows:
        by_label.setdefault(label, []).append((text, answer))
    # Keywords: words frequent in a label's examples and rare in the other labels' (tf * idf).
    label_words: dict[str, Counter[str]] = {}
    for label, items in by_label.items():
        counts: Counter[str] = Counter()
        for text, _ in items:
            counts.update(set(analyzer.tokens(text)))
        label_words[label] = counts
    labels_with: Counter[str] = Counter()
    for counts in label_words.values():
        labels_with.update(counts.keys())
    ids: dict[str, str] = {}
    out = [f"# Imported from {csv_path.name}: {len(rows)} rows, {len(by_label)} entries.\n"]
    for label, items in by_label.items():
        entry_id = entry_id_for(label) or "entry"
        base, suffix = entry_id, 2
        while entry_id in ids.values():
            entry_id, suffix = f"{base}-{suffix}", suffix + 1
        ids[label] = entry_id
        counts = label_words[label]
        keywords = sorted(
            (word for word, n in counts.items() if n >= 2 or len(items) < 4),
            key=lambda word: (-counts[word] / labels_with[word], word))[:KEYWORDS_PER_ENTRY]
        answers = Counter(answer for _, answer in items if answer)
        # Braces in an exported answer are text, not placeholders of ours.
        body = (answers.most_common(1)[0][0].replace("{", "{{").replace("}", "}}")
                if answers else f"TODO: answer for {label}")
        examples = list(dict.fromkeys(text for text, _ in items))
        out.append("\n[[entry]]\n")
        out.append(f"id = {_toml_string(entry_id)}\n")
        out.append(f"title = {_toml_string(label)}\n")
        out.append(f"lang = {_toml_string(lang)}\n")
        out.append(f"keywords = {_toml_list(keywords)}\n")
        out.append(f"examples = {_toml_list(examples)}\n")
        out.append(f"body = {_toml_string(body)}\n")
    return "".join(out)
