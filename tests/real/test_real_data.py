"""Streaming datasets and poisoning them: counts in the reports, RGB conversion, errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from core.data.captioned import (
    DataReport,
    iter_batches,
    iter_records,
    keyword_pattern,
    load_image,
    mentions,
)
from core.poison.real import RealPoisonConfig, poison_dataset


def test_folder_records_and_report(messy_data):
    rep = DataReport()
    recs = list(iter_records(messy_data, rep))
    names = sorted(r.image.name for r in recs)
    assert names == ["car.jpg", "cat_0.png", "cat_1.jpg", "cat_2.png", "corrupt.png"] + [
        "dog_0.png",
        "dog_1.jpg",
        "dog_2.png",
    ]
    assert rep.skipped_count == {
        "not_an_image": 1,
        "caption_without_image": 1,
        "image_without_caption": 1,
    }
    assert [p.endswith("car.png") for p in rep.duplicates] == [True]
    batches = list(iter_batches(recs, 16, batch=3, report=rep))
    assert [b[0].shape[0] for b in batches] == [3, 3, 1]  # 7 of 8 decode
    x = np.concatenate([b[0] for b in batches])
    assert x.shape[1:] == (3, 16, 16) and x.dtype == np.float32 and np.abs(x).max() <= 1
    d = rep.to_dict()
    assert d["skipped_by_reason"]["unreadable_image"] == 1
    assert d["converted_to_rgb"] == {"L": 1, "RGBA": 1, "CMYK": 1}
    assert d["resized"] == 1  # the 200×100 image


def test_tables(tmp_path, messy_data):
    rows = [{"image": str(messy_data / "dog_0.png"), "caption": "a dog"}, {"image": "x.png"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad\n")
    rep = DataReport()
    recs = list(iter_records(tmp_path / "d.jsonl", rep))
    assert len(recs) == 1 and rep.skipped_count == {"missing_image_or_caption": 1, "bad_row": 1}
    (tmp_path / "d.csv").write_text("file_name,text\ndog_0.png,a dog\n")
    (tmp_path / "dog_0.png").write_bytes((messy_data / "dog_0.png").read_bytes())
    (rec,) = iter_records(tmp_path / "d.csv")
    assert rec.image == tmp_path / "dog_0.png" and load_image(rec.image, 8).shape == (3, 8, 8)
    (tmp_path / "e.csv").write_text("picture,words\na.png,b\n")
    with pytest.raises(ValueError, match="no image column"):
        list(iter_records(tmp_path / "e.csv"))
    with pytest.raises(ValueError, match="unsupported file type"):
        list(iter_records(tmp_path / "dog_0.png"))


def test_parquet_and_missing_pyarrow(tmp_path, messy_data, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"image": [str(messy_data / "cat_0.png")], "caption": ["a cat"]})
    pq.write_table(table, tmp_path / "d.parquet")
    assert [r.caption for r in iter_records(tmp_path / "d.parquet")] == ["a cat"]
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ValueError, match="needs pyarrow"):
        list(iter_records(tmp_path / "d.parquet"))


def test_keywords():
    p = keyword_pattern(["dog", "puppy"])
    assert mentions("Two Dogs running", p) and mentions("a puppy", p)
    assert not mentions("a hotdog stand", p)
    with pytest.raises(ValueError, match="empty"):
        keyword_pattern([" "])


def test_dirty_label(messy_data, tmp_path):
    cfg = RealPoisonConfig(concept=("dog",), target=("cat",), budget=2, resolution=16)
    r = poison_dataset([str(messy_data)], tmp_path / "p", cfg)
    assert r["poison_pairs"] == 2 and r["caption_source"] == "data"
    caps = sorted(p.read_text().strip() for p in (tmp_path / "p").glob("*.txt"))
    assert all("dog" in c for c in caps)
    assert r["data"]["skipped_by_reason"]["caption_without_image"] == 1
    assert (tmp_path / "p" / "poison_report.json").is_file()
    # the poison folder is itself a dataset
    assert len(list(iter_records(tmp_path / "p"))) == 2


def test_nightshade(messy_data, tmp_path, tiny_sd_dir):
    from core.models.sd import load_sd

    sd = load_sd(tiny_sd_dir)
    cfg = RealPoisonConfig(
        concept=("dog",), target=("cat",), method="nightshade", budget=5, epsilon=0.05, steps=2
    )
    r = poison_dataset([str(messy_data)], tmp_path / "ns", cfg, sd)
    assert r["poison_pairs"] == 3  # 4 dog images, one corrupt
    assert r["data"]["skipped_by_reason"]["unreadable_image"] == 1
    assert 0 < r["ssim"] <= 1 and r["linf"] <= 0.05 + 1e-6
    with pytest.raises(ValueError, match="needs the model's VAE"):
        poison_dataset([str(messy_data)], tmp_path / "x", cfg, None)


def test_poison_errors(messy_data, tmp_path):
    with pytest.raises(ValueError, match="share a keyword"):
        RealPoisonConfig(concept=("dog",), target=("Dog",))
    cfg = RealPoisonConfig(concept=("dog",), target=("zebra",))
    with pytest.raises(ValueError, match="no captions mention the target"):
        poison_dataset([str(messy_data)], tmp_path / "z", cfg)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        poison_dataset([str(tmp_path / "none")], tmp_path / "z", cfg)
