"""What a run is, in words: the one place that names every run kind for the run picker, Compare
and Jobs.

``run_label(kind, job_config, pack_config)`` reads the job's config (``config.json["config"]``,
written when the job started, never changed) and, where there is one, the pack's recorded sweep
config (``results.json["config"]``). Kinds:

- ``finetune`` (Poison setup): "Fine-tune: large red star + small blue circle";
- ``sweep``: "cpu-full sweep"; a sweep whose pack records a defense is a defended sweep;
- ``defended-sweep``: "Defended sweep of demo (misalignment, 5 % FPR)";
- ``real-sweep`` / ``real-finetune``: "Real sweep: <model folder>" / "Real fine-tune: …";
- ``budget`` (``implosion sweep-budget``): "Budget sweep: large red star → small blue circle";
- the shipped demo pack: "Demo pack".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

DEMO_LABEL = "Demo pack"


def pack_name(path: Any) -> str:
    """A readable name of a pack folder: ``demo`` for the shipped one, the run id when the pack
    sits in a job's run folder (``<run>/sweep``, ``<run>/pack``), else the folder name."""
    p = PurePath(str(path))
    if p.name == "demo" and p.parent.name == "assets":
        return "demo"
    if p.name in ("sweep", "pack", "out", "results") and p.parent.name:
        return p.parent.name
    return p.name or str(path)


def _fpr(value: Any) -> str:
    try:
        return f"{float(value) * 100:g} % FPR"
    except (TypeError, ValueError):
        return "FPR ?"


def _defended(detector: Any, fpr: Any, attacked: Any) -> str:
    of = f" of {pack_name(attacked)}" if attacked else ""
    return f"Defended sweep{of} ({detector or 'detector ?'}, {_fpr(fpr)})"


def run_label(
    kind: str | None,
    job_config: Mapping[str, Any] | None = None,
    pack_config: Mapping[str, Any] | None = None,
) -> str:
    """The label of a run (see the module docstring); never raises on odd configs."""
    job = job_config if isinstance(job_config, Mapping) else {}
    pack = pack_config if isinstance(pack_config, Mapping) else {}
    kind = str(kind or "")
    defense = pack.get("defense") if isinstance(pack.get("defense"), Mapping) else None
    if kind == "demo":
        return DEMO_LABEL
    if kind == "defended-sweep":
        return _defended(job.get("detector"), job.get("fpr"), job.get("pack"))
    if defense is not None:
        return _defended(defense.get("detector"), defense.get("fpr"), defense.get("attacked"))
    if kind == "finetune":
        return f"Fine-tune: {job.get('name') or 'chosen concepts'}"
    if kind in ("real-sweep", "real-finetune"):
        model = job.get("model") or pack.get("model")
        what = "Real sweep" if kind == "real-sweep" else "Real fine-tune"
        return f"{what}: {pack_name(model)}" if model else what
    if kind == "budget" or ("counts" in pack and "methods" in pack):
        src = job or pack
        concept, target = src.get("concept"), src.get("target")
        return f"Budget sweep: {concept} → {target}" if concept else "Budget sweep"
    if job.get("name"):
        return str(job["name"])
    preset = job.get("preset") or pack.get("preset")
    if preset:
        return f"{preset} sweep"
    return kind or "run"


def distinct(labels: Mapping[str, str]) -> dict[str, str]:
    """Run id → label with no label twice: a label two runs share (two sweeps of one preset
    started in the same minute) ends with the run id's own suffix (``…-sweep-3f2a1c`` → ``3f2a1c``),
    or the whole id where suffixes repeat too. A widget maps the label the browser sends back to
    an option, so a shared label opened the other run; a legend merged their lines."""
    texts = list(labels.values())
    suffix = {i: str(i).rsplit("-", 1)[-1] for i in labels}
    tails = list(suffix.values())
    return {
        i: (f"{t} · {suffix[i] if tails.count(suffix[i]) == 1 else i}" if texts.count(t) > 1 else t)
        for i, t in labels.items()
    }


__all__ = ["DEMO_LABEL", "distinct", "pack_name", "run_label"]
