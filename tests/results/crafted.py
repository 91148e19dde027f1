"""A corpus of crafted results packs: each case is a small valid synthetic pack with one thing made
hostile or corrupt, the way an attacker or a torn copy would (bad text, wrong types, deep nesting,
path traversal in level names, links to local secrets, truncated or crafted zips, object arrays,
declared huge shapes, missing arrays, ids out of range).

:func:`write_corpus` writes every case as a run folder; :data:`CASES` maps a case name to the
function that spoils a fresh valid pack. Used by tests/results/test_crafted_packs.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SECRET = "IMPLOSION-CORPUS-SECRET-7d1f"  # written outside the runs folder; must never be copied
K = 8


def write_valid_pack(root: Path) -> Path:
    """A small complete pack (K = 8, C_P 0/2/4/8, seeds 0/1) with PNG grids of seed 0: what a
    finished sweep folder holds, so ``sweep-pack`` accepts it."""
    from PIL import Image

    from core.results.synthetic import write_synthetic_demo_pack

    write_synthetic_demo_pack(
        root, n_concepts=K, levels=(0, 2, 4, 8), seeds=(0, 1), n_per_concept=2, dim=8, samples=1
    )
    (root / "grids").mkdir(exist_ok=True)
    for c in (0, 2, 4, 8):
        Image.new("RGB", (8, 8), (c * 20, 40, 90)).save(root / "grids" / f"cp{c}_seed0.png")
    return root


# ---------------------------------------------------------------- helpers
def _results(root: Path) -> dict[str, Any]:
    return json.loads((root / "results.json").read_text())


def _edit_results(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    r = _results(root)
    edit(r)
    (root / "results.json").write_text(json.dumps(r))


def _rewrite_npz(root: Path, name: str, members: dict[str, bytes | None]) -> None:
    """Replace (bytes) or drop (None) members ``<key>.npy`` of ``root/name``; others kept."""
    path = root / name
    with zipfile.ZipFile(path) as z:
        old = {i.filename: z.read(i) for i in z.infolist()}
    for key, data in members.items():
        old.pop(f"{key}.npy", None)
        if data is not None:
            old[f"{key}.npy"] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in old.items():
            z.writestr(member, data)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def _npy_declaring(shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"\0" * 64) -> bytes:
    """An .npy whose header declares ``shape`` but holds only ``data``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + data


