"""The AD audit of a dataset or a planned attack: ``Audit(pairs, embedder).report()``.

For n pairs (x_i image, y_i text embedding, L2-normalised) with caption concepts κ(i):

* **health**: AD, D_fea, D_stru, n (core.metrics): exact for n ≤ ``exact_max``; above, D_stru is
  the unbiased sampled estimate with its 95 % CI (core.metrics.sampled), D_fea still exact;
* **concepts**: each concept's share of AD (core.metrics.per_concept; shares sum to AD);
* **overlapping concept pairs**: for concepts a ≠ b the structure term restricted to them,
  ``S_ab = mean_{κ(i)=a, κ(j)=b} |cos(x_i,x_j) − cos(y_i,y_j)|``, beside the mean image and
  caption similarities; ranked by S_ab (where text and image similarity disagree most). Their
  shares ``Σ_{a,b} n_a n_b S_ab / n²`` sum to D_stru (exact path; sampled: from the same pairs
  as D̂_stru);
* **flagged pairs**: the Defend detectors' scores (core.defend.detectors) and three rules:
  ``misaligned`` (cos(x_i, y_i) below the AD scale's lower end, i.e. ŝ_i = 0: worse than ~95 %
  of clean calibration pairs; with no scale, a modified z-score ≥ 3.5 of 1 − cos) and
  ``structural outlier`` (structure contribution ≥ 3× its concept's median). The image-kNN score
  is listed but flags nothing (on the demo pack's clean level a ≥ 0.5 cut flagged 31 % of the
  pairs: neighbouring concepts share words). Above ``exact_max`` pairs only the O(n·d)
  misalignment detector runs;
* **prediction**: the calibration (core.audit.calibration) at the audit's AD, or None with the
  reason in ``notes``.

``embedder`` embeds raw pairs (paths + captions, :class:`core.metrics.folder.FolderPairs`);
pairs that are already :class:`~core.audit.pairs.AuditPairs` need none.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.audit.calibration import OutcomeCalibration
from core.audit.pairs import AuditPairs
from core.audit.result import AuditReport, ConceptHealth, FlaggedPair, Overlap, Prediction
from core.metrics.result import CLIP_SCALE, ADResult, Calibration

EXACT_MAX = 20_000  # exact AD and every detector up to this many pairs
SAMPLES = 30_000  # sampled pairs for D_stru above it (≈ ±1 %; their rows fit the one-pass cache)
OVERLAP_SAMPLES = 100_000  # sampled pairs for the K×K concept-pair means
BLOCK = 2048
MISALIGNED_Z = 3.5  # modified z-score cut-off (Iglewicz & Hoaglin) when there is no scale
OUTLIER_RATIO = 3.0
Z_CHUNK = 65_536


class _Progress:
    """A tqdm bar on stderr over the audit's stages (silent when ``enabled`` is False)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="audit", unit="step", file=sys.stderr)

    def step(self, what: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(what)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _normalised_chunk(a: Any, lo: int, hi: int) -> np.ndarray:
    c = np.asarray(a[lo:hi], dtype=np.float32)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def concept_pair_structure(
    image: Any, text: Any, concept: np.ndarray, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact K×K sums over i in a, j in b (i ≠ j) of |cos(x_i,x_j) − cos(y_i,y_j)|, cos(x_i,x_j)
    and cos(y_i,y_j), and the (K,) pair counts; concept ids 0..K-1 (map -1 first). Blocked:
    O(block·n) memory, O(n²(d + K)) work."""
    n = len(image)
    k = int(concept.max()) + 1
    onehot = np.zeros((n, k), np.float32)
    onehot[np.arange(n), concept] = 1.0
    xs = _normalised_chunk(image, 0, n)
    ys = _normalised_chunk(text, 0, n)
    dis = np.zeros((k, k), np.float64)
    for a in range(0, n, block):
        b = min(n, a + block)
        d = np.abs(xs[a:b] @ xs.T - ys[a:b] @ ys.T)
        d[np.arange(b - a), np.arange(a, b)] = 0.0
        dis += (onehot[a:b].T @ (d @ onehot)).astype(np.float64)
    counts = onehot.sum(0).astype(np.float64)
    # Σ_{i∈a, j∈b} cos = (Σ_a x)·(Σ_b x); the i = j terms (cos = 1) come off the diagonal
    cx, cy = onehot.T @ xs, onehot.T @ ys
    img = (cx @ cx.T).astype(np.float64) - np.diag(counts)
    txt = (cy @ cy.T).astype(np.float64) - np.diag(counts)
    return dis, img, txt, counts


@dataclass(frozen=True)
class ConceptPairs:
    """K×K matrices over the concept ids ``ids`` (ordered pairs i ≠ j): ``count`` pairs (sampled
    path: sampled pairs), sums of |Δcos| (``disagreement``), image and text cosines, and ``share``
    of D_stru (all cells sum to D_stru, the diagonal holding within-concept structure)."""

    ids: tuple[int, ...]
    count: np.ndarray
    disagreement: np.ndarray
    image: np.ndarray
    text: np.ndarray
    share: np.ndarray

    def mean(self, what: str, a: int, b: int) -> float:
        """Mean of ``what`` over the ordered pairs of cells (a, b) and (b, a) (indices into ids)."""
        m = getattr(self, what)
        cnt = self.count[a, b] + (self.count[b, a] if a != b else 0)
        tot = m[a, b] + (m[b, a] if a != b else 0)
        return float(tot / cnt) if cnt > 0 else float("nan")


def _robust_z(v: np.ndarray) -> np.ndarray:
    med = np.median(v)
    mad = np.median(np.abs(v - med))
    return 0.6745 * (v - med) / max(mad, 1e-12)


class Audit:
    """``Audit(pairs, embedder).find_issues()`` → :class:`AuditReport` (see module doc).

    Args:
        pairs: :class:`AuditPairs`, or raw pairs (FolderPairs) to embed with ``embedder``.
        embedder: dual encoder with encode_images / encode_texts (core.models.dual).
        calibration: AD → outcome fit (core.audit.calibration); its AD scale is used so the
            prediction reads AD on the scale it was fitted on. None: no prediction.
        scale: AD rescaling (lo, hi) when there is no calibration (default CLIP ViT-B/32's).
        no_calibration: the reason given when ``calibration`` is None.
        c_p, seed: the planned level, to look up a measured outcome of the same level.
        top: flagged pairs and overlapping concept pairs listed.
        progress: a progress bar on stderr.
    """

    def __init__(
        self,
        pairs: Any,
        embedder: Any = None,
        *,
        calibration: OutcomeCalibration | None = None,
        scale: tuple[float, float] | Calibration | None = CLIP_SCALE,
        alpha: float = 0.8,
        no_calibration: str = "no calibration applies to these pairs",
        c_p: int | None = None,
        seed: int | None = None,
        exact_max: int = EXACT_MAX,
        samples: int = SAMPLES,
        top: int = 50,
        progress: bool = False,
    ) -> None:
        if not isinstance(pairs, AuditPairs):
            from core.audit.pairs import embed_records

            if embedder is None:
                raise ValueError("embedder: raw pairs need an embedder to embed them")
            pairs = embed_records(pairs.images, pairs.captions, embedder, None, "pairs", progress)
        self.pairs = pairs
        self.calibration = calibration
        self.scale = calibration.scale if calibration is not None else scale
        self.alpha = alpha
        self.no_calibration = no_calibration
        self.c_p, self.seed = c_p, seed
        self.exact = len(pairs) <= exact_max
        self.samples, self.top, self.progress = samples, top, progress
        self._report: AuditReport | None = None
        self.scores: dict[str, np.ndarray] = {}  # detector → (n,) scores, after find_issues()
        self.concept_pairs: ConceptPairs | None = None  # after find_issues()

    # ------------------------------------------------------------------ public
    def find_issues(self) -> AuditReport:
        """Run every check once (cached) and return the report."""
        if self._report is None:
            self._report = self._run()
        return self._report

    def report(self) -> AuditReport:
        """The report (runs :meth:`find_issues` if it has not run)."""
        return self.find_issues()

    def amend_prediction(self, prediction: Prediction) -> AuditReport:
        """The report with ``prediction`` in place of the calibration's (what the caller learnt
        since: a measured run, a note about the attack)."""
        self._report = replace(self.find_issues(), prediction=prediction)
        return self._report

    # ------------------------------------------------------------------ mechanics
    def _run(self) -> AuditReport:
        from core.metrics.decompose import per_concept

        p = self.pairs
        n = len(p)
        bar = _Progress(4, self.progress)
        lab = p.concept
        if self.exact:
            result, shares = per_concept(p.image, p.text, lab, self.alpha, self.scale)
        else:
            result, shares = per_concept(
                p.image, p.text, lab, self.alpha, self.scale, sample=self.samples, seed=0
            )
        bar.step("AD and concept shares")
        concepts = tuple(
            ConceptHealth(
                int(s.label),
                p.name(int(s.label)),
                s.n,
                s.ad,
                s.feature,
                s.structure,
                s.ad / result.ad if result.ad else 0.0,
            )
            for s in sorted(shares, key=lambda s: -s.ad)
        )
        overlapping = self._overlaps(result)
        bar.step("overlapping concepts")
        flagged, total, detectors, truth = self._flag(result)
        bar.step("detectors")
        notes: list[str] = []
        prediction = None
        if self.calibration is not None:
            prediction = self.calibration.predict(result.ad, self.c_p, self.seed)
        else:
            notes.append(f"prediction: {self.no_calibration}")
        if not self.exact:
            notes.append(
                f"n = {n:,} > {EXACT_MAX:,}: D_stru and concept shares sampled from "
                f"{self.samples:,} random pairs (95 % CI in 'ci'), concept-pair overlaps from "
                f"{OVERLAP_SAMPLES:,}; detectors: misalignment only"
            )
        bar.step("prediction")
        bar.close()
        return AuditReport(
            result,
            concepts,
            overlapping,
            flagged,
            total,
            detectors,
            prediction,
            p.source,
            tuple(notes),
            truth,
        )

    def _labels(self) -> tuple[np.ndarray, list[int]]:
        """Concept ids mapped to 0..K'-1 (-1 included as its own group) and the original ids."""
        uniq, inv = np.unique(self.pairs.concept, return_inverse=True)
        return inv.astype(np.int64), [int(u) for u in uniq]

    def _overlaps(self, result: ADResult) -> tuple[Overlap, ...]:
        p, n = self.pairs, len(self.pairs)
        inv, ids = self._labels()
        if len(ids) < 2:
            return ()
        k = len(ids)
        if self.exact:
            dis, img, txt, counts = concept_pair_structure(p.image, p.text, inv)
            npairs = np.outer(counts, counts) - np.diag(counts)
            share = dis / (n * n)
        else:
            from core.metrics.sampled import draw_pairs

            i, j = draw_pairs(n, OVERLAP_SAMPLES, seed=1)
            rows = np.unique(np.concatenate([i, j]))  # read once, in file order (memmaps)
            xs = np.asarray(p.image[rows], dtype=np.float32)
            ys = np.asarray(p.text[rows], dtype=np.float32)
            xs /= np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-12)
            ys /= np.maximum(np.linalg.norm(ys, axis=1, keepdims=True), 1e-12)
            ri, rj = np.searchsorted(rows, i), np.searchsorted(rows, j)
            cx = np.einsum("nd,nd->n", xs[ri], xs[rj])
            cy = np.einsum("nd,nd->n", ys[ri], ys[rj])
            cell = inv[i] * k + inv[j]
            npairs = np.bincount(cell, minlength=k * k).reshape(k, k).astype(np.float64)
            dis = np.bincount(cell, np.abs(cx - cy), k * k).reshape(k, k)
            img = np.bincount(cell, cx, k * k).reshape(k, k)
            txt = np.bincount(cell, cy, k * k).reshape(k, k)
            share = dis * ((n - 1) / n) / len(i)  # cells sum to D̂_stru (core.metrics.sampled)
        out = []
        for a in range(k):
            for b in range(a + 1, k):
                cnt = npairs[a, b] + npairs[b, a]
                if cnt <= 0:
                    continue
                out.append(
                    Overlap(
                        ids[a],
                        ids[b],
                        (p.name(ids[a]), p.name(ids[b])),
                        float((dis[a, b] + dis[b, a]) / cnt),
                        float((img[a, b] + img[b, a]) / cnt),
                        float((txt[a, b] + txt[b, a]) / cnt),
                        float(share[a, b] + share[b, a]),
                    )
                )
        out.sort(key=lambda o: -o.disagreement)
        self.concept_pairs = ConceptPairs(tuple(ids), npairs, dis, img, txt, share)
        return tuple(out[: self.top])

    def _flag(
        self, result: ADResult
    ) -> tuple[tuple[FlaggedPair, ...], int, tuple[str, ...], dict[str, Any] | None]:
        from core.defend.detectors import knn_disagreement, misalignment, structural_outlier

        p, n = self.pairs, len(self.pairs)
        mis = np.empty(n, np.float64)
        for a in range(0, n, Z_CHUNK):
            b = min(n, a + Z_CHUNK)
            mis[a:b] = misalignment(p.image[a:b], p.text[a:b])
        scores = {"misalignment": mis}
        if result.scale is not None:
            rule_mis = (1.0 - mis) < result.scale[0]
        else:
            rule_mis = _robust_z(mis) >= MISALIGNED_Z
        rules = {"misaligned": rule_mis}
        if self.exact:
            inv, _ = self._labels()
            scores["structural_outlier"] = structural_outlier(p.image, p.text, inv)
            scores["knn_disagreement"] = knn_disagreement(p.image, p.text, inv)
            rules["structural outlier"] = scores["structural_outlier"] >= OUTLIER_RATIO
            # knn_disagreement is reported, not a rule: in the mini world neighbouring images
            # share attribute words, and ≥ 0.5 fired on 31 % of the demo pack's clean pairs
        self.scores = scores
        names = list(rules)
        hit = np.stack([rules[r] for r in names])
        any_hit = hit.any(0)
        total = int(any_hit.sum())
        idx = np.flatnonzero(any_hit)
        # rank: number of rules fired, then misalignment
        rank = idx[np.lexsort((-mis[idx], -hit[:, idx].sum(0)))][: self.top]
        flagged = tuple(
            FlaggedPair(
                index=int(i),
                concept=int(p.concept[i]),
                name=p.name(int(p.concept[i])),
                caption=p.captions[i] if p.captions else None,
                scores={k: float(v[i]) for k, v in scores.items()},
                reasons=tuple(r for r, row in zip(names, hit, strict=True) if row[i]),
                poisoned=bool(p.poisoned[i]) if p.poisoned is not None else None,
                path=p.paths[i] if p.paths else None,
            )
            for i in rank
        )
        truth = None
        if p.poisoned is not None:
            pois = np.asarray(p.poisoned, bool)
            both = int((any_hit & pois).sum())
            truth = {
                "poisoned": int(pois.sum()),
                "flagged": total,
                "flagged_poisoned": both,
                "precision": both / total if total else None,
                "recall": both / int(pois.sum()) if pois.any() else None,
            }
        return flagged, total, tuple(scores), truth
