"""Image retrieval for matching large unordered photo sets, built from the photos themselves.

Exhaustive matching costs n(n-1)/2 pairs (minutes at ~50 photos on 2 cores, hours at 1,000).
COLMAP's vocabulary-tree matcher needs a pre-trained vocabulary file (downloaded, ~100 MB);
this module needs none. It learns a small visual vocabulary from the SIFT descriptors already in
the feature database (k-means on a sample), describes each image by its TF-IDF weighted bag of
visual words, and pairs each image with its `neighbors` most similar images (cosine
similarity). Matching then costs about n * neighbors pairs.

Limits (why COLMAP's trained vocabulary tree does better where it can be used): the vocabulary
is small (`words`, default 512, vs ~256k in a trained tree) and learned from this set only, so
repeated textures (facades, tiles) retrieve look-alike images more often; the similarity matrix
is n x n float32 (1,000 images: 4 MB; 20,000: 1.6 GB); quantising every descriptor costs
n * features * words * 128 operations (about a minute per 1,000 images of 8k features here).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pycolmap
from scipy.cluster.vq import kmeans2, vq

log = logging.getLogger(__name__)


def retrieval_pairs(
    database: Path,
    neighbors: int = 20,
    words: int = 512,
    sample_per_image: int = 200,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """Image-name pairs to match: each image with its `neighbors` most similar (no repeats)."""
    names, descriptors = _read_descriptors(database)
    if len(names) < 2:
        return []
    vocabulary = learn_vocabulary(descriptors, words, sample_per_image, seed)
    histograms = bag_of_words(descriptors, vocabulary)
    neighbours = nearest_images(histograms, neighbors)
    pairs = {tuple(sorted((i, int(j)))) for i, row in enumerate(neighbours) for j in row}
    return [(names[i], names[j]) for i, j in sorted(pairs)]


def _read_descriptors(database: Path) -> tuple[list[str], list[np.ndarray]]:
    """Image names and their (N_i, 128) float32 SIFT descriptors, in database order."""
    db = pycolmap.Database.open(str(database))
    try:
        images = sorted(db.read_all_images(), key=lambda im: im.name)
        names = [im.name for im in images]
        descs = [np.asarray(db.read_descriptors(im.image_id).data, np.float32) for im in images]
    finally:
        db.close()
    return names, descs


def learn_vocabulary(
    descriptors: list[np.ndarray], words: int, sample_per_image: int, seed: int
) -> np.ndarray:
    """(words, 128) k-means centres of a per-image sample of descriptors (RootSIFT space)."""
    rng = np.random.default_rng(seed)
    sample = []
    for d in descriptors:
        if len(d):
            take = rng.choice(len(d), size=min(sample_per_image, len(d)), replace=False)
            sample.append(_root_sift(d[take]))
    data = np.concatenate(sample)
    words = max(2, min(words, len(data) // 4))
    centres, _ = kmeans2(data, words, iter=10, minit="++", seed=seed)
    return centres.astype(np.float32)


def bag_of_words(descriptors: list[np.ndarray], vocabulary: np.ndarray) -> np.ndarray:
    """(n_images, words) TF-IDF histograms, each row L2-normalised."""
    counts = np.zeros((len(descriptors), len(vocabulary)), np.float32)
    for i, d in enumerate(descriptors):
        if len(d):
            codes, _ = vq(_root_sift(d), vocabulary, check_finite=False)
            counts[i] = np.bincount(codes, minlength=len(vocabulary))
    # A word seen in every image tells images apart no better than chance: weight it ~0.
    idf = np.log(len(descriptors) / (1.0 + (counts > 0).sum(axis=0)))
    tfidf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0) * np.maximum(idf, 0.0)
    return tfidf / np.maximum(np.linalg.norm(tfidf, axis=1, keepdims=True), 1e-12)


def nearest_images(histograms: np.ndarray, k: int) -> np.ndarray:
    """(n, min(k, n-1)) indices of each row's most cosine-similar other rows, best first."""
    n = len(histograms)
    k = min(k, n - 1)
    similarity = histograms @ histograms.T
    np.fill_diagonal(similarity, -np.inf)
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def _root_sift(d: np.ndarray) -> np.ndarray:
    """RootSIFT (L1-normalise, square root): Euclidean distance then compares like Hellinger,
    which retrieves better than raw SIFT (Arandjelovic and Zisserman, 2012)."""
    d = d / np.maximum(d.sum(axis=1, keepdims=True), 1e-12)
    return np.sqrt(d)


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> Path:
    """The pairs in COLMAP's match-list format: one "name1 name2" per line."""
    path.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    return path
