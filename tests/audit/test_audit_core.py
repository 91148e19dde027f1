"""The audit's numbers against hand-computed cases and a naive reference."""

from __future__ import annotations

import numpy as np
import pytest

from core.audit import Audit, AuditPairs, concept_pair_structure


def _unit(a):
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _pairs(x, y, concept, names=None, poisoned=None):
    k = int(max(concept)) + 1
    return AuditPairs(
        np.asarray(x, np.float32),
        np.asarray(y, np.float32),
        np.asarray(concept, np.int64),
        tuple(names or [f"c{i}" for i in range(k)]),
        "test",
        poisoned=None if poisoned is None else np.asarray(poisoned, bool),
    )


def test_science_worked_case():
    # shared/SCIENCE.md: x1·x2 = 0.5, y1·y2 = 0.1, s1 = 0.45, s2 = 0.20 → AD 0.44
    import math

    x = np.array([[1.0, 0.0, 0.0], [0.5, math.sqrt(0.75), 0.0]])
    # y_i chosen so that cos(x_i, y_i) = s_i and y1·y2 = 0.1, solved numerically below
    from scipy.optimize import least_squares

    def resid(v):
        y1, y2 = v[:3], v[3:]
        return [
            y1 @ y1 - 1,
            y2 @ y2 - 1,
            x[0] @ y1 - 0.45,
            x[1] @ y2 - 0.20,
            y1 @ y2 - 0.1,
        ]

    sol = least_squares(resid, np.r_[0.45, 0.3, 0.8, 0.2, -0.3, 0.9], xtol=1e-15, ftol=1e-15)
    y = sol.x.reshape(2, 3)
    rep = Audit(_pairs(x, y, [0, 1]), scale=(0.20, 0.45)).report()
    assert rep.health.d_fea == pytest.approx(0.5, abs=1e-6)
    assert rep.health.d_stru == pytest.approx(0.2, abs=1e-6)
    assert rep.health.ad == pytest.approx(0.44, abs=1e-6)
    (ov,) = rep.overlapping
    assert ov.disagreement == pytest.approx(0.4, abs=1e-6)  # |0.5 − 0.1|
    assert ov.image_sim == pytest.approx(0.5, abs=1e-6)
    assert ov.text_sim == pytest.approx(0.1, abs=1e-6)
    assert ov.structure == pytest.approx(0.2, abs=1e-6)  # the only pair: all of D_stru


def test_concept_pairs_match_naive_loop():
    rng = np.random.default_rng(0)
    n, k = 37, 4
    x, y = _unit(rng.normal(size=(n, 6))), _unit(rng.normal(size=(n, 6)))
    lab = rng.integers(0, k, n)
    dis, img, txt, counts = concept_pair_structure(x, y, lab, block=8)
    ref = np.zeros((k, k))
    ref_img = np.zeros((k, k))
    for i in range(n):
        for j in range(n):
            if i != j:
                ref[lab[i], lab[j]] += abs(x[i] @ x[j] - y[i] @ y[j])
                ref_img[lab[i], lab[j]] += x[i] @ x[j]
    np.testing.assert_allclose(dis, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(img, ref_img, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(counts, np.bincount(lab, minlength=k))


def test_shares_sum_to_totals_and_permutation_invariant():
    rng = np.random.default_rng(1)
    n = 60
    x, y = _unit(rng.normal(size=(n, 8))), _unit(rng.normal(size=(n, 8)))
    lab = rng.integers(0, 5, n)
    a = Audit(_pairs(x, y, lab), scale=None)
    rep = a.report()
    assert sum(c.ad for c in rep.concepts) == pytest.approx(rep.health.ad, rel=1e-9)
    assert a.concept_pairs is not None
    assert a.concept_pairs.share.sum() == pytest.approx(rep.health.d_stru, rel=1e-5)
    perm = rng.permutation(n)
    rep2 = Audit(_pairs(x[perm], y[perm], lab[perm]), scale=None).report()
    assert rep2.health.ad == pytest.approx(rep.health.ad, rel=1e-9)
    assert [(o.a, o.b) for o in rep2.overlapping] == [(o.a, o.b) for o in rep.overlapping]


def test_misaligned_pair_is_flagged_with_detector_scores():
    rng = np.random.default_rng(2)
    centres = _unit(rng.normal(size=(3, 16)))
    lab = np.repeat(np.arange(3), 10)
    x = _unit(centres[lab] + 0.05 * rng.normal(size=(30, 16)))
    y = _unit(centres[lab] + 0.05 * rng.normal(size=(30, 16)))
    x[4] = _unit(centres[[2]] + 0.05 * rng.normal(size=(1, 16)))[0]  # caption 0, image of 2
    poisoned = np.zeros(30, bool)
    poisoned[4] = True
    rep = Audit(_pairs(x, y, lab, poisoned=poisoned), scale=(0.5, 0.9)).report()
    assert rep.flagged[0].index == 4
    assert "misaligned" in rep.flagged[0].reasons
    assert set(rep.flagged[0].scores) == {"misalignment", "structural_outlier", "knn_disagreement"}
    assert rep.flagged[0].poisoned is True
    assert rep.flag_truth is not None and rep.flag_truth["recall"] == 1.0
    top = rep.overlapping[0]
    assert 0 in (top.a, top.b) and 2 in (top.a, top.b)  # the poison makes concepts 0 and 2 collide


def test_sampled_path_for_large_n_has_an_interval():
    rng = np.random.default_rng(3)
    n = 3000
    x, y = _unit(rng.normal(size=(n, 8))), _unit(rng.normal(size=(n, 8)))
    lab = rng.integers(0, 4, n)
    exact = Audit(_pairs(x, y, lab), scale=None).report()
    sampled = Audit(_pairs(x, y, lab), scale=None, exact_max=1000, samples=50_000).report()
    lo, hi = sampled.health.ci["ad"]
    assert lo <= exact.health.ad <= hi
    assert sampled.detectors == ("misalignment",)
    assert any("sampled" in n for n in sampled.notes)
    s_ex = {(o.a, o.b): o.disagreement for o in exact.overlapping}
    for o in sampled.overlapping:
        assert o.disagreement == pytest.approx(s_ex[(o.a, o.b)], rel=0.05)


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="concept ids"):
        _pairs(np.eye(3), np.eye(3), [0, 1, 5], names=["a", "b"])
    with pytest.raises(ValueError, match="at least 2"):
        _pairs(np.eye(3)[:1], np.eye(3)[:1], [0])
