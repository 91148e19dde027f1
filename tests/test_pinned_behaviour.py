"""Numbers the refactors must not move: demo-pack summaries and claims, the synthetic pack, the
alignment graph's traces and the DDPM training losses of base training, the mini fine-tune and
the real fine-tune. The expected values live in tests/data/pinned_behaviour.json, written by
this module's own observers from the code as it stood before the results layer, the sweep
package and the training loss were reorganised (``PIN_WRITE=1 pytest tests/test_pinned_behaviour.py``
rewrites it: only do that for an intended change, and say so in the commit).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PINNED = Path(__file__).parent / "data" / "pinned_behaviour.json"
WRITE = os.environ.get("PIN_WRITE") == "1"


def _plain(x: Any) -> Any:
    """JSON-able copy: numpy scalars and arrays as Python numbers and lists."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


def _close(got: Any, want: Any, rtol: float, path: str = "") -> None:
    """Recursive comparison: floats within ``rtol`` (relative, 1e-12 absolute), the rest equal."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{path}: keys differ"
        for k in want:
            _close(got[k], want[k], rtol, f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: lengths differ"
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, rtol, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, int | float), f"{path}: {got!r} is not a number"
        if math.isnan(want) or math.isinf(want):
            assert str(float(got)) == str(want), f"{path}: {got} != {want}"
        else:
            assert math.isclose(got, want, rel_tol=rtol, abs_tol=1e-12), f"{path}: {got} != {want}"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def _check(name: str, observed: Any, rtol: float = 1e-9) -> None:
    observed = json.loads(json.dumps(_plain(observed)))
    pinned = json.loads(PINNED.read_text()) if PINNED.is_file() else {}
    if WRITE:
        pinned[name] = observed
        PINNED.parent.mkdir(exist_ok=True)
        PINNED.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
        return
    assert name in pinned, f"{name} is not pinned yet; run with PIN_WRITE=1 once"
    _close(observed, pinned[name], rtol, name)


# ------------------------------------------------------------------ demo pack
@pytest.fixture(scope="module")
def demo():
    from core.results.pack import demo_dir, load_pack

    return load_pack(demo_dir())


def test_demo_pack_summary_and_level_means(demo):
    from core.results.aggregate import level_summaries, summarize

    _check("demo_summary", summarize(demo.records))
    _check("demo_level_summaries", [s.to_dict() for s in level_summaries(demo.records)])


def test_demo_pack_claims(demo):
    from core.analysis.claims import pack_claims

    _check("demo_claims", pack_claims(demo).to_dict())


def test_demo_pack_groups_of_the_first_seed(demo):
    _check("demo_groups", {c: demo.groups(c) for c in demo.levels})


# ------------------------------------------------------------------ synthetic pack
def _array_digest(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        return {
            k: [str(z[k].dtype), list(z[k].shape), float(np.asarray(z[k], np.float64).sum())]
            if z[k].dtype.kind in "biuf"
            else [str(z[k].dtype), list(z[k].shape)]
            for k in sorted(z.files)
        }


def test_synthetic_pack_outputs(tmp_path):
    from core.results.synthetic import write_synthetic_demo_pack

    root = write_synthetic_demo_pack(tmp_path / "p", n_concepts=16, levels=(0, 4, 16))
    results = json.loads((root / "results.json").read_text())
    # AD through core.metrics (blocked float64 Gram sums) instead of a local loop: equal to
    # ~1e-9, so the synthetic numbers are compared at 1e-7
    _check("synthetic_results", results, rtol=1e-7)
    _check("synthetic_training", json.loads((root / "training.json").read_text()))
    _check("synthetic_embeddings", _array_digest(root / "embeddings.npz"))
    _check("synthetic_generations", _array_digest(root / "generations.npz"))


# ------------------------------------------------------------------ a figure's traces
def test_alignment_graph_traces(tmp_path):
    from core.figures import alignment_graph_figure, graph_positions
    from core.results.pack import load_pack
    from core.results.synthetic import write_synthetic_demo_pack

    pack = load_pack(write_synthetic_demo_pack(tmp_path / "p", n_concepts=16, levels=(0, 4, 16)))
    levels = {c: pack.level_arrays(c) for c in pack.levels}
    pos = graph_positions(pack.embeddings()["text_concept"], levels)
    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 255, size=(16, 8, 8, 3), dtype=np.uint8)
    figs = {
        "drift": alignment_graph_figure(
            pos,
            levels[16],
            16,
            pack.concepts,
            pack.poisoned_at(16),
            pack.targets,
            text_concept=pack.embeddings()["text_concept"],
            labels=pack.poisoned_at(16)[:3],
            selected=5,
            distortion="drift",
            baseline=levels[0]["generated"],
        ),
        "arrows": alignment_graph_figure(
            pos,
            levels[4],
            4,
            pack.concepts,
            pack.poisoned_at(4),
            pack.targets,
            show_pairs=True,
            knn=2,
            thumbnails={"clean": thumbs, "generated": thumbs},
        ),
    }
    observed = {}
    for key, fig in figs.items():
        d = fig.to_plotly_json()
        traces = []
        for t in d["data"]:
            xs = [v for v in np.ravel(t.get("x", [])) if isinstance(v, int | float)]
            ys = [v for v in np.ravel(t.get("y", [])) if isinstance(v, int | float)]
            traces.append(
                [
                    t.get("type"),
                    t.get("name"),
                    t.get("mode"),
                    len(xs),
                    float(np.sum(xs)),
                    float(np.sum(ys)),
                ]  # fmt: skip
            )
        blob = json.dumps(d, sort_keys=True, default=_plain)
        observed[key] = {
            "traces": traces,
            "title": d["layout"].get("title", {}).get("text"),
            "sha256": hashlib.sha256(blob.encode()).hexdigest(),
        }
    _check("alignment_graph", observed)


# ------------------------------------------------------------------ DDPM training losses
def test_base_training_unet_loss(tiny_model_dir):
    meta = json.loads((Path(tiny_model_dir) / "model.json").read_text())
    _check("base_unet_loss", meta["training"]["stages"]["unet"]["loss"], rtol=1e-4)


def test_mini_finetune_losses(tiny_model_dir):
    from core.models.ldm import MiniLDM
    from core.training.finetune import FinetuneConfig, encode_images, finetune_unet, make_pairs

    ldm = MiniLDM.from_pretrained(tiny_model_dir)
    d = ldm.world.sample(2, seed=0)
    mean, std = encode_images(ldm, d.images)
    data = make_pairs(ldm, mean, std, np.arange(len(d)), d.captions)
    losses: list[float] = []
    for params in ("all", "lora"):
        cfg = FinetuneConfig(steps=3, batch=4, lr=1e-3, params=params, seed=5, precision="fp32")
        finetune_unet(ldm, data, cfg, on_step=lambda s, n, loss: losses.append(loss))
    _check("mini_finetune_losses", losses, rtol=1e-4)


def test_real_denoising_loss(tmp_path):
    import contextlib

    import torch

    from core.models.sd import load_sd
    from core.models.tiny import build_tiny_sd
    from core.training.real import denoising_loss

    sd = load_sd(build_tiny_sd(tmp_path / "tiny-sd", resolution=32))
    torch.manual_seed(0)  # the VAE's latent sample draws from the global RNG
    rng = np.random.default_rng(0)
    images = [rng.uniform(-1, 1, size=(3, 32, 32)).astype(np.float32) for _ in range(2)]
    gen = torch.Generator("cpu").manual_seed(3)
    loss = denoising_loss(
        sd, sd.unet, images, ["a dog", "a cat"], gen, 32, contextlib.nullcontext()
    )
    _check("real_denoising_loss", float(loss), rtol=1e-4)
