"""Training pairs of the real sweep: clean manifest, poison sets, CLIP embeddings (cached on disk).

Layout under the sweep's ``out`` folder (every file written atomically; a file's presence means
it is complete, so an interrupted sweep redoes only what is missing)::

    data/clean.jsonl          readable clean pairs {"image": abs path, "caption"}
    data/clean.npz            image, text (n, d) float32 CLIP embeddings; label (n,) concept or -1;
                              text_concept (K, d) of the prompts "a photo of a {concept}"
    poison/{a}-to-{b}/        poison pairs of concept a toward target b (core.poison.real), and
                              clip.npz: image, text (m, d) of those pairs
    levels/cp{C}_seed{S}/pairs.jsonl   the level's training set: clean + poison rows, shuffled

Poison images are separate files (dirty-label: resized copies of target images), so the
fine-tune's reader, which drops an image path listed twice, keeps every poison pair.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.captioned import DataReport, Record, iter_batches, iter_records, to_uint8_image
from core.data.concepts import ConceptIndex
from core.evaluate.clip import Embedder
from core.io import atomic_save_npz, atomic_write_bytes

PROMPT = "a photo of a {}"  # generation and zero-shot class prompt of a concept
EMBED_BATCH = 32


@dataclass
class LevelPairs:
    """The training pairs of one (C_P, seed): CLIP embeddings x (images), y (captions), (n, d);
    concept ids caption_concept, image_concept (n,) (-1: none); poisoned (n,) bool; the
    manifest the fine-tune reads."""

    x: np.ndarray
    y: np.ndarray
    caption_concept: np.ndarray
    image_concept: np.ndarray
    poisoned: np.ndarray
    manifest: Path

    @property
    def n_poison(self) -> int:
        return int(self.poisoned.sum())


def embed_pairs(
    embedder: Embedder, records: Iterable[Record], resolution: int, report: DataReport
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """CLIP embeddings of readable pairs: image (n, d), text (n, d), paths, captions.
    Unreadable images are skipped (counted in ``report``)."""
    xs, ys, paths, caps = [], [], [], []
    for imgs, c, p in iter_batches(records, resolution, EMBED_BATCH, report):
        xs.append(embedder.encode_images([to_uint8_image(im) for im in imgs]))
        ys.append(embedder.encode_texts(list(c)))
        paths += [str(Path(q).resolve()) for q in p]
        caps += list(c)
    if not xs:
        raise ValueError(f"no readable images (skipped: {report.to_dict()['skipped_by_reason']})")
    return np.concatenate(xs), np.concatenate(ys), paths, caps


def write_jsonl(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    """Atomically write (image, caption) rows as JSONL (the fine-tune reads it as a dataset)."""
    text = "".join(json.dumps({"image": i, "caption": c}) + "\n" for i, c in rows)
    atomic_write_bytes(path, text.encode())


def read_jsonl(path: Path) -> list[tuple[str, str]]:
    """Rows of :func:`write_jsonl`."""
    return [(d["image"], d["caption"]) for d in map(json.loads, path.read_text().splitlines())]


class SweepData:
    """Builds and caches the pairs of every level. ``clip`` and ``sd`` are callables that load
    the models on first use (a resumed sweep with nothing left to do loads neither)."""

    def __init__(
        self,
        cfg: Any,
        out: Path,
        index: ConceptIndex,
        resolution: int,
        clip: Callable[[], Embedder],
        sd: Callable[[], Any],
    ) -> None:
        self.cfg, self.out, self.index, self.resolution = cfg, Path(out), index, resolution
        self.clip, self.sd = clip, sd
        self._clean: dict[str, Any] | None = None

    # ------------------------------------------------------------------ clean pairs
    def clean(self) -> dict[str, Any]:
        """Readable clean pairs: ``rows`` [(path, caption)], ``image``/``text`` (n, d),
        ``label`` (n,), ``counts`` (K,) labelled pairs per concept, ``text_concept`` (K, d)."""
        if self._clean is None:
            folder = self.out / "data"
            if not (folder / "clean.npz").is_file():
                self._embed_clean(folder)
            with np.load(folder / "clean.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            rows = read_jsonl(folder / "clean.jsonl")
            counts = np.bincount(arrays["label"][arrays["label"] >= 0], minlength=len(self.names))
            self._clean = {"rows": rows, "counts": counts, **arrays}
        return self._clean

    @property
    def names(self) -> list[str]:
        return self.index.names

    def _embed_clean(self, folder: Path) -> None:
        report = DataReport()
        emb = self.clip()
        x, y, paths, caps = embed_pairs(emb, self.index.records, self.resolution, report)
        by_path = {
            str(r.image.resolve()): int(lab)
            for r, lab in zip(self.index.records, self.index.labels)
        }
        label = np.array([by_path[p] for p in paths], dtype=np.int64)
        counts = np.bincount(label[label >= 0], minlength=len(self.names))
        lost = [n for n, c in zip(self.names, counts) if c == 0]
        if lost:
            raise ValueError(
                f"concepts: {lost} have no readable image (unreadable: "
                f"{report.to_dict()['skipped_examples']}); fix or replace those files"
            )
        text_concept = emb.encode_texts([PROMPT.format(n) for n in self.names])
        write_jsonl(folder / "clean.jsonl", zip(paths, caps))
        atomic_save_npz(
            folder / "clean.npz",
            {"image": x, "text": y, "label": label, "text_concept": text_concept},
        )

    # ------------------------------------------------------------------ poison sets
    def poison_budget(self, a: int) -> int:
        """Poison pairs for concept a: poison_ratio × a's clean pairs, at least one."""
        return max(1, round(self.cfg.poison_ratio * int(self.clean()["counts"][a])))

    def poison(self, a: int, b: int) -> dict[str, Any]:
        """Poison pairs of concept a toward target b: ``rows``, ``image``/``text`` (m, d)."""
        from core.poison.real import RealPoisonConfig, poison_dataset

        cfg, folder = self.cfg, self.out / "poison" / f"{a}-to-{b}"
        if not (folder / "clip.npz").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a half-written set from a killed run
            pcfg = RealPoisonConfig(
                concept=self.index.keywords[a],
                target=self.index.keywords[b],
                method=cfg.method,
                budget=self.poison_budget(a),
                epsilon=cfg.nightshade_epsilon,
                steps=cfg.nightshade_steps,
                resolution=self.resolution,
                seed=a * 1000 + b,
            )
            sd = self.sd() if cfg.method == "nightshade" else None
            manifest = str(self.out / "data" / "clean.jsonl")
            r = poison_dataset([manifest], folder, pcfg, sd)
            if r["poison_pairs"] == 0:
                raise ValueError(
                    f"poison {self.names[a]!r} → {self.names[b]!r}: no readable images to "
                    f"poison with; add images of {self.names[b]!r}"
                )
            x, y, paths, caps = embed_pairs(
                self.clip(), iter_records(folder), self.resolution, DataReport()
            )
            write_jsonl(folder / "pairs.jsonl", zip(paths, caps))
            atomic_save_npz(folder / "clip.npz", {"image": x, "text": y})
        with np.load(folder / "clip.npz", allow_pickle=False) as z:
            return {
                "rows": read_jsonl(folder / "pairs.jsonl"),
                "image": z["image"],
                "text": z["text"],
            }

    # ------------------------------------------------------------------ one level
    def level(self, c_p: int, seed: int, order: list[int], targets: dict[int, int]) -> LevelPairs:
        """Clean pairs plus the poison sets of the first ``c_p`` concepts of ``order`` (nested
        across levels); writes the level's shuffled manifest."""
        clean = self.clean()
        rows = list(clean["rows"])
        xs, ys = [clean["image"]], [clean["text"]]
        cap, img = [clean["label"]], [clean["label"]]
        for a in order[:c_p]:
            p = self.poison(a, targets[a])
            m = len(p["rows"])
            rows += p["rows"]
            xs.append(p["image"])
            ys.append(p["text"])
            cap.append(np.full(m, a))
            # Nightshade images still show a (to people and CLIP); dirty-label ones show b.
            img.append(np.full(m, a if self.cfg.method == "nightshade" else targets[a]))
        n_clean = len(clean["rows"])
        perm = np.random.default_rng([seed, c_p, 7]).permutation(len(rows))
        manifest = self.out / "levels" / f"cp{c_p}_seed{seed}" / "pairs.jsonl"
        write_jsonl(manifest, (rows[i] for i in perm))
        return LevelPairs(
            np.concatenate(xs),
            np.concatenate(ys),
            np.concatenate(cap).astype(np.int64),
            np.concatenate(img).astype(np.int64),
            np.arange(len(rows)) >= n_clean,
            manifest,
        )