def _link(path: Path, target: Path | str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    os.symlink(target, path)


# ---------------------------------------------------------------- the cases
def _set(path: str, value: Any) -> Callable[[Path, Path], None]:
    """Set ``results.json`` field ``a.b.0.c`` to ``value``."""

    def spoil(root: Path, outside: Path) -> None:
        def edit(r: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            node: Any = r
            for p in parents:
                node = node[int(p)] if isinstance(node, list) else node[p]
            if isinstance(node, list):
                node[int(last)] = value
            else:
                node[last] = value

        _edit_results(root, edit)

    return spoil


def _del(path: str) -> Callable[[Path, Path], None]:
    def spoil(root: Path, outside: Path) -> None:
        def edit(r: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            node: Any = r
            for p in parents:
                node = node[int(p)] if isinstance(node, list) else node[p]
            del node[last]

        _edit_results(root, edit)

    return spoil


def _bytes(name: str, data: bytes) -> Callable[[Path, Path], None]:
    def spoil(root: Path, outside: Path) -> None:
        (root / name).write_bytes(data)

    return spoil


def _truncate(name: str) -> Callable[[Path, Path], None]:
    def spoil(root: Path, outside: Path) -> None:
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])

    return spoil


def _link_to_secret(name: str) -> Callable[[Path, Path], None]:
    def spoil(root: Path, outside: Path) -> None:
        _link(root / name, outside / "secret.txt")

    return spoil


def _link_to_copy(name: str) -> Callable[[Path, Path], None]:
    """``name`` linked to a valid copy of itself outside the pack (a link is refused anyway)."""

    def spoil(root: Path, outside: Path) -> None:
        copy = outside / f"copy-{root.name}-{Path(name).name}"
        copy.write_bytes((root / name).read_bytes())
        _link(root / name, copy)

    return spoil


def _members(name: str, members: dict[str, bytes | None]) -> Callable[[Path, Path], None]:
    def spoil(root: Path, outside: Path) -> None:
        _rewrite_npz(root, name, members)

    return spoil


def _ids_out_of_range(root: Path, outside: Path) -> None:
    with np.load(root / "embeddings.npz") as z:
        cap = z["caption_concept_2"].copy()
    cap[0] = 99
    _rewrite_npz(root, "embeddings.npz", {"caption_concept_2": _npy(cap)})


def _negative_ids(root: Path, outside: Path) -> None:
    with np.load(root / "embeddings.npz") as z:
        img = z["image_concept_4"].copy()
    img[-1] = -3
    _rewrite_npz(root, "embeddings.npz", {"image_concept_4": _npy(img)})


def _generations_level_without_images(root: Path, outside: Path) -> None:
    _rewrite_npz(
        root, "generations.npz", {"levels": _npy(np.array([0, 2, 4, 8, 6])), "images_6": None}
    )


def _fifo(root: Path, outside: Path) -> None:
    (root / "results.json").unlink()
    os.mkfifo(root / "results.json")


def _sparse_huge_results(root: Path, outside: Path) -> None:
    with open(root / "results.json", "r+b") as f:
        f.truncate(65 * 2**20)  # sparse: 65 MiB on paper, nothing on disk


def _grids_folder_link(root: Path, outside: Path) -> None:
    elsewhere = outside / f"grids-{root.name}"
    elsewhere.mkdir(exist_ok=True)
    for p in (root / "grids").iterdir():
        (elsewhere / p.name).write_bytes(SECRET.encode())
    _link(root / "grids", elsewhere)


def _pack_folder_link(root: Path, outside: Path) -> None:
    """The run folder itself is a link to a valid pack elsewhere."""
    target = outside / f"pack-{root.name}"
    shutil.copytree(root, target)
    _link(root, target)


CASES: dict[str, Callable[[Path, Path], None]] = {
    # results.json: text, structure, types, ranges
    "results-not-utf8": _bytes("results.json", b'{"config": {"concepts": ["\xff\xfe"]}}'),
    "results-not-json": _bytes("results.json", b'{"config": {"concepts": '),
    "results-deep-nesting": _bytes("results.json", b"[" * 200_000),
    "results-top-level-list": _bytes("results.json", b"[]"),
    "results-oversized": _sparse_huge_results,
    "results-fifo": _fifo,
    "results-no-config": _del("config"),
    "results-no-concepts": _del("config.concepts"),
    "records-a-dict": _set("records", {"c_p": 0}),
    "record-not-an-object": _set("records.0", "cp0"),
    "record-cp-string": _set("records.0.c_p", "abc"),
    "record-cp-out-of-range": _set("records.0.c_p", 99),
    "record-seed-missing": _del("records.1.seed"),
    "record-metric-string": _set("records.0.ad", "high"),
    "record-metric-nan": _set("records.2.acc_unpoisoned", float("nan")),
    "level-path-traversal": _set("config.levels.1", "X/../../../../victim/evil"),
    "level-float": _set("config.levels.1", 2.0),
    "level-bool": _set("config.levels.0", True),
    "level-out-of-range": _set("config.levels.3", 4096),
    "seed-path-traversal": _set("config.seeds.0", "../../victim"),
    "seed-negative": _set("config.seeds.0", -1),
    "concept-not-a-string": _set("config.concepts.0", {"name": 1}),
    "poison-order-out-of-range": _set("config.poison_order.0", 99),
    "target-out-of-range": _set("config.targets", {"0": 99}),
    "target-key-traversal": _set("config.targets", {"../0": 1}),
    "summary-lengths-differ": _set("summary.ad.mean", [0.1]),
    "training-not-json": _bytes("training.json", b"{nope"),
    "training-curve-a-string": _bytes("training.json", b'{"2": {"loss": "low"}}'),
    # links: never followed, never copied
    "results-link-outside": _link_to_copy("results.json"),
    "embeddings-link-secret": _link_to_secret("embeddings.npz"),
    "embeddings-link-proc-environ": lambda root, outside: _link(
        root / "embeddings.npz", "/proc/self/environ"
    ),
    "generations-link-outside": _link_to_copy("generations.npz"),
    "grid-link-secret": _link_to_secret("grids/cp2_seed0.png"),
    "grids-folder-link": _grids_folder_link,
    "pack-folder-link": _pack_folder_link,
    # arrays: zip structure, dtypes, declared shapes, schema, values
    "embeddings-truncated": _truncate("embeddings.npz"),
    "generations-truncated": _truncate("generations.npz"),
    "embeddings-not-a-zip": _bytes("embeddings.npz", b"PK\x03\x04 definitely not a zip"),
    "embeddings-object-array": _members(
        "embeddings.npz", {"concepts": _npy(np.array([{"x": 1}] * K, dtype=object))}
    ),
    "embeddings-declared-64tib": _members(
        "embeddings.npz", {"text_concept": _npy_declaring((2**22, 2**22))}
    ),
    "generations-declared-huge": _members(
        "generations.npz", {"images_4": _npy_declaring((K, 2**16, 2**16, 2**8, 3), "|u1")}
    ),
    "embeddings-missing-key": _members("embeddings.npz", {"caption_concept_2": None}),
    "embeddings-wrong-shape": _members(
        "embeddings.npz", {"text_concept": _npy(np.zeros((K + 3, 8), np.float16))}
    ),
    "embeddings-ids-out-of-range": _ids_out_of_range,
    "embeddings-negative-ids": _negative_ids,
    "generations-wrong-dtype": _members(
        "generations.npz", {"images_2": _npy(np.zeros((K, 1, 32, 32, 3), np.float64))}
    ),
    "generations-level-without-images": _generations_level_without_images,
    "grid-not-a-png": _bytes("grids/cp4_seed0.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
    # science.json and defense.json: what the claims panel and the Defend page read
    "science-deep-nesting": _bytes("science.json", b"{" + b'"a":[' * 50_000),
    "science-fields-wrong-type": _bytes(
        "science.json", b'{"longer_training": "x", "notes": 5, "nightshade": {"n_poison": []}}'
    ),
    "defense-report-rows-a-dict": _bytes("defense.json", b'{"settings": {}, "rows": {"a": 1}}'),
    "defense-report-link-secret": _link_to_secret("defense.json"),
}

# Cases whose damage only a decoder of the PNG grids sees (sweep-pack); the app never shows them.
GRID_ONLY = frozenset({"grid-not-a-png"})
# Cases in a file a sweep folder's pack does not include (science.json is added to a pack later):
# broken as packs, but sweep-pack leaves the file behind and packs the rest.
NOT_COPIED = frozenset(
    {
        "science-deep-nesting",
        "science-fields-wrong-type",
        "defense-report-rows-a-dict",
        "defense-report-link-secret",
    }
)


def write_corpus(runs: Path, outside: Path, cases: dict[str, Any] | None = None) -> list[str]:
    """One run folder per case under ``runs`` (plus a valid ``control`` run); the secret and
    the link targets under ``outside``. Returns the case names written."""
    runs.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text(SECRET)
    template = write_valid_pack(outside / "template")
    shutil.copytree(template, runs / "control")
    names = []
    for name, spoil in (CASES if cases is None else cases).items():
        root = Path(shutil.copytree(template, runs / name))
        spoil(root, outside)
        names.append(name)
    return names
