"""Text analysis for matching: strip quotes and signatures, fold, stem, split compounds, n-grams.

Pure Python on purpose: importing it costs a few milliseconds (only the stemmers actually used are
imported, and rapidfuzz only when a query holds a word the knowledge file does not know).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from agent_tui.knowledge.lexicon import PHRASES, STOPWORDS, SYNONYMS

# --- message clean-up ---------------------------------------------------------------------------

_QUOTE_HEADER = re.compile(
    r"^\s*(?:am\s.{3,80}\sschrieb.{0,80}:|on\s.{3,80}\swrote:|-{2,}\s*(?:original|ursprüngliche)"
    r".{0,40}-{2,}|von:\s.+|from:\s.+@.+|gesendet:\s.+|sent:\s.+)\s*$",
    re.IGNORECASE,
)
_SIGNATURE_START = re.compile(
    r"^\s*(?:--\s*|mit freundlichen gr(?:ü|ue)(?:ß|ss)en.*|freundliche gr(?:ü|ue)(?:ß|ss)e.*|"
    r"(?:viele|beste|liebe|herzliche|schöne|sonnige)\s+gr(?:ü|ue)(?:ß|ss)e.*|mfg.*|lg\b.*|vg\b.*|"
    r"gruß.*|gruss.*|best regards.*|kind regards.*|regards.*|best wishes.*|cheers.*|"
    r"sincerely.*|thanks in advance.*|danke im voraus.*|sent from my .*|von meinem .* gesendet.*)$",
    re.IGNORECASE,
)


def strip_message(text: str) -> str:
    """The customer's own words: quoted history (`>` lines, "Am ... schrieb") and signature cut."""
    kept: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">") or _QUOTE_HEADER.match(line):
            break
        # A closing formula starts the signature only near the end, so that a message which
        # opens with "Grüße aus Köln, ..." keeps its question.
        if kept and _SIGNATURE_START.match(line) and len(lines) - index <= 8:
            break
        kept.append(line)
    return "\n".join(kept)


# --- words ---------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss", "æ": "ae", "ø": "o"})


@functools.lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """Lower case, umlauts and ß folded (ä -> a), accents removed: "Größe" -> "grosse"."""
    word = word.casefold().translate(_FOLD)
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold_digraphs(word: str) -> str:
    """The ASCII spelling of umlauts folded too ("ruecksendung" -> "rucksendung")."""
    return word.replace("ae", "a").replace("oe", "o").replace("ue", "u")


def surface_words(text: str) -> list[str]:
    return _WORD.findall(text)


def stemmer_for(lang: str) -> Callable[[str], str]:
    if lang == "de":
        from snowballstemmer.german_stemmer import GermanStemmer

        return GermanStemmer().stemWord  # type: ignore[no-any-return]
    if lang == "en":
        from snowballstemmer.english_stemmer import EnglishStemmer

        return EnglishStemmer().stemWord  # type: ignore[no-any-return]
    return lambda word: word


def detect_language(texts: Iterable[str]) -> str:
    """"de" or "en" by counting function words; English when nothing tells."""
    german = english = 0
    for text in texts:
        for word in surface_words(text.casefold()):
            german += word in _GERMAN_MARKERS
            english += word in _ENGLISH_MARKERS
    return "de" if german > english else "en"


_VERB_PREFIXES = frozenset(
    ("auf", "aus", "bei", "ein", "ent", "her", "hin", "mit", "nach", "ver", "vor", "weg", "zer",
     "zuruck", "uber", "unter", "durch", "wieder", "dazu", "heraus", "herunter", "voran", "los",
     "fest", "fort", "hinaus", "hinein", "herein", "miss", "ab", "an", "be", "er", "ge", "um",
     "zu", "rein", "raus", "dran", "drauf", "vorbei", "weiter", "zusammen"))
_GERMAN_MARKERS = frozenset(
    ("ich", "und", "nicht", "ist", "mein", "meine", "wo", "wie", "ein", "eine", "der", "die",
     "das", "habe", "kann", "noch", "bitte", "wann", "mir"))
_ENGLISH_MARKERS = frozenset(
    ("i", "and", "not", "is", "my", "where", "how", "a", "the", "have", "can", "still", "please",
     "when", "me", "you"))


