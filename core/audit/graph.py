"""The concept alignment graph of an audit as a networkx graph, written as GraphML.

Nodes: one per concept (``kind="concept"``: name, pairs, AD share) and one per image
(``kind="image"``: caption concept, caption, path, ``poisoned`` flag, misalignment score).
Edges, told apart by ``kind``:

* ``text``: concept–concept, every pair of concepts, weighted by the mean caption similarity
  cos(y_i, y_j) over their pairs (the text graph); also ``image_sim`` and ``disagreement``, the
  per-edge structure term mean |cos(x_i,x_j) − cos(y_i,y_j)| (core.audit.audit.ConceptPairs);
* ``image``: image–image, each image to its ``knn`` most similar images, weighted by
  cos(x_i, x_j) (the image graph), with the edge's own disagreement |cos(x_i,x_j) − cos(y_i,y_j)|;
* ``pair``: image → the concept its caption names (the training pairs), with ``poisoned`` and
  weight cos(x_i, y_i).

GraphML attributes are plain str / float / bool / int so Gephi and Cytoscape open the file.
Above ``max_images`` images a seeded random subset becomes image nodes (graph attribute
``images_shown``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.audit.audit import Audit

MAX_IMAGES = 5000
KNN = 5


def alignment_graph(audit: Audit, max_images: int = MAX_IMAGES, knn: int = KNN) -> Any:
    """networkx.Graph of the audit (runs :meth:`Audit.find_issues` if needed)."""
    import networkx as nx

    rep = audit.find_issues()
    p, cp = audit.pairs, audit.concept_pairs
    n = len(p)
    g = nx.Graph(source=p.source, ad=float(rep.health.ad), n=int(n))
    share = {c.concept: c.share for c in rep.concepts}
    counts = np.bincount(p.concept + 1, minlength=len(p.names) + 1)
    for c in sorted(set(int(v) for v in np.unique(p.concept))):
        g.add_node(
            f"c{c}",
            kind="concept",
            label=p.name(c),
            pairs=int(counts[c + 1]),
            ad_share=float(share.get(c, 0.0)),
        )
    if cp is not None:
        for a in range(len(cp.ids)):
            for b in range(a + 1, len(cp.ids)):
                if cp.count[a, b] + cp.count[b, a] <= 0:
                    continue
                g.add_edge(
                    f"c{cp.ids[a]}",
                    f"c{cp.ids[b]}",
                    kind="text",
                    weight=cp.mean("text", a, b),
                    image_sim=cp.mean("image", a, b),
                    disagreement=cp.mean("disagreement", a, b),
                )
    rows = np.arange(n)
    if n > max_images:
        rows = np.sort(np.random.default_rng(0).choice(n, max_images, replace=False))
    g.graph["images_shown"] = int(rows.size)
    x = np.asarray(p.image[rows], dtype=np.float32)
    y = np.asarray(p.text[rows], dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    mis = audit.scores.get("misalignment")
    for r in rows:
        c = int(p.concept[r])
        g.add_node(
            f"i{r}",
            kind="image",
            label=f"pair {r}",
            concept=p.name(c),
            caption=p.captions[r] if p.captions else "",
            path=p.paths[r] if p.paths else "",
            poisoned=bool(p.poisoned[r]) if p.poisoned is not None else False,
            misalignment=float(mis[r]) if mis is not None else float("nan"),
        )
        g.add_edge(
            f"i{r}",
            f"c{c}",
            kind="pair",
            poisoned=bool(p.poisoned[r]) if p.poisoned is not None else False,
            weight=float(1.0 - mis[r]) if mis is not None else 1.0,  # cos(x_i, y_i)
        )
    k = min(knn, rows.size - 1)
    for a in range(0, rows.size, 1024):
        sim = x[a : a + 1024] @ x.T
        tsim = y[a : a + 1024] @ y.T
        sim[np.arange(sim.shape[0]), np.arange(a, a + sim.shape[0])] = -np.inf
        nn = np.argpartition(-sim, k, axis=1)[:, :k] if k > 0 else np.zeros((sim.shape[0], 0), int)
        for li, nbrs in enumerate(nn):
            for j in nbrs:
                u, v = f"i{rows[a + li]}", f"i{rows[j]}"
                if not g.has_edge(u, v):
                    g.add_edge(
                        u,
                        v,
                        kind="image",
                        weight=float(sim[li, j]),
                        disagreement=float(abs(sim[li, j] - tsim[li, j])),
                    )
    return g


def write_graphml(audit: Audit, path: str | Path, **kw: Any) -> Path:
    """Write :func:`alignment_graph` as GraphML (refuses to overwrite an existing file)."""
    import networkx as nx

    out = Path(path)
    if out.exists():
        raise ValueError(f"--graphml: {out} exists; choose a new file (nothing was overwritten)")
    g = alignment_graph(audit, **kw)
    tmp = out.with_name(out.name + ".tmp")
    nx.write_graphml(g, tmp)
    tmp.replace(out)
    return out
