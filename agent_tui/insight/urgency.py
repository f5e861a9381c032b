"""Per-message urgency and negative tone for German and English, from a small lexicon.

A cue is a word or phrase with an urgency weight and a tone weight ("dringend", "refund now",
"Anwalt"). Inflections match through Snowball stems; German compounds ("Systemausfall",
"Rechtsanwalt") match through a substring of the folded word. A negator shortly before a cue
("nicht dringend", "not urgent", "kein Notfall") cancels it and counts as a sign of calm; an
intensifier ("sehr", "extrem", "really") or a cue in capitals weighs more; "!!" runs and shouting
in capitals add urgency and tone. A message is "high" when its urgency score reaches `HIGH_AT`.

It runs on every synced message, so it is plain Python over one tokenisation with cached stems.
The weights were tuned on one half of the German ticket set and measured on the other
(scripts/bench/urgency.py; the README has the figures).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import snowballstemmer

from agent_tui.limits import ANALYSIS_CHARS, bounded

Urgency = Literal["high", "normal"]

HIGH_AT = 1.0          # urgency score from which a message counts as "high"
NEGATIVE_AT = 1.0      # tone score from which a message counts as negative

SUBJECT_WEIGHT = 1.5   # a cue in the subject line is what the sender chose to stress
INTENSIFIED = 1.5
CAPITALISED = 1.5
NEGATED_URGENCY = -0.5  # "nicht dringend" says the opposite of "dringend"
NEGATION_WINDOW = 3     # tokens a negator may stand before its cue (within one clause)
EXCLAMATION_URGENCY = 0.4
EXCLAMATION_TONE = 0.5
SHOUTING_URGENCY = 0.5
SHOUTING_TONE = 1.0    # writing in capitals is shouting


@dataclass(frozen=True, slots=True)
class Assessment:
    urgency: Urgency
    negative: bool
    score: float           # urgency score; >= HIGH_AT is "high", below 0 reads as calm
    cues: list[str]        # what was found, as written: "sehr dringend", "nicht dringend", "!!!"


# --- lexicon ---------------------------------------------------------------------------------
# (phrase, urgency weight, tone weight). A phrase starting with "~" is a German word part matched
# inside compounds and inflected forms ("~ausfall" finds "Serverausfall", "Ausfallzeit"); one
# starting with "=" is a word matched as written, where the stem would be too wide ("severe" and
# "several" share the stem "sever").
_Cue = tuple[str, float, float]

_GERMAN: tuple[_Cue, ...] = (
    # time pressure
    ("dringend", 1.0, 0.0), ("dringlich", 0.3, 0.0), ("sofort", 1.0, 0.0),
    ("~umgehend", 1.0, 0.0), ("unverzüglich", 1.0, 0.0), ("schnellstmöglich", 1.0, 0.0),
    ("schnellstens", 1.0, 0.0), ("so schnell wie möglich", 0.8, 0.0),
    ("so bald wie möglich", 0.8, 0.0), ("möglichst schnell", 0.8, 0.0),
    ("möglichst bald", 0.6, 0.0), ("~notfall", 1.2, 0.0), ("eilt", 1.0, 0.0),
    ("eilig", 0.8, 0.0), ("asap", 1.0, 0.0), ("schnell", 0.4, 0.0), ("heute", 0.3, 0.0),
    ("noch heute", 0.8, 0.0), ("~hochprioritar", 1.0, 0.0), ("hohe priorität", 1.0, 0.0),
    ("höchste priorität", 1.0, 0.0), ("frist", 0.4, 0.0), ("immer noch", 0.4, 0.0),
    ("warte seit", 0.5, 0.2), ("keine antwort", 0.6, 0.3),
    # impact
    ("kritisch", 0.8, 0.0), ("schwerwiegend", 0.9, 0.0), ("ernsthaft", 0.6, 0.0),
    ("gravierend", 0.8, 0.0), ("~ausfall", 0.7, 0.0), ("ausgefallen", 0.7, 0.0),
    ("funktioniert nicht mehr", 0.5, 0.0), ("geht nicht mehr", 0.5, 0.0),
    ("~datenverlust", 1.0, 0.0), ("~sicherheitsvorfall", 1.0, 0.0),
    ("~sicherheitsverletz", 1.0, 0.0), ("~datenleck", 1.0, 0.0), ("gehackt", 1.0, 0.0),
    ("kompromittiert", 0.8, 0.0), ("störung", 0.5, 0.0), ("unterbrochen", 0.5, 0.0),
    ("unterbricht", 0.5, 0.0), ("beeinträchtigt", 0.3, 0.0), ("gefährdet", 0.6, 0.0),
    ("~stillstand", 0.8, 0.0), ("eskalation", 0.8, 0.0), ("eskalieren", 0.8, 0.0),
    # threats and churn
    ("~anwalt", 1.0, 1.0), ("rechtliche schritte", 1.0, 1.0), ("~verbraucherzentrale", 1.0, 1.0),
    ("kündigen", 1.0, 1.0), ("gekündigt", 1.0, 1.0), ("~kundigung", 1.0, 1.0),
    ("~ruckbuchung", 1.0, 1.0), ("~zuruckbuchen", 1.0, 1.0),
    ("geld zurück", 0.8, 0.6), ("~betrug", 0.5, 1.0), ("polizei", 0.8, 0.8),
    ("nie wieder", 0.3, 1.0),
    # anger
    ("~enttausch", 0.2, 1.0), ("~unverschamt", 0.3, 1.0), ("frechheit", 0.3, 1.0),
    ("inakzeptabel", 0.4, 1.0), ("nicht akzeptabel", 0.4, 1.0), ("~verargert", 0.2, 1.0),
    ("ärgerlich", 0.2, 0.8), ("wütend", 0.3, 1.0), ("beschwerde", 0.3, 0.8),
    ("schrecklich", 0.2, 0.8), ("~katastroph", 0.5, 1.0), ("~lacherlich", 0.2, 1.0),
    ("~zumutung", 0.3, 1.0), ("schlecht", 0.0, 0.3), ("~schlechtest", 0.2, 1.0),
    # calm: the sender says it can wait (questions and requests rarely burn)
    ("keine eile", -1.5, 0.0), ("eilt nicht", -1.5, 0.0), ("kein stress", -1.0, 0.0),
    ("wenn sie zeit haben", -1.0, 0.0), ("bei gelegenheit", -1.0, 0.0),
    ("kein problem", -0.5, 0.0), ("niedrige priorität", -1.0, 0.0),
    ("geringe priorität", -1.0, 0.0), ("anfrage", -0.3, 0.0), ("frage", -0.2, 0.0),
    ("vorschlag", -0.3, 0.0), ("feedback", -0.3, 0.0),
    # now and then, a little: the trouble is real but not burning
    ("gelegentlich", -0.4, 0.0), ("sporadisch", -0.4, 0.0), ("manchmal", -0.4, 0.0),
    ("ab und zu", -0.4, 0.0), ("leicht", -0.3, 0.0), ("geringfügig", -0.4, 0.0),
)

_ENGLISH: tuple[_Cue, ...] = (
    # time pressure
    ("urgent", 1.0, 0.0), ("urgency", 0.6, 0.0), ("immediately", 1.0, 0.0),
    ("immediate", 1.0, 0.0), ("asap", 1.0, 0.0), ("as soon as possible", 1.0, 0.0),
    ("as quickly as possible", 1.0, 0.0), ("=promptly", 0.6, 0.0),
    ("right away", 0.8, 0.0), ("right now", 0.8, 0.0), ("emergency", 1.2, 0.0),
    ("quickly", 0.4, 0.0), ("today", 0.3, 0.0), ("high priority", 1.0, 0.0),
    ("top priority", 1.0, 0.0), ("time sensitive", 0.8, 0.0), ("deadline", 0.4, 0.0),
    ("still waiting", 0.7, 0.3), ("no response", 0.5, 0.3), ("no reply", 0.5, 0.3),
    ("no answer", 0.5, 0.3), ("refund now", 1.0, 0.8),
    # impact
    ("critical", 0.8, 0.0), ("=severe", 0.9, 0.0), ("=severely", 0.9, 0.0), ("serious", 0.6, 0.0),
    ("is down", 0.7, 0.0), ("are down", 0.7, 0.0), ("outage", 0.8, 0.0),
    ("data loss", 1.0, 0.0), ("breach", 0.8, 0.0), ("hacked", 1.0, 0.0),
    ("compromised", 0.8, 0.0), ("not working", 0.4, 0.0), ("broken", 0.4, 0.0),
    ("escalate", 0.8, 0.0), ("disruption", 0.5, 0.0), ("at risk", 0.5, 0.0),
    ("crash", 0.6, 0.0), ("crashes", 0.6, 0.0), ("crashing", 0.6, 0.0),
    ("significant impact", 0.6, 0.0), ("major impact", 0.6, 0.0),
    # threats and churn
    ("lawyer", 1.0, 1.0), ("attorney", 1.0, 1.0), ("legal action", 1.0, 1.0),
    ("sue", 1.0, 1.0), ("chargeback", 1.0, 1.0), ("cancel my subscription", 0.8, 0.8),
    ("cancel my account", 0.8, 0.8), ("fraud", 0.8, 1.0), ("scam", 0.6, 1.0),
    ("police", 0.8, 0.8), ("consumer protection", 1.0, 1.0), ("money back", 0.6, 0.6),
    ("never again", 0.3, 1.0), ("report you", 0.8, 0.8),
    # anger
    ("disappointed", 0.2, 1.0), ("unacceptable", 0.4, 1.0), ("furious", 0.3, 1.0),
    ("angry", 0.2, 1.0), ("outraged", 0.3, 1.0), ("complaint", 0.3, 0.8),
    ("terrible", 0.2, 0.8), ("awful", 0.2, 0.8), ("worst", 0.2, 1.0),
    ("ridiculous", 0.2, 1.0), ("fed up", 0.3, 1.0), ("useless", 0.1, 0.8),
    ("horrible", 0.2, 0.8),
    # calm
    ("no rush", -1.5, 0.0), ("no hurry", -1.5, 0.0), ("whenever you can", -1.0, 0.0),
    ("when you get a chance", -1.0, 0.0), ("when you have time", -1.0, 0.0),
    ("no problem", -0.5, 0.0), ("low priority", -1.0, 0.0), ("question", -0.2, 0.0),
    ("inquiry", -0.3, 0.0), ("enquiry", -0.3, 0.0), ("suggestion", -0.3, 0.0),
    ("feedback", -0.3, 0.0), ("occasionally", -0.4, 0.0), ("occasional", -0.4, 0.0),
    ("sometimes", -0.4, 0.0), ("intermittent", -0.3, 0.0), ("minor", -0.4, 0.0),
    ("slight", -0.3, 0.0), ("slightly", -0.3, 0.0),
)

_NEGATORS = {
    "de": frozenset({"nicht", "kein", "keine", "keinen", "keiner", "keinem", "keines", "nie",
                     "niemals", "ohne"}),
    "en": frozenset({"not", "no", "never", "without", "isn't", "isnt", "aren't", "arent",
                     "don't", "dont", "doesn't", "doesnt", "wasn't", "wasnt", "nothing"}),
}
_INTENSIFIERS = {
    "de": frozenset({"sehr", "extrem", "äußerst", "äusserst", "absolut", "wirklich", "total",
                     "höchst", "super", "echt", "dermaßen", "unglaublich"}),
    "en": frozenset({"very", "extremely", "really", "absolutely", "highly", "so", "super",
                     "totally", "incredibly", "truly"}),
}
LANGUAGES = ("de", "en")
_STEMMER_NAMES = {"de": "german", "en": "english"}


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str               # the phrase as listed, names the cue for counting it once
    lang: str
    length: int            # tokens it covers
    stems: tuple[str, ...]  # empty for a word part or a word matched as written
    urgency: float
    tone: float


_stem_lock = threading.Lock()   # Snowball stemmers keep state in the instance
_stemmers = {lang: snowballstemmer.stemmer(name) for lang, name in _STEMMER_NAMES.items()}


@functools.lru_cache(maxsize=65_536)
def _stem(lang: str, word: str) -> str:
    with _stem_lock:
        stem: str = _stemmers[lang].stemWord(word)
    return stem


def _fold(word: str) -> str:
    return (word.lower().replace("ä", "a").replace("ö", "o").replace("ü", "u")
            .replace("ß", "ss"))


class _Lexicon:
    def __init__(self, cues: dict[str, tuple[_Cue, ...]]) -> None:
        self.by_first_stem: dict[tuple[str, str], list[_Entry]] = {}
        self.parts: dict[str, _Entry] = {}
        self.exact: dict[tuple[str, str], _Entry] = {}
        for lang, entries in cues.items():
            for phrase, urgency, tone in entries:
                if phrase.startswith("~"):
                    part = _fold(phrase[1:])
                    self.parts[part] = _Entry(phrase, lang, 1, (), urgency, tone)
                    continue
                if phrase.startswith("="):
                    self.exact[lang, phrase[1:]] = _Entry(phrase, lang, 1, (), urgency, tone)
                    continue
                stems = tuple(_stem(lang, w) for w in phrase.split())
                entry = _Entry(phrase, lang, len(stems), stems, urgency, tone)
                self.by_first_stem.setdefault((lang, stems[0]), []).append(entry)
        for candidates in self.by_first_stem.values():
            candidates.sort(key=lambda e: -e.length)   # the longest phrase wins
        # Longest part first, so "~schlechtest" wins over a shorter part inside it.
        ordered = sorted(self.parts, key=len, reverse=True)
        self.part_pattern = re.compile("|".join(re.escape(p) for p in ordered))


_LEXICON = _Lexicon({"de": _GERMAN, "en": _ENGLISH})

_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|!{2,}|[.,;:!?()\[\]\"\n]")


@dataclass(slots=True)
class _Token:
    text: str
    lower: str

    @property
    def is_word(self) -> bool:
        return self.text[0].isalpha()


@dataclass(slots=True)
class _Found:
    label: str
    urgency: float
    tone: float


def assess(text: str, subject: str = "", lang: str | None = None) -> Assessment:
    """Urgency and tone of one message; `lang` ("de"/"en") narrows the lexicon, None uses both."""
    langs = (lang,) if lang in LANGUAGES else LANGUAGES
    found: dict[tuple[str, bool], _Found] = {}
    extra_urgency = 0.0
    extra_tone = 0.0
    cues: list[str] = []
    words = 0
    shouted = 0
    exclaimed = False
    for segment, weight in ((bounded(subject), SUBJECT_WEIGHT), (_new_part(text), 1.0)):
        tokens = [_Token(t, t.lower()) for t in _TOKEN.findall(segment)]
        for token in tokens:
            if token.is_word:
                words += 1
                if len(token.text) >= 4 and token.text.isupper():
                    shouted += 1
            elif token.text.startswith("!!"):
                exclaimed = True
        _match(tokens, langs, weight, found)
    if exclaimed:
        extra_urgency += EXCLAMATION_URGENCY
        extra_tone += EXCLAMATION_TONE
        cues.append("!!!")
    # Capitals as shouting, not as the odd acronym: several words and a good share of the text.
    if shouted >= 3 and shouted * 3 >= words:
        extra_urgency += SHOUTING_URGENCY
        extra_tone += SHOUTING_TONE
        cues.append("CAPS")
    urgency = extra_urgency + sum(f.urgency for f in found.values())
    tone = extra_tone + sum(f.tone for f in found.values())
    cues[:0] = [f.label for f in found.values()]
    return Assessment(urgency="high" if urgency >= HIGH_AT else "normal",
                      negative=tone >= NEGATIVE_AT, score=round(urgency, 3), cues=cues)


def _new_part(text: str) -> str:
    """The text without quoted lines ("> ..."): quoted history repeats what earlier messages
    said, and a mail can be long, so at most ANALYSIS_CHARS of the new part."""
    if ">" in text:
        text = bounded(text, 4 * ANALYSIS_CHARS)
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))
    return bounded(text)


def _match(tokens: list[_Token], langs: tuple[str, ...], weight: float,
           found: dict[tuple[str, bool], _Found]) -> None:
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.is_word:
            i += 1
            continue
        entry = _longest_entry(tokens, i, langs)
        if entry is None:
            i += 1
            continue
        start, end = _modifiers_start(tokens, i, langs, _INTENSIFIERS), i + entry.length
        intensified = start < i
        negated = _negated(tokens, i, langs)
        urgency, tone = entry.urgency, entry.tone
        if negated:
            # "nicht dringend" is calm; "not angry" is just not angry.
            urgency = NEGATED_URGENCY if urgency > 0 else 0.0
            tone = 0.0
        else:
            boost = weight
            if intensified:
                boost *= INTENSIFIED
            if any(len(t.text) >= 4 and t.text.isupper() for t in tokens[i:end]):
                boost *= CAPITALISED
            if urgency > 0:
                urgency *= boost
            tone *= boost
        label_start = _negator_position(tokens, i, langs) if negated else start
        label = " ".join(t.text if t.text.isupper() and len(t.text) >= 4 else t.lower
                         for t in tokens[label_start:end] if t.is_word)
        key = (entry.key, negated)
        previous = found.get(key)
        if previous is None or abs(urgency) + tone > abs(previous.urgency) + previous.tone:
            found[key] = _Found(label, urgency, tone)
        i = end


def _longest_entry(tokens: list[_Token], i: int, langs: tuple[str, ...]) -> _Entry | None:
    best: _Entry | None = None
    for lang in langs:
        best = best or _LEXICON.exact.get((lang, tokens[i].lower))
        for entry in _LEXICON.by_first_stem.get((lang, _stem(lang, tokens[i].lower)), ()):
            if best is not None and entry.length <= best.length:
                break
            if _phrase_at(tokens, i, entry):
                best = entry
                break
    if best is None and "de" in langs:
        part = _LEXICON.part_pattern.search(_fold(tokens[i].text))
        if part is not None:
            best = _LEXICON.parts[part.group()]
    return best


def _phrase_at(tokens: list[_Token], i: int, entry: _Entry) -> bool:
    if i + entry.length > len(tokens):
        return False
    return all(tokens[i + k].is_word and _stem(entry.lang, tokens[i + k].lower) == stem
               for k, stem in enumerate(entry.stems))


def _modifiers_start(tokens: list[_Token], i: int, langs: tuple[str, ...],
                     words: dict[str, frozenset[str]]) -> int:
    """Index of the first of the intensifiers right before token i (i itself when none)."""
    start = i
    while start > 0 and tokens[start - 1].is_word and _in(tokens[start - 1].lower, langs, words):
        start -= 1
    return start


def _negator_position(tokens: list[_Token], i: int, langs: tuple[str, ...]) -> int:
    for j in range(i - 1, max(-1, i - 1 - NEGATION_WINDOW), -1):
        if not tokens[j].is_word:
            break
        if _in(tokens[j].lower, langs, _NEGATORS):
            return j
    return i


def _negated(tokens: list[_Token], i: int, langs: tuple[str, ...]) -> bool:
    return _negator_position(tokens, i, langs) < i


def _in(word: str, langs: Iterable[str], table: dict[str, frozenset[str]]) -> bool:
    return any(word in table[lang] for lang in langs)
