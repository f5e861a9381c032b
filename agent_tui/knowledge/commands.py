"""CLI handlers for `agent-tui suggest` and `agent-tui knowledge check|import` (wired in cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from agent_tui.errors import EXIT_OK, EXIT_USAGE, UsageError

JSON_FORMAT = 1


def _suggestion_json(suggestion: Any) -> dict[str, Any]:
    return {"id": suggestion.entry_id, "score": suggestion.score,
            "matched": suggestion.matched_terms}


def cmd_suggest(text: str | None, *, knowledge: Path, top: int, jsonl: bool, as_json: bool,
                stdin: TextIO, stdout: TextIO, cache_dir: Path | None = None,
                embeddings: bool = False) -> int:
    """Rank the entries for TEXT, or (with `jsonl`) for each stdin line: one JSON object per
    input line, `{"suggestions": [{"id", "score", "matched"}]}`, flushed line by line so that a
    script can talk to it as a co-process. A blank input line gets an empty list."""
    from agent_tui.knowledge.suggest import Suggester

    if top < 1:
        raise UsageError("--top must be at least 1")
    if not knowledge.exists():
        raise UsageError(f"{knowledge}: knowledge file not found")
    suggester = Suggester.for_file(knowledge, cache_dir=cache_dir, embeddings=embeddings)
    if jsonl:
        for line in stdin:
            query = line.rstrip("\n")
            if query.startswith("{"):
                # A JSON line may carry the subject too: {"text": ..., "subject": ...}.
                try:
                    data = json.loads(query)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    found = suggester.suggest(str(data.get("text", "")),
                                              subject=str(data.get("subject", "")),
                                              channel=str(data.get("channel", "email")), top=top)
                    stdout.write(json.dumps({"suggestions": [_suggestion_json(s) for s in found]},
                                            ensure_ascii=False) + "\n")
                    stdout.flush()
                    continue
            found = suggester.suggest(query, top=top) if query.strip() else []
            stdout.write(json.dumps({"suggestions": [_suggestion_json(s) for s in found]},
                                    ensure_ascii=False) + "\n")
            stdout.flush()
        return EXIT_OK
    found = suggester.suggest(text or "", top=top)
    if as_json:
        stdout.write(json.dumps({"format": JSON_FORMAT, "suggestions": [
            {**_suggestion_json(s), "title": s.title} for s in found]}, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not found:
        stdout.write("no suggestion\n")
    for rank, suggestion in enumerate(found, start=1):
        why = ", ".join(suggestion.matched_terms) or "-"
        stdout.write(f"{rank}. {suggestion.score:.2f}  {suggestion.entry_id}  "
                     f"{suggestion.title}  (matched: {why})\n")
    return EXIT_OK


def cmd_knowledge_check(path: Path, stdout: TextIO) -> int:
    """One line per problem, then a summary; exit 2 when any problem is an error."""
    from agent_tui.knowledge.loader import check_knowledge

    problems = check_knowledge(path)
    for problem in problems:
        stdout.write(f"{problem}\n")
    errors = sum(problem.severity == "error" for problem in problems)
    stdout.write(f"{path}: {errors} errors, {len(problems) - errors} warnings\n")
    return EXIT_USAGE if errors else EXIT_OK


def cmd_knowledge_import(csv_path: Path, text_column: str, label_column: str,
                         answer_column: str | None, stdout: TextIO) -> int:
    """The knowledge file as TOML on stdout."""
    from agent_tui.knowledge.importer import import_csv

    stdout.write(import_csv(csv_path, text_column, label_column, answer_column))
    return EXIT_OK
