"""SfM choices for large folders: matcher by count and input kind, retrieval pairs, mapper."""

from __future__ import annotations

import numpy as np
import pytest

from recon.sfm import SfMParams, choose_mapper, choose_matcher, looks_like_sequence
from tests.cli_helpers import ROOM, room_names


def test_numbered_frames_are_a_sequence_other_names_are_not():
    assert looks_like_sequence([f"frame_{i:05d}.jpg" for i in range(0, 300, 5)])
    assert looks_like_sequence(room_names(60))
    shuffled = [f"IMG_{i}.jpg" for i in np.random.default_rng(0).choice(9000, 60, replace=False)]
    assert not looks_like_sequence(shuffled)  # irregular numbers: photos, not frames
    assert not looks_like_sequence([f"{c}{i}.jpg" for i in range(30) for c in "ab"])
    assert not looks_like_sequence(["north.jpg", "south.jpg", "east.jpg", "west.jpg"])


def test_auto_matcher_by_count_and_kind():
    params = SfMParams()
    unordered = [f"photo_{w}.jpg" for w in ("x" * k for k in range(1, 61))]
    assert choose_matcher(room_names(50), params) == "exhaustive"
    assert choose_matcher(room_names(51), params) == "sequential"
    assert choose_matcher(unordered, params) == "retrieval"
    assert choose_matcher(unordered, SfMParams(matcher="exhaustive")) == "exhaustive"


def test_auto_mapper_goes_global_for_large_sets():
    params = SfMParams(mapper="auto", global_min_images=300)
    assert choose_mapper(299, params) == "incremental"
    assert choose_mapper(300, params) == "global"
    assert choose_mapper(1000, SfMParams()) == "incremental"  # the default stays incremental


@pytest.fixture(scope="module")
def ring_database(tmp_path_factory):
    """SIFT features of ten consecutive views of the sample room (cameras on a circle)."""
    import pycolmap

    root = tmp_path_factory.mktemp("retrieval")
    database = root / "database.db"
    options = pycolmap.FeatureExtractionOptions()
    options.sift.max_num_features = 1024
    options.num_threads = 1
    options.use_gpu = False
    pycolmap.extract_features(
        database,
        ROOM / "images",
        image_names=room_names(10),
        extraction_options=options,
        device=pycolmap.Device.cpu,
    )
    return database


def test_retrieval_pairs_views_that_see_the_same_part_of_the_room(ring_database):
    from recon.retrieval import retrieval_pairs

    pairs = retrieval_pairs(ring_database, neighbors=2, words=256)
    index = {name: i for i, name in enumerate(room_names(10))}
    gaps = np.array([abs(index[a] - index[b]) for a, b in pairs])
    assert len(pairs) < 10 * 9 // 2  # fewer than exhaustive
    assert all(a < b for a, b in pairs) and len(set(pairs)) == len(pairs)
    # Each view's two most similar views are its neighbours on the circle: a random choice
    # among 9 others lands within 2 steps about a third of the time.
    assert np.mean(gaps <= 2) >= 0.8, sorted(zip(gaps, pairs))
    linked = {name for pair in pairs for name in pair}
    assert linked == set(room_names(10))  # no view left without a partner