class Analyzer:
    """Turns text into weighted features for one language and one knowledge file's vocabulary.

    Features: `w:<stem>` for a word, `s:<group>` for a synonym group, word parts of compounds as
    `w:` features with half weight, and `c:<n-gram>` character 3- to 5-grams of each folded word.
    """

    def __init__(self, lang: str, vocabulary: Iterable[str] = (),
                 stem_cache: dict[str, str] | None = None) -> None:
        self.lang = lang if lang in STOPWORDS else "en"
        # Imported on the first word the cache lacks: snowballstemmer imports every language
        # (~20 ms), and a cached model's vocabulary is all in the cache.
        self._stem_raw: Callable[[str], str] | None = None
        self.stopwords = STOPWORDS[self.lang]
        # A cached model hands its stems back: stemming the vocabulary again is most of a load.
        self._stem_cache: dict[str, str] = dict(stem_cache or {})
        self.synonyms: dict[str, str] = {}
        for group, members in SYNONYMS.get(self.lang, {}).items():
            for member in members:
                self.synonyms[self.stem(fold(member))] = group
        # phrases by their first word ("#" for a number): (the words, the group)
        self.phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for group, phrases in PHRASES.get(self.lang, {}).items():
            for phrase in phrases:
                words = tuple(fold(word) for word in phrase.split())
                self.phrases.setdefault(words[0], []).append((words, group))
        self.words: set[str] = set()
        self.stems: set[str] = set()
        self._split_cache: dict[str, list[str]] = {}
        self._partial_cache: dict[str, list[str]] = {}
        self._zu_cache: dict[str, str] = {}
        self.add_vocabulary(vocabulary)
        for members in SYNONYMS.get(self.lang, {}).values():
            self.add_vocabulary(members)

    def add_vocabulary(self, words: Iterable[str]) -> None:
        for word in words:
            for part in surface_words(word):
                folded = fold(part)
                if len(folded) >= 3 and folded not in self.stopwords:
                    self.words.add(folded)
                    self.stems.add(self.stem(folded))
        self._split_cache.clear()
        self._partial_cache.clear()
        self._zu_cache.clear()

    def stem_cache(self) -> dict[str, str]:
        """Every stem computed so far (folded word -> stem), to hand to a later Analyzer."""
        return dict(self._stem_cache)

    def stem(self, folded: str) -> str:
        stem = self._stem_cache.get(folded)
        if stem is None:
            if self._stem_raw is None:
                self._stem_raw = stemmer_for(self.lang)
            stem = fold_digraphs(fold(self._stem_raw(folded))) if self.lang == "de" else \
                self._stem_raw(folded)
            self._stem_cache[folded] = stem
        return stem

    def tokens(self, text: str) -> list[str]:
        """Folded content words in order, stop words (greetings and fillers too) removed."""
        out = []
        for word in surface_words(text):
            folded = fold(word)
            if folded not in self.stopwords and (len(folded) > 1 or folded.isdigit()):
                out.append(self._without_zu(folded) if "zu" in folded[2:] else folded)
        return out

    def _without_zu(self, word: str) -> str:
        """A separable verb's infinitive with "zu" as the known verb: "zuruckzugeben" ->
        "zuruckgeben", "abzuholen" -> "abholen"; other words unchanged."""
        found = self._zu_cache.get(word)
        if found is None:
            found = word
            if self.lang == "de" and len(word) >= 7 and not self._known(word):
                for cut in range(2, min(len(word) - 5, 7) + 1):
                    if word[cut:cut + 2] == "zu" and word[:cut] in _VERB_PREFIXES and \
                            self._known(word[:cut] + word[cut + 2:]):
                        found = word[:cut] + word[cut + 2:]
                        break
            self._zu_cache[word] = found
        return found

    def _known(self, part: str) -> bool:
        # A compound's head is often a bare stem ("liefer" in "lieferanschrift").
        return len(part) >= 3 and (part in self.words or part in self.stems
                                   or self.stem(part) in self.stems)

    def split_compound(self, word: str, partial: bool = True) -> list[str]:
        """Greedy longest-head split against the file's vocabulary: "lieferanschrift" ->
        ["liefer", "anschrift"]; [] when the word is not a compound of known parts. With
        `partial`, an unknown word that is no such compound gives its known part (see
        _known_head_or_tail)."""
        if len(word) < 7 or self.lang != "de":
            return []
        cached = self._split_cache.get(word)
        if cached is None:
            cached = self._split_cache[word] = self._split(word)
        if not cached and partial and not self._known(word):
            partial_parts = self._partial_cache.get(word)
            if partial_parts is None:
                partial_parts = self._partial_cache[word] = self._known_head_or_tail(word)
            return partial_parts
        return cached

    def _split(self, word: str) -> list[str]:
        parts: list[str] = []
        for cut in range(len(word) - 3, 2, -1):
            head, tail = word[:cut], word[cut:]
            head_ok = self._known(head) or (
                head[-1] in "sn" and self._known(head[:-1])) or (
                head.endswith(("en", "es", "er")) and self._known(head[:-2]))
            if not head_ok:
                continue
            if self._known(tail):
                parts = [head, tail]
                break
            rest = self.split_compound(tail, partial=False)
            if rest:
                parts = [head, *rest]
                break
        return parts

    def _known_head_or_tail(self, word: str) -> list[str]:
        """An unknown word's longest known last part of 5 letters or more (German compounds are
        head-final: "arbeitsadresse" is an "adresse"), else its longest known first part of 5
        letters or more ("abmeldelink"); [] when the rest would be a verb prefix."""
        for cut in range(4, len(word) - 4):
            head, tail = word[:cut], word[cut:]
            if head not in _VERB_PREFIXES and not head.endswith("ge") and self._known(tail) \
                    and len(self.stem(tail)) >= 4:
                return [tail]
        for cut in range(len(word) - 3, 4, -1):
            head = word[:cut]
            if head in self.words or head in self.stems:
                return [head]
        return []

    def word_features(self, tokens: list[str]) -> dict[str, float]:
        features: dict[str, float] = {}
        for token in tokens:
            stem = self.stem(token)
            _add(features, "w:" + stem, 1.0)
            group = self.synonyms.get(stem)
            for part in self.split_compound(token):
                part_stem = self.stem(part)
                _add(features, "w:" + part_stem, 0.5)
                group = group or self.synonyms.get(part_stem)
            if group:
                _add(features, "s:" + group, 1.0)
        return features

    def phrase_groups(self, text: str) -> list[tuple[str, str]]:
        """(group, the phrase as written) for each group phrase in the text ("nur 5" means
        something is missing), stop words included."""
        if not self.phrases:
            return []
        surface = surface_words(text)
        words = ["#" if _is_number(fold(word)) else fold(word) for word in surface]
        found = []
        for start, word in enumerate(words):
            for phrase, group in self.phrases.get(word, ()):
                span = words[start:start + len(phrase)]
                if len(span) == len(phrase) and all(
                        want in ("*", got) for want, got in zip(phrase, span, strict=True)):
                    found.append((group, " ".join(surface[start:start + len(phrase)])))
        return found

    @staticmethod
    def ngram_features(tokens: list[str]) -> Mapping[str, float]:
        return Counter(ngram for token in tokens if not token.isdigit()
                       for ngram in _ngrams(token))


_NUMBER_WORDS = frozenset(
    ("ein", "eine", "einen", "einer", "eins", "zwei", "drei", "vier", "funf", "sechs", "sieben",
     "acht", "neun", "zehn", "elf", "zwolf", "beide", "beiden"))


def _is_number(word: str) -> bool:
    return word.isdigit() or word in _NUMBER_WORDS


@functools.lru_cache(maxsize=65536)
def _ngrams(token: str) -> tuple[str, ...]:
    """A word's character 3- to 5-grams (`c:` features), with < and > marking its ends."""
    padded = f"<{fold_digraphs(token)}>"
    return tuple("c:" + padded[start:start + size] for size in (3, 4, 5)
                 for start in range(len(padded) - size + 1))


def _add(features: dict[str, float], key: str, weight: float) -> None:
    features[key] = features.get(key, 0.0) + weight
