"""Knowledge file: checks with line numbers, import round-trip, rendering and incompleteness."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agent_tui.errors import ConfigError, UsageError
from agent_tui.knowledge.commands import cmd_knowledge_check, cmd_knowledge_import
from agent_tui.knowledge.importer import entry_id_for
from agent_tui.knowledge.loader import check_knowledge, load_knowledge
from agent_tui.knowledge.render import RenderContext, render

REPO = Path(__file__).resolve().parents[2]

BROKEN = '''\
[[entry]]
id = "order-status"
title = "Wo ist meine Bestellung?"
keywords = ["paket"]
examples = ["Wo bleibt mein Paket?"]
body = "Hallo {contact.first_name}, Bestellung {order.number}."

[[entry]]
id = "order-status"
keywords = ["paket"]
examples = ["Noch ein Paket"]
body = "Zweimal"

[[entry]]
id = "no-body"
keywords = ["x"]
examples = ["y"]

[[entry]]
id = "typo"
keywords = ["a"]
examples = ["b"]
body = "Hallo {kontakt.name}"
short = "{contact.first_name} LONG"
auto = true

[[entry]]
id = "bare"
body = "Nur ein Text"
'''.replace("LONG", "x" * 170)


def write(tmp_path: Path, text: str, name: str = "kb.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_check_names_line_and_entry_of_each_problem(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    problems = {(p.severity, p.line, p.entry_id, p.message.split(" (")[0])
                for p in check_knowledge(path)}
    assert ("error", 9, "order-status", "duplicate id") in problems
    assert ("error", 14, "no-body", "'body' is missing or empty") in problems
    assert ("error", 23, "typo", "unknown placeholder {kontakt.name}") in problems
    assert any(s == "warning" and line == 24 and e == "typo" and "over one SMS" in m
               for s, line, e, m in problems)
    assert any(s == "warning" and e == "bare" and "no keywords and no examples" in m
               for s, _, e, m in problems)


def test_check_command_exits_2_on_errors_and_0_on_the_examples(tmp_path: Path) -> None:
    out = io.StringIO()
    assert cmd_knowledge_check(write(tmp_path, BROKEN), out) == 2
    assert f"{tmp_path / 'kb.toml'}:9: entry 'order-status' error: duplicate id" in out.getvalue()
    for example in ("knowledge.de.toml", "knowledge.en.toml"):
        out = io.StringIO()
        assert cmd_knowledge_check(REPO / "examples" / example, out) == 0, out.getvalue()


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[entry]]\nid = "a"\nbody = "x\n')
    (problem,) = check_knowledge(path)
    assert problem.severity == "error" and problem.line == 3


def test_load_raises_config_error_with_file_line_and_entry(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as caught:
        load_knowledge(path)
    assert str(caught.value).startswith(f"{path}:9: entry 'order-status': duplicate id")


def test_auto_entry_with_unfillable_placeholder_is_an_error_when_fields_are_known(
        tmp_path: Path) -> None:
    path = write(tmp_path, '[[entry]]\nid = "s"\nkeywords = ["a"]\nexamples = ["b"]\n'
                           'body = "{order.tracking_url}"\nauto = true\n')
    assert not [p for p in check_knowledge(path) if p.severity == "error"]
    errors = check_knowledge(path, enrichment_fields={"order.number"})
    assert [(p.line, p.message) for p in errors] == [
        (6, "auto = true but nothing fills {order.tracking_url}")]


def test_entry_id_rule() -> None:
    assert entry_id_for("Card Arrival") == "card-arrival"
    assert entry_id_for("  Returns & Exchanges!! ") == "returns-exchanges"
    assert entry_id_for("top_up_failed") == "top-up-failed"


def test_import_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    source.write_text(
        "text,label,answer\n"
        '"Where is my parcel?",Order Status,"It is on its way, {name}."\n'
        '"My parcel has not arrived",Order Status,"It is on its way, {name}."\n'
        '"parcel still missing",Order Status,Other answer\n'
        '"How do I return a mug?",Returns & Exchanges,\n'
        '"I want to return the plate",Returns & Exchanges,\n', encoding="utf-8")
    out = io.StringIO()
    assert cmd_knowledge_import(source, "text", "label", "answer", out) == 0
    kb = load_knowledge(write(tmp_path, out.getvalue(), "imported.toml"))
    assert [e.id for e in kb.entries] == ["order-status", "returns-exchanges"]
    status, returns = kb.entries
    assert status.examples == ("Where is my parcel?", "My parcel has not arrived",
                               "parcel still missing")
    assert status.body == "It is on its way, {{name}}."        # braces stay literal
    assert render(status, RenderContext()).text == "It is on its way, {name}."
    assert "parcel" in status.keywords and "return" in returns.keywords
    assert returns.body.startswith("TODO")


def test_import_rejects_missing_column_and_non_utf8(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text("text,label\na,b\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"t\.csv: no column 'intent'"):
        cmd_knowledge_import(source, "text", "intent", None, io.StringIO())
    source.write_bytes("text,label\nGr\xfc\xdfe,b\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"t\.csv: not UTF-8"):
        cmd_knowledge_import(source, "text", "label", None, io.StringIO())


def test_render_fills_placeholders_and_marks_missing() -> None:
    kb = load_knowledge(REPO / "examples" / "knowledge.de.toml")
    entry = kb.get("order-status")
    assert entry is not None
    full = RenderContext(contact_name="Anna Schmidt", agent_name="Mia", fields={
        "order.number": "10234", "order.status": "versandt",
        "order.tracking_url": "https://track.example/1"})
    done = render(entry, full, "email")
    assert done.complete and not done.missing
    assert done.text.startswith("Hallo Anna,") and "10234" in done.text and "Mia" in done.text
    partial = render(entry, RenderContext(contact_name="Anna Schmidt"), "sms")
    assert not partial.complete
    assert partial.missing == ["order.number", "order.status", "order.tracking_url"]
    assert partial.text == entry.short.replace("{contact.first_name}", "Anna")


def test_render_uses_body_when_no_short_variant() -> None:
    kb = load_knowledge(REPO / "examples" / "knowledge.de.toml")
    entry = kb.get("change-order")
    assert entry is not None and not entry.short
    rendered = render(entry, RenderContext(agent_name="Mia", contact_first_name="Jo"), "telegram")
    assert rendered.text.startswith("Hallo Jo,") and rendered.missing == ["order.number"]
