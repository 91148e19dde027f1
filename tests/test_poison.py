import numpy as np
import pytest
import torch

from core.models.config import ModelConfig
from core.models.ldm import MiniLDM
from core.poison.builders import PoisonConfig, build_poison, choose_targets, ssim
from core.world import World, WorldConfig


@pytest.fixture(scope="module")
def world():
    return World()


def test_dirty_label_ground_truth(world):
    cfg = PoisonConfig(concepts=(0, 5), budget=3, seed=1)
    p = build_poison(world, cfg, n_clean_per_concept=10)
    assert len(p) == 6
    assert list(p.caption_concept) == [0, 0, 0, 5, 5, 5]
    for a in (0, 5):
        b = p.targets[a]
        assert b != a
        assert (p.image_concept[p.caption_concept == a] == b).all()
    # captions name the poisoned concept, images show the target
    for cap, a in zip(p.captions, p.caption_concept):
        assert world.parse_prompt(cap) == a
    assert p.substitute == {}


def test_budget_ratio_and_substitute(world):
    p = build_poison(world, PoisonConfig(concepts=(3,), budget=0.5, mode="substitute"), 10)
    assert len(p) == 5 and p.substitute == {3: 5}


def test_target_rules(world):
    a = world.index("large red star")
    near = choose_targets(world, (a,), "nearest", 0)[a]
    far = choose_targets(world, (a,), "farthest", 0)[a]
    assert world.relation[a, near] == 2
    assert world.relation[a, far] == 0
    explicit = PoisonConfig(concepts=(a,), targets=((a, 0),))
    assert build_poison(world, explicit, 4).targets == {a: 0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"concepts": ()}, "empty selection"),
        ({"concepts": (0, 0)}, "duplicates"),
        ({"concepts": (99,)}, "unknown concept ids"),
        ({"concepts": (0,), "budget": 0}, "budget"),
        ({"concepts": (0,), "budget": -2}, "budget"),
        ({"concepts": (0,), "targets": ((0, 0),)}, "targets itself"),
        ({"concepts": (0,), "epsilon": 0.9}, "epsilon"),
        ({"concepts": (0,), "method": "bogus"}, "method must be one of"),
        ({"concepts": (0,), "targets": "closest"}, "targets must be one of"),
    ],
)
def test_bad_input(world, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_poison(world, PoisonConfig(**kwargs), 4)


def test_c_p_larger_than_k():
    w = World(WorldConfig(n_concepts=8))
    with pytest.raises(ValueError, match="unknown concept ids|exceeds"):
        build_poison(w, PoisonConfig(concepts=tuple(range(9))), 2)


def test_nightshade_bounded_and_reported():
    ldm = MiniLDM.build(WorldConfig(n_concepts=8), ModelConfig.tiny())
    eps = 8 / 255
    cfg = PoisonConfig(concepts=(1,), method="nightshade", budget=3, epsilon=eps, steps=5)
    p = build_poison(ldm.world, cfg, 4, vae=ldm.vae)
    clean = build_poison(ldm.world, PoisonConfig(concepts=(1,), budget=3), 4)  # same rng stream
    assert (p.image_concept == 1).all() and (p.caption_concept == 1).all()
    assert p.report["linf"] <= eps + 1e-6
    assert 0 < p.report["ssim"] <= 1
    assert p.report["latent_distance_after"] <= p.report["latent_distance_before"]
    assert p.images.min() >= -1 and p.images.max() <= 1
    assert clean.images.shape == p.images.shape


def test_ssim_identity():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    np.testing.assert_allclose(ssim(x, x).numpy(), 1.0, atol=1e-5)
    assert (ssim(x, -x) < 0.5).all()


def test_nightshade_custom_anchors_are_used():
    """anchor_images(b, n) replaces the natural target images (e.g. the model's generations)."""
    ldm = MiniLDM.build(WorldConfig(n_concepts=8), ModelConfig.tiny())
    calls = []

    def anchors(b, n):
        calls.append((b, n))
        return ldm.world.sample(n, seed=5, concepts=[1]).images  # the source itself

    cfg = PoisonConfig(
        concepts=(1,), method="nightshade", targets=((1, 2),), budget=3, epsilon=8 / 255, steps=2
    )
    near = build_poison(ldm.world, cfg, 4, vae=ldm.vae, anchor_images=anchors)
    far = build_poison(ldm.world, cfg, 4, vae=ldm.vae)
    assert calls == [(2, 3)]
    assert near.report["latent_distance_before"] < far.report["latent_distance_before"]
