"""AD → outcome calibration: intervals, refusal outside the fitted range, packs that don't mix."""

from __future__ import annotations

import numpy as np
import pytest

from core.audit import calibration_for, fit_outcome


def _data(seeds=(0, 1, 2, 3), levels=(0.4, 0.5, 0.6, 0.7, 0.8), noise=0.02):
    rng = np.random.default_rng(0)
    ad, y, s, c = [], [], [], []
    for seed in seeds:
        for i, a in enumerate(levels):
            a2 = a + rng.normal(0, 0.005)
            ad.append(a2)
            y.append(1.4 - 1.2 * a2 + rng.normal(0, noise))
            s.append(seed)
            c.append(i)
    return np.array(ad), np.array(y), np.array(s), np.array(c)


def test_fit_recovers_the_line_and_covers_new_draws():
    ad, y, s, c = _data()
    fit = fit_outcome("acc_unpoisoned", ad, y, s, 0.9, c)
    assert fit.mean(0.6) == pytest.approx(1.4 - 1.2 * 0.6, abs=0.02)
    ad2, y2, _, _ = _data(seeds=(7, 8, 9))
    rng = np.random.default_rng(5)
    y2 = 1.4 - 1.2 * ad2 + rng.normal(0, 0.02, ad2.size)
    inside = []
    for a, v in zip(ad2, y2, strict=True):
        if fit.ad_range[0] <= a <= fit.ad_range[1]:
            _, lo, hi = fit.interval(a)
            inside.append(lo <= v <= hi)
    assert np.mean(inside) >= 0.7


def test_refuses_outside_the_fitted_range(demo_assets):
    cal = calibration_for()
    lo, hi = cal.fits["acc_unpoisoned"].ad_range
    margin = cal.fits["acc_unpoisoned"].margin
    far = cal.predict(hi + margin + 0.05)
    assert far.acc_unpoisoned is None and far.low is None and far.high is None
    assert any("not extrapolated" in n for n in far.notes)
    mid = cal.predict((lo + hi) / 2)
    assert mid.acc_unpoisoned is not None and mid.low <= mid.acc_unpoisoned <= mid.high
    assert mid.model and mid.fitted_on == (str(demo_assets / "demo"),)
    if margin > 0:
        edge = cal.predict(hi + margin / 2)
        assert edge.acc_unpoisoned is not None
        assert any("extrapolated, treat with care" in n for n in edge.notes)


def test_one_seed_is_not_enough():
    with pytest.raises(ValueError, match="≥ 2 seeds"):
        fit_outcome("incoherence", np.linspace(0.3, 0.9, 6), np.linspace(0, 0.1, 6), np.zeros(6))


def test_no_calibration_for_an_unknown_model(tmp_path, demo_assets):
    import shutil

    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(_base_model_json(), model / "model.json")
    with pytest.raises(ValueError, match="no calibration exists"):
        calibration_for(str(model))


def _base_model_json():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "assets" / "base" / "model.json"
