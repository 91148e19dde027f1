"""The GraphML export loads in networkx with a node per concept and per image."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from core.audit import Audit, AuditPairs, write_graphml


def _audit(n=24, k=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = rng.normal(size=(n, 8)).astype(np.float32)
    lab = np.arange(n) % k
    pois = np.zeros(n, bool)
    pois[:3] = True
    pairs = AuditPairs(
        x,
        y,
        lab,
        ("red", "green", "blue"),
        "test",
        poisoned=pois,
        captions=tuple(f"a {['red', 'green', 'blue'][c]} thing" for c in lab),
    )
    return Audit(pairs, scale=None)


def test_graphml_has_a_node_per_concept_and_image(tmp_path):
    audit = _audit()
    path = write_graphml(audit, tmp_path / "g.graphml")
    g = nx.read_graphml(path)
    kinds = nx.get_node_attributes(g, "kind")
    assert sum(v == "concept" for v in kinds.values()) == 3
    assert sum(v == "image" for v in kinds.values()) == 24
    edge_kinds = {d["kind"] for _, _, d in g.edges(data=True)}
    assert edge_kinds == {"text", "image", "pair"}
    pair_edges = [(u, v, d) for u, v, d in g.edges(data=True) if d["kind"] == "pair"]
    assert len(pair_edges) == 24
    assert sum(bool(d["poisoned"]) for *_, d in pair_edges) == 3
    text = [d for *_, d in g.edges(data=True) if d["kind"] == "text"]
    assert len(text) == 3 and all(d["disagreement"] >= 0 for d in text)
    assert g.nodes["i0"]["poisoned"] is True and g.nodes["i5"]["poisoned"] is False


def test_graphml_never_overwrites(tmp_path):
    (tmp_path / "g.graphml").write_text("keep")
    with pytest.raises(ValueError, match="exists"):
        write_graphml(_audit(), tmp_path / "g.graphml")
    assert (tmp_path / "g.graphml").read_text() == "keep"
