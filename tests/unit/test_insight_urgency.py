"""Urgency and tone markers: lexicon cases in German and English, negation, intensifiers."""

from __future__ import annotations

import time

import pytest

from agent_tui.insight.urgency import HIGH_AT, assess


@pytest.mark.parametrize(("text", "subject", "cue"), [
    ("Bitte dringend zurückrufen.", "", "dringend"),
    ("Ich brauche die Rechnung sofort.", "", "sofort"),
    ("Die Lieferung muss umgehend raus.", "", "umgehend"),
    ("Wir haben einen Notfall im Lager.", "", "notfall"),
    ("Hallo", "Dringende Anfrage zur Lieferung", "dringende"),
    ("I need this fixed immediately.", "", "immediately"),
    ("This is urgent, please call me.", "", "urgent"),
    ("Please reply asap", "", "asap"),
    ("I want a refund now.", "", "refund now"),
])
def test_time_pressure_is_high(text: str, subject: str, cue: str) -> None:
    result = assess(text, subject)
    assert result.urgency == "high"
    assert result.score >= HIGH_AT
    assert cue in result.cues


@pytest.mark.parametrize(("text", "cue"), [
    ("Wenn das nicht klappt, schalte ich meinen Anwalt ein.", "anwalt"),
    ("Ich melde mich bei der Verbraucherzentrale.", "verbraucherzentrale"),
    ("Dann werde ich meinen Vertrag kündigen.", "kündigen"),
    ("Ich veranlasse eine Rückbuchung bei meiner Bank.", "rückbuchung"),
    ("My lawyer will be in touch.", "lawyer"),
    ("I will file a chargeback with my bank.", "chargeback"),
])
def test_threats_and_churn_are_high_and_negative(text: str, cue: str) -> None:
    result = assess(text)
    assert (result.urgency, result.negative) == ("high", True)
    assert cue in result.cues


@pytest.mark.parametrize("text", [
    "Das ist nicht dringend, melden Sie sich bei Gelegenheit.",
    "Es ist nicht so dringend.",
    "Kein Notfall, nur eine Frage zur Farbe.",
    "Keine Eile, danke!",
    "This is not urgent at all.",
    "No rush, whenever you can.",
    "Kein Problem, ich warte gern.",
])
def test_negation_and_calm_are_normal(text: str) -> None:
    result = assess(text)
    assert result.urgency == "normal"
    assert result.score < 0


def test_negated_cue_is_reported_with_its_negator() -> None:
    assert assess("Das ist nicht dringend.").cues == ["nicht dringend"]
    assert "not urgent" in assess("It is not urgent.").cues


def test_negation_stops_at_the_clause() -> None:
    # "nicht" belongs to "funktioniert", the comma ends its reach.
    result = assess("Die App funktioniert nicht, dringend!")
    assert result.urgency == "high"
    assert "dringend" in result.cues


def test_inflections_and_compounds_match() -> None:
    assert assess("Wir bitten um sofortige Hilfe").urgency == "high"
    assert assess("Ein Serverausfall legt den Shop lahm, bitte schnell").urgency == "high"
    assert "rechtsanwalt" in assess("Mein Rechtsanwalt ist informiert.").cues
    # "erkundigen" (to ask about) contains the letters of "kundig" but is no cancellation.
    assert assess("Ich wollte mich nach dem Preis erkundigen.").cues == []


def test_intensifiers_and_capitals_weigh_more() -> None:
    plain = assess("Das ist wichtig und schnell zu erledigen.")
    intensified = assess("Das ist wichtig und sehr schnell zu erledigen.")
    assert intensified.score > plain.score
    assert "sehr schnell" in intensified.cues
    assert assess("bitte SCHNELL").score > assess("bitte schnell").score
    assert assess("Bitte antworten Sie!!!").score > assess("Bitte antworten Sie.").score


def test_exclamations_and_shouting_add_urgency_and_tone() -> None:
    result = assess("Wo bleibt meine Bestellung?!!!")
    assert "!!!" in result.cues and result.score > 0
    shouted = assess("WHERE IS MY ORDER I PAID WEEKS AGO")
    assert "CAPS" in shouted.cues
    assert shouted.negative


def test_one_acronym_is_not_shouting() -> None:
    assert "CAPS" not in assess("Wie bekomme ich eine PDFA-Rechnung für meine Bestellung?").cues


def test_anger_is_negative_without_being_urgent() -> None:
    result = assess("Ich bin sehr enttäuscht von Ihrem Service.")
    assert result.negative
    assert result.urgency == "normal"
    assert assess("I am really disappointed, this is unacceptable.").negative
    assert not assess("I am not angry, just curious.").negative


def test_a_plain_question_is_normal_and_calm() -> None:
    result = assess("Ich habe eine Frage zu den Lieferzeiten.", "Anfrage Lieferzeit")
    assert (result.urgency, result.negative) == ("normal", False)


def test_quoted_history_is_ignored() -> None:
    text = "Danke, hat sich erledigt.\n\n> Bitte DRINGEND antworten, sonst Anwalt!"
    assert assess(text).urgency == "normal"


def test_language_narrows_the_lexicon() -> None:
    assert assess("urgent", lang="de").urgency == "normal"
    assert assess("urgent", lang="en").urgency == "high"
    assert assess("dringend", lang="fr").urgency == "high"   # unknown language: both lexicons


def test_empty_and_odd_text() -> None:
    assert assess("").cues == []
    assert assess("1234 !!! ???", "\x1b[31m").urgency == "normal"


def test_fast_enough_for_every_synced_message() -> None:
    body = ("Sehr geehrte Damen und Herren, seit gestern wartet meine Bestellung auf den Versand. "
            "Können Sie bitte nachsehen, wo das Paket bleibt? Vielen Dank. ") * 20
    assess(body)
    started = time.perf_counter()
    for _ in range(50):
        assess(body, "Frage zur Bestellung")
    per_message = (time.perf_counter() - started) / 50
    assert per_message < 0.02   # a 2 KB mail, generously bounded for a loaded CI machine
