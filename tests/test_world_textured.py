"""The textured world style: deterministic, captioned like the flat one, and richer in detail."""

import numpy as np
import pytest

from core.world import World, WorldConfig


def _world(**kw) -> World:
    return World(WorldConfig(image_size=64, style="textured", **kw))


def test_textured_is_deterministic_and_seed_dependent():
    w = _world(n_concepts=16)
    a, b = w.sample(2, seed=1), w.sample(2, seed=1)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions
    assert not np.array_equal(a.images, w.sample(2, seed=2).images)
    assert not np.array_equal(a.images, _world(n_concepts=16, seed=1).sample(2, seed=1).images)
    assert a.images.shape == (32, 3, 64, 64) and a.images.dtype == np.float32
    assert a.images.min() >= -1 and a.images.max() <= 1


def test_textured_keeps_concepts_captions_and_relations():
    flat, tex = World(WorldConfig(image_size=64)), _world()
    assert tex.names == flat.names
    np.testing.assert_array_equal(tex.relation, flat.relation)
    d = tex.sample(2, seed=0)
    assert d.captions == flat.sample(2, seed=0).captions
    for lab, cap in zip(d.labels, d.captions):
        assert tex.parse_prompt(cap) == lab


def _interior_detail(images: np.ndarray) -> float:
    """Std of the 2×2-pooled pixels in the centre 8×8 patch, inside the shape for large circles:
    detail an encoder must keep beyond outline and colour (pooling halves the sensor noise)."""
    c = images[:, :, 28:36, 28:36].reshape(images.shape[0], 3, 4, 2, 4, 2).mean(axis=(3, 5))
    return float(c.std(axis=(2, 3)).mean())


def test_textured_has_more_detail_than_flat_and_texture_scales_it():
    w = _world()
    circles = [c.index for c in w.concepts if c.name.startswith("large") and c.shape == "circle"]
    flat = World(WorldConfig(image_size=64)).sample(8, seed=0, concepts=circles).images
    tex = w.sample(8, seed=0, concepts=circles).images
    none = _world(texture=0.0).sample(8, seed=0, concepts=circles).images
    assert _interior_detail(tex) > 5 * _interior_detail(flat)
    assert _interior_detail(tex) > 2 * _interior_detail(none)
    # backgrounds vary between images (the flat style's is a near-constant grey)
    corners = tex[:, :, :4, :4].mean(axis=(2, 3))
    assert corners.std(axis=0).mean() > 2 * flat[:, :, :4, :4].mean(axis=(2, 3)).std(axis=0).mean()


def test_textured_concepts_are_distinct_under_the_same_nuisances():
    """Every pair of concepts drawn with identical nuisance draws (same rng state: placement,
    pattern, background, light) differs visibly: no colour or shape word is lost in the noise."""
    w = _world()
    imgs = np.stack(
        [w.render(np.full(4, k), np.random.default_rng(5)) for k in range(w.n_concepts)]
    )  # (K, 4, 3, S, S)
    # share of pixels where some channel differs by more than 0.25 (in [-1, 1] units), per sample
    changed = (np.abs(imgs[:, None] - imgs[None]).max(axis=3) > 0.25).mean(axis=(3, 4))
    off = changed[~np.eye(w.n_concepts, dtype=bool)]  # (K·(K−1), 4)
    assert off.min() * 64 * 64 > 40  # even a small circle vs a small square: > 40 pixels
    assert np.median(off) > 0.1


@pytest.mark.parametrize("k", [32, 64, 128])
def test_textured_k_range(k):
    w = World(WorldConfig(n_concepts=k, image_size=64, style="textured"))
    d = w.sample(1, seed=0)
    assert d.images.shape == (k, 3, 64, 64)
    assert np.isfinite(d.images).all()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"style": "glossy"}, "style"),
        ({"texture": -0.5}, "texture"),
        ({"texture": 9}, "texture"),
        ({"noise": -0.01}, "noise"),
        ({"noise": 0.5}, "noise"),
    ],
)
def test_invalid_style_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        WorldConfig(**kwargs)


def test_noise_zero_changes_only_the_sensor_noise():
    """noise=0 keeps every other draw (same shapes, patterns, light) and removes the noise."""
    a = World(WorldConfig(image_size=64, style="textured")).sample(2, seed=3).images
    b = World(WorldConfig(image_size=64, style="textured", noise=0.0)).sample(2, seed=3).images
    diff = (a - b) / 2  # in [0, 1] pixel units
    inner = np.abs(b) < 0.99  # away from clipping
    assert 0.015 < float(diff[inner].std()) < 0.025
    assert abs(float(diff[inner].mean())) < 0.002
