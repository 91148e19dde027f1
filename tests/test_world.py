import numpy as np
import pytest

from core.world import TEMPLATES, World, WorldConfig, valid_n_concepts


def test_default_world_has_32_related_concepts():
    w = World()
    assert w.n_concepts == 32
    assert len(set(w.names)) == 32
    rel = w.relation
    assert rel.shape == (32, 32)
    assert (np.diag(rel) == 3).all()
    assert (rel == rel.T).all()
    # every concept shares words with some and none with others: relations are measurable
    i = w.index("large red star")
    assert w.relation[i, w.index("small red star")] == 2
    assert w.relation[i, w.index("small blue circle")] == 0
    assert w.index("small red star") in w.related(i)


def test_sampling_is_deterministic_and_seed_dependent():
    w = World(WorldConfig(n_concepts=16, seed=3))
    a, b = w.sample(3, seed=1), w.sample(3, seed=1)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions
    c = w.sample(3, seed=2)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (48, 3, 32, 32) and a.images.dtype == np.float32
    assert a.images.min() >= -1 and a.images.max() <= 1


def test_captions_name_their_concept():
    w = World()
    d = w.sample(2, seed=0)
    for lab, cap in zip(d.labels, d.captions):
        assert w.parse_prompt(cap) == lab
    assert len(TEMPLATES) >= 3


@pytest.mark.parametrize("k", [8, 16, 32, 64, 128])
def test_k_range(k):
    w = World(WorldConfig(n_concepts=k))
    assert w.n_concepts == k
    assert k in valid_n_concepts()


def test_64px_and_speed():
    import time

    w = World(WorldConfig(image_size=64))
    assert w.sample(1).images.shape[-1] == 64
    t = time.time()
    World().sample(100, seed=0)  # 3,200 images; the 30k figure lives in bench/world.py
    assert time.time() - t < 30  # generous: shared CI cores


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_concepts": 7}, "n_concepts"),
        ({"n_concepts": 1000}, "n_concepts"),
        ({"image_size": 48}, "image_size"),
    ],
)
def test_invalid_config_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        WorldConfig(**kwargs)


def test_unknown_concept_lists_valid():
    with pytest.raises(ValueError, match="valid concepts"):
        World().index("purple dog")
