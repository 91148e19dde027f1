"""The one reader of untrusted pack files: results packs and sweep folders are parsed here, once.

A pack folder may come from anywhere (a colleague's zip, a download), so nothing in it is trusted:

- **regular files only**: every file is opened with ``O_NOFOLLOW`` and checked with ``fstat``; a
  symbolic link (the pack folder itself, a sub-folder such as ``grids/``, or a file) is refused,
  never followed, so a pack cannot make the app read ``/proc/self/environ`` or a local secret;
- **JSON** (``results.json``, ``training.json``, ``science.json``, ``defense.json``): at most
  :data:`MAX_JSON_BYTES`, UTF-8, nested at most :data:`MAX_JSON_DEPTH` deep (checked on the bytes
  before parsing), then checked against the results schema (:func:`check_results`: types, ranges,
  integer levels and seeds, concept ids within K, equal lengths);
- **arrays** (``embeddings.npz``, ``generations.npz``): the zip directory and every member's
  ``.npy`` header are read first; object dtypes, declared sizes that disagree with the zip entry
  or exceed :data:`MAX_ARRAY_BYTES`, and shapes that disagree with the schema are refused before
  any array is allocated; arrays are then read without pickle;
- **PNG grids**: decoded (at most :data:`MAX_PNG_PIXELS`) before they are copied anywhere.

Anything that fails raises :class:`BrokenPack`, a ``ValueError`` whose ``reason`` names the file
and what is wrong in one line, so a command prints it as one line and a page shows it.

File and JSON primitives live in :mod:`core.results.safe_files`, arrays in
:mod:`core.results.arrays`; this module adds the schema checks and is the one import for readers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from core.results.arrays import (
    MAX_ARRAY_BYTES,
    MAX_NPZ_BYTES,
    ArrayHeader,
    check_embedding_headers,
    check_embeddings,
    check_generation_headers,
    check_generation_levels,
    check_generations,
    is_index_array,
    npz_headers,
    read_npz,
)
from core.results.safe_files import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_PNG_BYTES,
    BrokenPack,
    check_folder,
    check_png,
    exists,
    json_depth,
    open_file,
    parse_json,
    read_file,
    read_json,
)
from core.results.schema import METRICS, RESULTS, TRAINING

MAX_CONCEPTS = 100_000


# ---------------------------------------------------------------- schema
class _Check:
    """Type and range checks that raise BrokenPack naming the JSON path (``records[3].c_p``)."""

    def __init__(self, rel: str, root: Path | None) -> None:
        self.rel, self.root = rel, root

    def fail(self, where: str, what: str) -> BrokenPack:
        return BrokenPack(f"{self.rel}: {where} {what}", self.root)

    def obj(self, v: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(where, f"is {_kind(v)}, expected an object")
        return v

    def lst(self, v: Any, where: str, max_len: int | None = None) -> list[Any]:
        if not isinstance(v, list):
            raise self.fail(where, f"is {_kind(v)}, expected a list")
        if max_len is not None and len(v) > max_len:
            raise self.fail(where, f"has {len(v)} entries, at most {max_len}")
        return v

    def int_(self, v: Any, where: str, lo: int = 0, hi: int | None = None) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.fail(where, f"is {_kind(v)}, expected an integer")
        if v < lo or (hi is not None and v > hi):
            want = f"≥ {lo}" if hi is None or hi >= 2**31 else f"in [{lo}, {hi}]"
            raise self.fail(where, f"= {v}, expected an integer {want}")
        return v

    def num(self, v: Any, where: str, none: bool = True) -> float | None:
        if v is None and none:
            return None
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise self.fail(where, f"is {_kind(v)}, expected a finite number")
        return float(v)

    def str_(self, v: Any, where: str, none: bool = False) -> str | None:
        if v is None and none:
            return None
        if not isinstance(v, str):
            raise self.fail(where, f"is {_kind(v)}, expected a string")
        return v


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    names: dict[type, str] = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
    }
    if type(v) in names:
        return f"{names[type(v)]} ({json.dumps(v)[:40]})"
    containers: dict[type, str] = {dict: "an object", list: "a list"}
    return containers.get(type(v), type(v).__name__)


# Record fields that are counts (ints) and that are numbers; metrics may be null (empty group).
_RECORD_INTS = ("n_pairs", "n_poison")
_RECORD_NUMBERS = (
    *METRICS,
    "ad_generated",
    "incoherence_unpoisoned",
    "undefined_rate",
    "finetune_seconds",
    "wall_seconds",
    "final_loss",
)


def check_results(results: Any, root: Path | None = None) -> dict[str, Any]:
    """``results.json`` against the results schema (:class:`core.results.schema.ResultsFile`).

    Checks what readers rely on: config.concepts (K names), levels (distinct integers in [0, K]),
    seeds (integers ≥ 0), poison_order and targets (concept ids in [0, K)), relation (K × K),
    plans, ad_scale; records a list of objects with integer c_p in [0, K] and seed ≥ 0 and finite
    (or null) metrics; summary rows of equal-length lists. Unknown keys are kept unchecked.
    Returns ``results``; BrokenPack names the first field that is wrong.
    """
    c = _Check(RESULTS, root)
    res = c.obj(results, "the file")
    cfg = c.obj(res.get("config"), "config") if "config" in res else None
    if cfg is None:
        raise c.fail("config", "is missing; is this a sweep result?")
    if "concepts" not in cfg:
        raise c.fail("config.concepts", "is missing; is this a sweep result?")
    concepts = c.lst(cfg["concepts"], "config.concepts", MAX_CONCEPTS)
    for i, name in enumerate(concepts):
        c.str_(name, f"config.concepts[{i}]")
    k = len(concepts)
    if k == 0:
        raise c.fail("config.concepts", "is empty")
    levels = [
        c.int_(v, f"config.levels[{i}]", 0, k)
        for i, v in enumerate(c.lst(cfg.get("levels", []), "config.levels", k + 1))
    ]
    if len(set(levels)) != len(levels):
        raise c.fail("config.levels", "repeats a level")
    for i, v in enumerate(c.lst(cfg.get("seeds", []), "config.seeds", 100_000)):
        c.int_(v, f"config.seeds[{i}]", 0, 2**63 - 1)
    _check_order(c, cfg.get("poison_order", []), "config.poison_order", k)
    _check_targets(c, cfg.get("targets", {}), "config.targets", k)
    if "plans" in cfg and cfg["plans"] is not None:
        for s, plan in c.obj(cfg["plans"], "config.plans").items():
            plan = c.obj(plan, f"config.plans.{s}")
            _check_order(c, plan.get("order", []), f"config.plans.{s}.order", k)
            _check_targets(c, plan.get("targets", {}), f"config.plans.{s}.targets", k)
    if cfg.get("relation") is not None:
        rows = c.lst(cfg["relation"], "config.relation", k)
        if len(rows) != k:
            raise c.fail("config.relation", f"has {len(rows)} rows, expected K = {k}")
        for i, row in enumerate(rows):
            if len(c.lst(row, f"config.relation[{i}]")) != k:
                raise c.fail(f"config.relation[{i}]", f"has {len(row)} entries, expected {k}")
            for j, v in enumerate(row):
                if not isinstance(v, bool | int) or v not in (0, 1):
                    raise c.fail(f"config.relation[{i}][{j}]", f"is {_kind(v)}, expected 0/1")
    if cfg.get("ad_scale") is not None:
        for i, v in enumerate(c.lst(cfg["ad_scale"], "config.ad_scale", 2)):
            c.num(v, f"config.ad_scale[{i}]", none=False)
    for key in ("preset", "model"):
        c.str_(cfg.get(key), f"config.{key}", none=True)
    for i, r in enumerate(c.lst(res.get("records", []), "records")):
        r = c.obj(r, f"records[{i}]")
        for key in ("c_p", "seed"):
            if key not in r:
                raise c.fail(f"records[{i}].{key}", "is missing")
        c.int_(r["c_p"], f"records[{i}].c_p", 0, k)
        c.int_(r["seed"], f"records[{i}].seed", 0, 2**63 - 1)
        for key in _RECORD_NUMBERS:
            if key in r:
                c.num(r[key], f"records[{i}].{key}")
        for key in _RECORD_INTS:
            if key in r and r[key] is not None:
                c.int_(r[key], f"records[{i}].{key}")
        if r.get("per_concept_acc") is not None:
            for j, v in enumerate(c.lst(r["per_concept_acc"], f"records[{i}].per_concept_acc")):
                c.num(v, f"records[{i}].per_concept_acc[{j}]")
    for metric, row in c.obj(res.get("summary", {}), "summary").items():
        row = c.obj(row, f"summary.{metric}")
        n = len(c.lst(row.get("c_p", []), f"summary.{metric}.c_p"))
        for i, v in enumerate(row.get("c_p", [])):
            c.int_(v, f"summary.{metric}.c_p[{i}]", 0, k)
        for key in ("mean", "ci_low", "ci_high", "n"):
            if key in row:
                vals = c.lst(row[key], f"summary.{metric}.{key}")
                if len(vals) != n:
                    raise c.fail(f"summary.{metric}.{key}", f"has {len(vals)} entries, not {n}")
                for i, v in enumerate(vals):
                    c.num(v, f"summary.{metric}.{key}[{i}]")
    if "complete" in res and not isinstance(res["complete"], bool):
        raise c.fail("complete", f"is {_kind(res['complete'])}, expected true or false")
    return res


def _check_order(c: _Check, v: Any, where: str, k: int) -> None:
    ids = [c.int_(x, f"{where}[{i}]", 0, k - 1) for i, x in enumerate(c.lst(v, where, k))]
    if len(set(ids)) != len(ids):
        raise c.fail(where, "repeats a concept id")


def _check_targets(c: _Check, v: Any, where: str, k: int) -> None:
    for src, tgt in c.obj(v, where).items():
        if not re.fullmatch(r"\d{1,9}", src) or int(src) >= k:
            raise c.fail(f"{where} key {src[:20]!r}", f"is not a concept id in [0, {k - 1}]")
        c.int_(tgt, f"{where}.{src}", 0, k - 1)


def check_training(training: Any, root: Path | None = None) -> dict[str, Any]:
    """``training.json``: {"<c_p>": {"step": [int], "loss": [number], "probe": {...}}}."""
    c = _Check(TRAINING, root)
    for level, curve in c.obj(training, "the file").items():
        if not re.fullmatch(r"\d{1,9}", level):
            raise c.fail(f"key {level[:20]!r}", "is not a C_P level")
        curve = c.obj(curve, level)
        for key in ("step", "loss"):
            for i, v in enumerate(c.lst(curve.get(key, []), f"{level}.{key}")):
                c.num(v, f"{level}.{key}[{i}]")
        if curve.get("probe") is not None:
            for key, vals in c.obj(curve["probe"], f"{level}.probe").items():
                for i, v in enumerate(c.lst(vals, f"{level}.probe.{key}")):
                    c.num(v, f"{level}.probe.{key}[{i}]")
    return training


def check_science(science: Any, root: Path | None = None, rel: str = "science.json") -> dict:
    """``science.json`` (the pack's extra measurements, core/analysis/claims.py): ``notes`` a
    list of strings; ``longer_training`` {ratio, ci_low, ci_high, n_seeds, c_p, steps,
    preset_steps} and ``nightshade`` {attack_success, n_poison, epsilon255, ssim,
    dirty_label_n80} objects of numbers (null where not measured)."""
    c = _Check(rel, root)
    d = c.obj(science, "the file")
    for i, note in enumerate(c.lst(d.get("notes", []), "notes")):
        c.str_(note, f"notes[{i}]")
    fields = {
        "longer_training": (("ratio", "steps", "c_p"), ("ci_low", "ci_high"), "n_seeds"),
        "nightshade": (("attack_success", "n_poison", "epsilon255"), ("ssim",), "dirty_label_n80"),
    }
    for name, (required, optional, count) in fields.items():
        if not d.get(name):
            continue
        part = c.obj(d[name], name)
        for key in required:
            if key not in part:
                raise c.fail(f"{name}.{key}", "is missing")
            c.num(part[key], f"{name}.{key}", none=False)
        for key in optional:
            c.num(part.get(key), f"{name}.{key}")
        if part.get(count) is not None:
            c.int_(part[count], f"{name}.{count}")
        if name == "longer_training" and part.get("preset_steps") is not None:
            c.int_(part["preset_steps"], f"{name}.preset_steps")
    return d


def check_defense(report: Any, root: Path | None = None, rel: str = "defense.json") -> dict:
    """``defense.json`` (core/defend/report.py): an object with ``settings`` (object), ``rows``
    (a list of objects) and ``metadata`` (object, optional)."""
    c = _Check(rel, root)
    d = c.obj(report, "the file")
    c.obj(d.get("settings"), "settings")
    for i, row in enumerate(c.lst(d.get("rows", []), "rows")):
        c.obj(row, f"rows[{i}]")
    c.obj(d.get("metadata", {}), "metadata")
    return d


__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_NPZ_BYTES",
    "MAX_PNG_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "ArrayHeader",
    "BrokenPack",
    "check_embedding_headers",
    "check_embeddings",
    "check_folder",
    "check_generation_headers",
    "check_generation_levels",
    "check_generations",
    "check_png",
    "check_results",
    "check_science",
    "check_defense",
    "check_training",
    "exists",
    "is_index_array",
    "json_depth",
    "npz_headers",
    "open_file",
    "parse_json",
    "read_file",
    "read_json",
    "read_npz",
]
