"""Figures are pure: assert on traces, classes, palette and layout stability."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from core.figures import (
    CLEAN,
    POISONED,
    ad_components_figure,
    alignment_graph_figure,
    compose_grid,
    concept_contributions_figure,
    export_formats,
    figure_bytes,
    fit_layout,
    generation_grid_figure,
    graph_positions,
    implosion_figure,
    procrustes,
    theory_figure,
)
from core.results.pack import load_pack
from core.results.synthetic import write_synthetic_demo_pack


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    d = write_synthetic_demo_pack(
        tmp_path_factory.mktemp("p") / "demo", n_concepts=16, levels=(0, 4, 16)
    )
    return load_pack(d)


@pytest.fixture(scope="module")
def pos(pack):
    levels = {c: pack.level_arrays(c) for c in pack.levels}
    return graph_positions(pack.embeddings()["text_concept"], levels)


def test_layout_is_fitted_once_and_is_deterministic(pack, pos):
    levels = {c: pack.level_arrays(c) for c in pack.levels}
    again = graph_positions(pack.embeddings()["text_concept"], levels)
    np.testing.assert_allclose(pos["text_concept"], again["text_concept"])
    assert pos["text_concept"].shape == (16, 2)
    assert set(pos["generated"]) == {0, 4, 16}


def test_procrustes_recovers_rotation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 2))
    th = 0.7
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    np.testing.assert_allclose(procrustes(a, 2 * a @ r + 3), a, atol=1e-9)
    with pytest.raises(ValueError, match="allowed: pca, umap"):
        fit_layout([a], method="tsne")


def test_alignment_graph_one_trace_per_edge_class(pack, pos):
    fig = alignment_graph_figure(
        pos,
        pack.level_arrays(4),
        4,
        pack.concepts,
        pack.poisoned_at(4),
        pack.targets,
        text_concept=pack.embeddings()["text_concept"],
    )
    names = [t.name for t in fig.data]
    pois = [t for t in fig.data if t.name and t.name.startswith("poisoned training pair")]
    clean = [t for t in fig.data if t.name and t.name.startswith("clean training pair")]
    assert len(pois) == 1 and len(clean) == 1
    assert pois[0].line.color == POISONED and pois[0].line.dash == "dash"
    assert None in pois[0].x  # None separators, one trace for all edges of the class
    assert "caption → generated (learned mapping)" in names
    assert any(t.marker.symbol == "x" for t in fig.data if t.name and "poisoned concept" in t.name)
    assert fig.layout.xaxis2.matches == "x"
    # no poison at C_P = 0: the poisoned edge trace is empty
    fig0 = alignment_graph_figure(pos, pack.level_arrays(0), 0, pack.concepts, [], pack.targets)
    assert not [
        x for t in fig0.data if t.name and t.name.startswith("poisoned training") for x in t.x
    ]


def test_alignment_graph_pairs_use_webgl_when_large(pack, pos, monkeypatch):
    import core.figures.graph as graph

    monkeypatch.setattr(graph, "WEBGL_THRESHOLD", 10)
    fig = alignment_graph_figure(
        pos, pack.level_arrays(4), 4, pack.concepts, pack.poisoned_at(4), show_pairs=True
    )
    assert any(isinstance(t, go.Scattergl) for t in fig.data)
    assert any(
        "caption “" in (t.text[0] if t.text is not None else "")
        for t in fig.data
        if isinstance(t, go.Scattergl)
    )


def test_trajectory_figures(pack):
    fig = ad_components_figure(pack.summary)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["AD", "D_fea (feature term)", "D_stru (structure term)"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 3
    imp = implosion_figure(pack.summary)
    assert imp.layout.xaxis.matches == "x2" or imp.layout.xaxis2.matches == "x"
    assert any(
        t.name == "accuracy, unpoisoned concepts" and t.line.color == CLEAN for t in imp.data
    )


def test_contributions_and_theory():
    shares = [{"label": i, "feature": 0.1 * i, "structure": 0.05, "alpha": 0.8} for i in range(4)]
    fig = concept_contributions_figure(shares, ["a", "b", "c", "d"], poisoned=[3])
    assert list(fig.data[0].y)[-1] == "× d"
    fig = theory_figure(
        {"c_p": [0, 1], "ad": [0.1, 0.2], "d_fea": [0.1, 0.2], "d_stru": [0, 0]}, marker_c=1
    )
    assert len(fig.data) == 3


def test_grids_and_export():
    imgs = np.zeros((2, 3, 4, 4, 3), np.uint8)
    g = compose_grid(imgs, pad=1, factor=2)
    assert g.shape == (2 * 9 + 1, 3 * 9 + 1, 3)
    fig = generation_grid_figure(imgs, ["r0", "r1"], ["0", "4", "16"])
    assert list(fig.layout.yaxis.ticktext) == ["r0", "r1"]
    assert "html" in export_formats()
    assert b"<html>" in figure_bytes(fig, "html")[:100]
    with pytest.raises(ValueError, match="allowed"):
        figure_bytes(fig, "gif")


def test_graph_nodes_carry_concept_ids_for_click_selection(pack, pos):
    from core.figures.nodes import selected_concept

    fig = alignment_graph_figure(
        pos, pack.level_arrays(4), 4, pack.concepts, pack.poisoned_at(4), pack.targets
    )
    nodes = [t for t in fig.data if t.customdata is not None]
    assert {t.name for t in nodes if t.name} >= {
        "caption (clean concept)",
        "caption (poisoned concept) ×",
        "image concept (mean image)",
        "where the caption lands ◆",
    }
    ids = sorted({int(c) for t in nodes for c in t.customdata})
    assert ids == list(range(len(pack.concepts)))
    lands = next(t for t in fig.data if t.name == "where the caption lands ◆")
    assert "caption: “a photo of a" in lands.text[3]  # hover keeps the caption
    # a Streamlit selection event: edges carry no customdata, nodes do (scalar or list)
    assert selected_concept([{"curve_number": 0, "x": 1.0}, {"customdata": 7}]) == 7
    assert selected_concept([{"customdata": [5]}]) == 5
    assert selected_concept([{"x": 0.0}]) is None and selected_concept(None) is None


def test_graph_thumbnails_at_nodes(pack, pos):
    from core.figures.nodes import reference_images

    k = len(pack.concepts)
    clean = reference_images(pack.concepts)
    assert clean is not None and clean.shape == (k, 32, 32, 3) and clean.dtype == np.uint8
    assert clean.std() > 10  # real pictures, not blanks
    assert reference_images(["not", "world", "concepts"]) is None
    gen = np.zeros((k, 32, 32, 3), np.uint8)
    args = (pos, pack.level_arrays(4), 4, pack.concepts, pack.poisoned_at(4), pack.targets)
    fig = alignment_graph_figure(*args, thumbnails={"clean": clean, "generated": gen})
    imgs = fig.layout.images
    assert len(imgs) == 2 * k
    assert [i.xref for i in imgs] == ["x"] * k + ["x2"] * k
    assert all(i.source.startswith("data:image/png;base64,") for i in imgs)
    # corner at the node, just above-right: the clean image beside each caption ...
    t = pos["text_concept"]
    assert imgs[0].x > t[0, 0] and imgs[0].y > t[0, 1]
    assert abs(imgs[0].x - t[0, 0]) < imgs[0].sizex  # ... and close to it
    # ... the generated one beside where the caption lands
    g = pos["generated"][4]
    assert abs(imgs[k].x - g[0, 0]) < imgs[k].sizex and abs(imgs[k].y - g[0, 1]) < imgs[k].sizey
    # without generations the clean images go to the image-concept nodes
    fig = alignment_graph_figure(*args, thumbnails={"clean": clean, "generated": None})
    assert len(fig.layout.images) == 2 * k
    assert not alignment_graph_figure(*args).layout.images


def test_concept_card(pack):
    from core.figures.nodes import concept_card

    p = pack.poisoned_at(4)[0]
    arrays = pack.level_arrays(4)
    card = concept_card(arrays, p, pack.concepts, pack.poisoned_at(4), pack.targets)
    assert card["poisoned"] and card["target"] == pack.concepts[pack.targets[p]]
    assert card["caption"] == f"a photo of a {pack.concepts[p]}"
    cap = arrays["caption_concept"] == p
    assert card["poisoned_pairs"] == int((cap & arrays["poisoned"]).sum()) > 0
    assert card["clean_pairs"] == int((cap & ~arrays["poisoned"]).sum())
    assert -1 <= card["alignment"] <= 1 and card["lands_on"] in pack.concepts
    assert card["lands_on_cos"] >= card["alignment"] - 1e-9  # nearest is at least as close
    clean = concept_card(pack.level_arrays(0), p, pack.concepts, [], pack.targets)
    assert not clean["poisoned"] and clean["target"] is None and clean["poisoned_pairs"] == 0
    with pytest.raises(ValueError, match="out of range"):
        concept_card(arrays, len(pack.concepts), pack.concepts, [], {})


def test_training_steps_figure_probe_and_loss_panels():
    from core.figures.trajectory import training_steps_figure

    training = {
        "0": {
            "step": [1, 2, 3],
            "loss": [0.3, 0.2, 0.1],
            "probe": {"step": [0, 3], "ad": [0.4, 0.41], "acc_unpoisoned": [1.0, 0.9]},
        },
        "8": {
            "step": [1, 2, 3],
            "loss": [0.3, 0.25, 0.2],
            "probe": {"step": [0, 3], "ad": [0.4, 0.5], "acc_unpoisoned": [1.0, None]},
        },
    }
    fig = training_steps_figure(training, [0, 8])
    assert len(fig.data) == 6  # 2 levels × (AD, accuracy, loss)
    assert sum(t.showlegend for t in fig.data) == 2  # one legend entry per C_P
    assert list(fig.data[5].y) == pytest.approx([0.3, 0.275, 0.25])  # moving average
    assert list(fig.data[4].y) == [1.0]  # None skipped
    loss_only = training_steps_figure({"0": {"step": [1, 2], "loss": [0.2, 0.1]}}, [0])
    assert len(loss_only.data) == 1


# ---------------------------------------------------------------- on stage (issue 14)
def _texts(fig: go.Figure) -> list[float]:
    """Every font size a figure sets explicitly or inherits from layout.font."""
    base = fig.layout.font.size
    sizes = [base, fig.layout.legend.font.size or base, fig.layout.hoverlabel.font.size or base]
    sizes += [a.font.size or base for a in fig.layout.annotations]
    return sizes


def test_style_legible_and_legend_at_container_bottom(pack):
    from core.figures.palette import FONT_SIZE

    fig = implosion_figure(pack.summary)
    assert min(_texts(fig)) >= 16 and FONT_SIZE >= 16
    legend = fig.layout.legend
    assert legend.yref == "container" and legend.yanchor == "bottom"  # no empty export band
    assert fig.layout.margin.b <= 60


def test_present_raises_every_text(pack, pos):
    from core.figures.palette import present

    fig = alignment_graph_figure(
        pos, pack.level_arrays(4), 4, pack.concepts, pack.poisoned_at(4), labels=[0, 1]
    )
    present(fig, 20)
    assert min(_texts(fig)) >= 20
    assert fig.layout.xaxis.tickfont.size == 20 and fig.layout.yaxis.title.font.size == 20
    assert all(t.textfont.size == 20 for t in fig.data if t.mode == "text")


def test_step_ticks_are_round_multiples():
    from core.figures.palette import step_ticks

    assert step_ticks(range(61))["tickvals"] == [0, 10, 20, 30, 40, 50, 60]
    assert step_ticks([1, 2, 3])["tickvals"] == [1, 2, 3]
    assert step_ticks(range(0, 401, 10))["tickvals"] == list(range(0, 401, 50))
    assert step_ticks([5.5, 123.0])["tickvals"] == [20, 40, 60, 80, 100, 120]
    assert step_ticks([]) == {}


def test_integer_ticks_levels_and_colours():
    from core.figures.palette import LEVEL_COLOURS, integer_ticks, level_colours, spread_levels

    t = integer_ticks([0, 1, 2, 4, 8, 16, 24, 32])
    assert t["tickvals"] == [0, 4, 8, 16, 24, 32]
    assert all(isinstance(v, int) for v in t["tickvals"])
    assert integer_ticks([0, 2, 4])["tickvals"] == [0, 2, 4]
    assert integer_ticks([]) == {}
    assert spread_levels([0, 1, 2, 4, 8, 16, 24, 32], 4) == [0, 8, 24, 32]
    assert spread_levels([0, 4], 4) == [0, 4]
    few = level_colours([0, 8, 32])
    assert len(set(few)) == 3 and set(few) <= set(LEVEL_COLOURS)
    many = level_colours(list(range(8)))
    assert set(many) <= set(LEVEL_COLOURS) and len(set(many)) == len(LEVEL_COLOURS)
    # a C_P axis carries integer ticks only
    fig = ad_components_figure({"ad": {"c_p": [0, 1, 2], "mean": [0.1, 0.2, 0.3]}}, marker_c=1)
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2]
    assert fig.layout.shapes[0].x0 == 1  # the marker line at C_P = 1


def test_graph_labels_and_drift(pack, pos):
    from core.figures.graph import drift

    a0, a16 = pack.level_arrays(0), pack.level_arrays(16)
    fig = alignment_graph_figure(
        pos,
        a16,
        16,
        pack.concepts,
        pack.poisoned_at(16)[:3],
        labels=pack.poisoned_at(16)[:3],
        selected=5,
        distortion="drift",
        baseline=a0["generated"],
    )
    text = [t for t in fig.data if t.mode == "text"]
    assert len(text[0].text) == 4 and list(text[1].text) == [pack.concepts[5]]
    names = [t.name for t in fig.data]
    assert "where the caption landed at C_P = 0 ◇" in names
    assert any(n.startswith("drift since C_P = 0") for n in names)
    assert "drift" in fig.layout.title.text
    # drift is 1 − cos against the C_P = 0 landing points: zero for the baseline itself
    np.testing.assert_allclose(drift(a0["generated"], a0["generated"]), 0, atol=1e-6)
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(drift(x, np.array([[0.0, 1.0], [0.0, 1.0]])), [1.0, 0.0])
    with pytest.raises(ValueError, match="allowed: arrows, drift"):
        alignment_graph_figure(pos, a16, 16, pack.concepts, [], distortion="stretch")
    no_base = {**pos, "generated": {16: pos["generated"][16]}}
    with pytest.raises(ValueError, match="needs level C_P = 0"):
        alignment_graph_figure(no_base, a16, 16, pack.concepts, [], distortion="drift")


def test_generation_grid_highlights_rows():
    imgs = np.zeros((3, 2, 8, 8, 3), dtype=np.uint8)
    fig = generation_grid_figure(imgs, ["a", "b", "c"], ["clean", "C_P 4"], highlight=[1])
    assert len(fig.layout.shapes) == 1
    assert list(fig.layout.yaxis.ticktext) == ["a", "<b>b ▼</b>", "c"]


def test_figcache_computes_once_and_never_overwrites(pack, tmp_path, monkeypatch):
    from core.results import figcache

    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path / "runs"))
    assert not figcache.is_cached(pack)
    calls = []

    def compute(p, method):
        calls.append(method)
        return figcache.compute_positions(p, method)

    first = figcache.cached_positions(pack, "pca", compute=compute)
    assert calls == ["pca"] and figcache.is_cached(pack)
    path = figcache.cache_folder(pack.root) / "positions-pca.npz"
    stamp = path.stat().st_mtime_ns

    def fail(p, method):
        raise AssertionError("recomputed although cached on disk")

    again = figcache.cached_positions(pack, "PCA", compute=fail)
    assert path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first["text_concept"], again["text_concept"])
    assert set(again["generated"]) == set(first["generated"])
    for c in first["pairs"]:
        for key in ("image", "text", "index"):
            np.testing.assert_array_equal(first["pairs"][c][key], again["pairs"][c][key])
    # nothing is written inside the pack; warm() reports the cache file
    assert not list(pack.root.glob("positions*"))
    assert figcache.warm(pack.root) == [path]
    # a re-written pack gets a new cache folder (the old file is left as it was); a new mtime
    # alone (a fresh checkout) keeps the entry
    import os

    results = pack.root / "results.json"
    st = results.stat()
    os.utime(results, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert figcache.cache_folder(pack.root) == path.parent
    results.write_text(results.read_text() + "\n")
    assert figcache.cache_folder(pack.root) != path.parent and path.is_file()


def test_figcache_shipped_entry_is_read_first(pack, tmp_path, monkeypatch):
    from core.results import figcache

    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("IMPLOSION_ASSETS", str(tmp_path / "assets"))
    shipped = figcache.ship(pack.root)
    assert shipped.parent.parent == tmp_path / "assets" / "figcache"
    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path / "other-runs"))  # a cold server
    assert figcache.is_cached(pack)

    def fail(p, method):
        raise AssertionError("recomputed although shipped")

    figcache.cached_positions(pack, "pca", compute=fail)
    assert not (tmp_path / "other-runs").exists()  # nothing written: read from the shipped entry


def test_place_labels_separates_labels_that_would_overlap():
    from core.figures.nodes import LABEL_POSITIONS, place_labels

    frame = np.array([[0.0, 0.0], [10.0, 10.0]])
    # two long names on nodes a few pixels apart: the default (both above) would overlap
    xy = np.array([[5.0, 5.0], [5.3, 5.1]])
    text = ["× small red square", "× small yellow circle"]
    where = place_labels(xy, text, frame)
    assert set(where) <= set(LABEL_POSITIONS) and where[0] != where[1]
    # far-apart nodes keep the default place above the node
    far = place_labels(np.array([[4.0, 2.0], [5.0, 8.0]]), text, frame)
    assert far == ["top center", "top center"]
    # a label that would run into the image panel on the right moves to the node's left
    edge = place_labels(np.array([[9.5, 5.0]]), text[:1], frame)
    assert edge == ["middle left"]
