"""Detectors and ROC on constructed cases with known answers, against naive references."""

from __future__ import annotations

import numpy as np
import pytest

from core.defend import (
    DETECTORS,
    DefenseConfig,
    apply_defense,
    concept_share,
    knn_disagreement,
    misalignment,
    roc,
    score,
    structural_outlier,
    threshold_at_fpr,
)


def toy_world(
    k: int = 4, per: int = 12, d: int = 16, poison: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """k concepts, each a random unit direction; images = direction + small noise, texts = the
    direction + tiny noise. The first ``poison`` extra pairs carry concept 0's caption on images
    of concept 1 (dirty-label). Returns x, y, caption_concept, poisoned."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    lab = np.repeat(np.arange(k), per)
    x = centres[lab] + 0.15 * rng.normal(size=(lab.size, d))
    y = centres[lab] + 0.05 * rng.normal(size=(lab.size, d))
    px = centres[np.ones(poison, int)] + 0.15 * rng.normal(size=(poison, d))
    py = centres[np.zeros(poison, int)] + 0.05 * rng.normal(size=(poison, d))
    x, y = np.vstack([x, px]), np.vstack([y, py])
    cap = np.r_[lab, np.zeros(poison, int)]
    truth = np.r_[np.zeros(lab.size, bool), np.ones(poison, bool)]
    return x, y, cap, truth


@pytest.mark.parametrize("name", ["misalignment", "structural_outlier", "knn_disagreement"])
def test_poisoned_pair_outranks_every_clean_pair(name):
    x, y, cap, truth = toy_world()
    s = score(name, x, y, cap)
    assert s.shape == (len(cap),) and s.dtype == np.float64
    assert s[truth].min() > s[~truth].max(), name
    assert roc(s, truth).auc == 1.0


def test_concept_share_ranks_the_poisoned_concept_first():
    x, y, cap, truth = toy_world()
    s = concept_share(x, y, cap)
    per = {c: s[cap == c][0] for c in np.unique(cap)}
    assert all(np.all(s[cap == c] == v) for c, v in per.items())  # one score per concept
    assert max(per, key=per.get) == 0  # concept 0 carries the poison


def test_misalignment_is_one_minus_cosine_and_scale_invariant():
    x, y, cap, _ = toy_world()
    ref = [1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(x, y)]
    np.testing.assert_allclose(misalignment(x, y), ref, atol=1e-12)
    np.testing.assert_allclose(misalignment(3 * x, 0.5 * y), ref, atol=1e-12)


def test_structural_outlier_matches_a_naive_row_sum():
    x, y, cap, _ = toy_world(k=3, per=5, d=6)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    n = len(x)
    t = np.array(
        [sum(abs(xn[i] @ xn[j] - yn[i] @ yn[j]) for j in range(n) if j != i) for i in range(n)]
    )
    t /= n * n
    med = np.array([np.median(t[cap == c]) for c in cap])
    np.testing.assert_allclose(structural_outlier(x, y, cap), t / med, rtol=1e-9)


def test_knn_blocked_equals_unblocked_and_permutation_equivariant():
    x, y, cap, _ = toy_world(seed=3)
    a = knn_disagreement(x, y, cap, k=5, block=7)
    b = knn_disagreement(x, y, cap, k=5, block=10_000)
    np.testing.assert_array_equal(a, b)
    perm = np.random.default_rng(1).permutation(len(cap))
    np.testing.assert_array_equal(knn_disagreement(x[perm], y[perm], cap[perm], k=5), a[perm])


def naive_auc(s, t):
    pos, neg = s[t], s[~t]
    return np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])


def test_roc_auc_matches_mann_whitney_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 6, 300).astype(float)  # many ties
    t = rng.random(300) < 0.3 + 0.1 * s / 5
    r = roc(s, t)
    assert r.auc == pytest.approx(naive_auc(s, t), abs=1e-12)
    assert r.fpr[0] == r.tpr[0] == 0 and r.fpr[-1] == r.tpr[-1] == 1
    assert np.all(np.diff(r.fpr) >= 0) and np.all(np.diff(r.tpr) >= 0)


def test_auc_one_on_separable_and_half_on_constant():
    t = np.r_[np.zeros(50, bool), np.ones(5, bool)]
    s = np.r_[np.linspace(0, 1, 50), np.linspace(2, 3, 5)]
    r = roc(s, t)
    assert r.auc == 1.0 and r.recall_at(0.01) == 1.0
    assert roc(-s, t).auc == 0.0
    assert roc(np.zeros(55), t).auc == 0.5


def test_recall_and_threshold_at_fpr():
    # 100 clean scores 0..99, 10 poisoned at 95..104: at 5 % FPR, flag ≥ 95 → 5 clean flagged
    clean = np.arange(100.0)
    pois = np.arange(95.0, 105.0)
    s, t = np.r_[clean, pois], np.r_[np.zeros(100, bool), np.ones(10, bool)]
    r = roc(s, t)
    assert r.recall_at(0.05) == 1.0
    assert r.recall_at(0.01) == pytest.approx(0.6)  # ≥ 99: 1 clean, 6 poisoned
    tau = threshold_at_fpr(clean, 0.05)
    assert tau == 95.0 and (clean >= tau).mean() == 0.05
    # ties never push the false-positive rate over the asked one
    assert (np.zeros(10) >= threshold_at_fpr(np.zeros(10), 0.5)).mean() == 0.0


def test_apply_defense_drops_the_poison():
    x, y, cap, truth = toy_world(per=40)
    keep, stats = apply_defense(DefenseConfig("misalignment", 0.05), x, y, cap, truth)
    assert not keep[truth].any()
    assert stats["defense_recall"] == 1.0 and stats["defense_fpr_measured"] <= 0.05
    assert stats["defense_removed"] == int((~keep).sum())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: roc([1.0, 2.0], [True, True]), "truth: need both"),
        (lambda: roc([1.0, np.nan], [True, False]), "scores: contain NaN"),
        (lambda: roc([1.0, 2.0], [1, 0]), "truth: expected a boolean"),
        (lambda: score("clip", np.eye(3), np.eye(3), [0, 1, 2]), "detector: unknown"),
        (lambda: misalignment(np.eye(3), np.eye(4)[:3]), "shapes differ"),
        (lambda: misalignment(np.zeros((3, 2)), np.ones((3, 2))), "image_emb: row 0"),
        (lambda: structural_outlier(np.eye(3), np.eye(3), [0, 1]), "caption_concept"),
        (lambda: DefenseConfig("misalignment", 1.5), "defense.fpr"),
        (lambda: DefenseConfig("nope"), "defense.detector"),
        (lambda: DefenseConfig.coerce({"detector": "misalignment", "fp": 1}), "unknown keys"),
    ],
)
def test_errors_name_the_field(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_registry_and_config_roundtrip():
    assert set(DETECTORS) == {
        "misalignment",
        "structural_outlier",
        "concept_share",
        "knn_disagreement",
    }
    d = DefenseConfig("knn_disagreement", 0.01)
    assert DefenseConfig.coerce(d.to_dict()) == d
