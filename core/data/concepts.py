"""Concepts of a real image/caption dataset: keyword lists found in captions.

A record *mentions* concept k when its caption matches one of k's keywords (whole word, plural
allowed: :func:`core.data.captioned.keyword_pattern`). It is *labelled* k when k is the only concept it
mentions, else -1: unlabelled pairs still train and count in AD, but belong to no concept in the
results pack. Without keywords, the most frequent caption words become the concepts.

Relation rule (``acc_related`` / ``acc_unrelated`` of the sweep): concepts j ≠ i are *related*
when their keywords share a word ("red car" / "blue car") or at least one caption mentions both
("a dog chasing a cat"); the real-data analogue of the mini world's shared attribute words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.captioned import DataReport, Record, iter_records, keyword_pattern

RELATION_RULE = (
    "related: an unpoisoned concept whose keywords share a word with a poisoned concept's, or "
    "that some caption mentions together with a poisoned concept; unrelated: the other "
    "unpoisoned concepts"
)
# Words that never make a concept on their own (auto-detection).
STOPWORDS = frozenset(
    "a an the and or but of on in at to for from by with without into onto over under near "
    "is are was were be been being this that these those there here it its his her their our "
    "my your some two three four one very photo photos image images picture pictures shot view "
    "close up background front top side left right white black red blue green yellow small "
    "large big little old new".split()
)


@dataclass
class ConceptIndex:
    """Captions of a dataset matched to concepts (no pixels read).

    keywords: K keyword tuples (name = first). records: the n pairs used. labels: (n,) int, the
    only concept mentioned or -1. counts: (K,) labelled pairs per concept. mentioned: (K,) pairs
    mentioning each concept. relation: (K, K) bool, see the module docstring.
    """

    keywords: list[tuple[str, ...]]
    records: list[Record]
    labels: np.ndarray
    counts: np.ndarray
    mentioned: np.ndarray
    relation: np.ndarray
    report: DataReport

    @property
    def names(self) -> list[str]:
        return [k[0] for k in self.keywords]

    @staticmethod
    def scan(cfg: Any) -> ConceptIndex:
        """Read the captions of ``cfg.data`` (a :class:`RealSweepConfig`), keep at most
        ``cfg.max_images`` (a seeded random subset, in stream order), match ``cfg.concepts`` or
        detect ``cfg.auto_concepts``; ValueError if a concept has no labelled pair."""
        report = DataReport()
        records = [r for d in cfg.data for r in iter_records(d, report)]
        if not records:
            raise ValueError(
                f"data {list(cfg.data)}: no image/caption pairs found (skipped: "
                f"{report.to_dict()['skipped_by_reason']}); pass folders of images with "
                "same-name .txt captions, or a .csv/.jsonl with image and caption columns"
            )
        if cfg.max_images is not None and len(records) > cfg.max_images:
            keep = np.random.default_rng(0).choice(len(records), cfg.max_images, replace=False)
            records = [records[i] for i in np.sort(keep)]
        keywords = list(cfg.concepts) or frequent_words(
            [r.caption for r in records], cfg.auto_concepts
        )
        index = ConceptIndex.build(keywords, records, report)
        index.check(cfg.data)
        return index

    @staticmethod
    def build(
        keywords: list[tuple[str, ...]], records: list[Record], report: DataReport | None = None
    ) -> ConceptIndex:
        """Match every caption against every concept's keywords."""
        patterns = [keyword_pattern(k) for k in keywords]
        hits = np.array(
            [[p.search(r.caption) is not None for p in patterns] for r in records], dtype=bool
        ).reshape(len(records), len(keywords))
        labels = np.where(hits.sum(1) == 1, hits.argmax(1), -1)
        k = len(keywords)
        counts = np.bincount(labels[labels >= 0], minlength=k)
        together = (hits.T.astype(np.int64) @ hits.astype(np.int64)) > 0
        words = [{w for kw in c for w in re.findall(r"\w+", kw.lower())} for c in keywords]
        shared = np.array([[bool(words[i] & words[j]) for j in range(k)] for i in range(k)])
        relation = (together | shared) & ~np.eye(k, dtype=bool)
        return ConceptIndex(
            list(keywords), records, labels, counts, hits.sum(0), relation, report or DataReport()
        )

    def check(self, data: Any) -> None:
        """ValueError naming every concept that has no caption mentioning it alone."""
        missing = [
            f"{self.names[i]!r} ({list(self.keywords[i])}: {int(self.mentioned[i])} captions "
            f"mention it, none alone)"
            for i in np.flatnonzero(self.counts == 0)
        ]
        if missing:
            raise ValueError(
                f"concepts: no image in {list(data)} has a caption that names only "
                f"{', '.join(missing)}; add such images, fix the keywords, or drop the concept"
            )

    def summary(self) -> dict[str, Any]:
        """JSON-ready: keywords, labelled and mentioning pairs per concept, unlabelled pairs."""
        return {
            "concepts": {
                n: {"keywords": list(k), "images": int(c), "mentioned": int(m)}
                for n, k, c, m in zip(self.names, self.keywords, self.counts, self.mentioned)
            },
            "pairs": len(self.records),
            "unlabelled_pairs": int((self.labels < 0).sum()),
        }


def frequent_words(captions: list[str], n: int) -> list[tuple[str, ...]]:
    """The ``n`` words in the most captions (stop words, colours, sizes and words under three
    letters left out; "dogs" counted as "dog" when both occur), as one-keyword concepts."""
    df: Counter[str] = Counter()
    for cap in captions:
        df.update({w for w in re.findall(r"[a-z]+", cap.lower()) if len(w) >= 3})
    for w in [w for w in df if w.endswith("s") and w[:-1] in df]:
        df[w[:-1]] += df.pop(w)
    ranked = sorted((w for w in df if w not in STOPWORDS), key=lambda w: (-df[w], w))
    chosen: list[tuple[str, ...]] = [(w,) for w in ranked[:n]]
    if len(chosen) < 2:
        raise ValueError(
            f"concepts: found only {len(chosen)} candidate caption words; pass --concepts "
            "with keywords, e.g. --concepts dog cat,kitten car"
        )
    return chosen
