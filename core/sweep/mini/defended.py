"""Defended sweep, a sweep variant: the attacked pack's sweep again, with flagged training pairs
dropped per level.

The attacked pack's sweep config is reused field for field (same model, poison, fine-tune and
evaluation; the fine-tune seed of each (C_P, seed) is the same, so attacked and defended runs
differ only by the removed pairs) with ``defense`` set; the level runner applies it right after
building the training pairs (core/sweep/mini/runner.py → :func:`core.defend.filter.apply_defense`). The
output is an ordinary sweep folder and pack, named ``<attacked>-defended-<detector>-fpr<pct>``
under the runs directory by default so the explorer lists it beside the attacked one.

Job kind ``defended-sweep`` (``core.sweep.mini.defended:run_job``): config {"pack", "detector", "fpr",
"out"?, "levels"?, "seeds"?, "workers"?}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from core.defend.config import DefenseConfig
from core.io import runs_dir
from core.jobs import register_kind
from core.jobs.context import JobContext
from core.results.pack import load_pack

register_kind("defended-sweep", "core.sweep.mini.defended:run_job")


def defended_name(attacked: str, defense: DefenseConfig) -> str:
    """Folder name of a defended sweep: ``<attacked>-defended-<detector>-fpr<percent>``."""
    return f"{attacked}-defended-{defense.detector}-fpr{defense.fpr * 100:g}"


def default_out(pack_dir: Path, defense: DefenseConfig) -> Path:
    root = Path(pack_dir).resolve()
    name = "demo" if root.name == "demo" and root.parent.name == "assets" else root.name
    if root.name in ("sweep", "pack", "out", "results"):  # a job's run dir holds the pack
        name = root.parent.name
    return runs_dir() / defended_name(name, defense)


def defended_config(
    pack_dir: Path,
    defense: DefenseConfig,
    levels: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
) -> Any:
    """The attacked pack's SweepConfig with ``defense`` (and optional level/seed subsets)."""
    from core.sweep.mini.run import SweepConfig

    pack = load_pack(Path(pack_dir))
    cfg = pack.config
    if cfg.get("defense"):
        raise ValueError(f"pack: {pack.root} is already a defended sweep; pick the attacked pack")
    known = {f.name for f in fields(SweepConfig)} - {"defense"}
    if isinstance(cfg.get("sweep_config"), dict):  # the SweepConfig as given (newer packs)
        sc = SweepConfig.from_dict({k: v for k, v in cfg["sweep_config"].items() if k in known})
        picked: dict[str, Any] = {}
    else:  # older packs: "concepts"/"targets" are names and seed 0's map, so use the plans
        sc = SweepConfig.from_dict(
            {k: v for k, v in cfg.items() if k in known - {"concepts", "targets"}}
        )
        picked = chosen(pack)
    over: dict[str, Any] = {
        "defense": replace(defense, attacked=str(pack.root.resolve())),
        **picked,
    }
    for name, sub, have in (("levels", levels, sc.levels), ("seeds", seeds, sc.seeds)):
        if sub is not None:
            bad = [v for v in sub if v not in have]
            if bad:
                raise ValueError(f"{name}: {bad} are not in the attacked pack's {list(have)}")
            over[name] = tuple(sorted(set(sub))) if name == "levels" else tuple(sub)
    return replace(sc, **over)


def chosen(pack: Any) -> dict[str, Any]:
    """SweepConfig ``concepts``/``targets`` reproducing the pack's recorded poisoning plans: {} when
    every seed used its random plan, else the chosen order and explicit targets (one order for all
    seeds, as a chosen-concept run has)."""
    from core.poison.plan import poisoning_plan

    k = len(pack.concepts)
    plans = {int(s): p for s, p in pack.config.get("plans", {}).items()}
    recorded = {
        s: ([int(c) for c in p["order"]], {int(a): int(b) for a, b in p["targets"].items()})
        for s, p in plans.items()
    }
    if all(poisoning_plan(k, s) == plan for s, plan in recorded.items()):
        return {}
    orders = {tuple(order) for order, _ in recorded.values()}
    if len(orders) != 1:
        raise ValueError(
            f"pack: {pack.root} has per-seed poisoning orders that are neither random nor one "
            "chosen list; the defended sweep cannot reproduce them"
        )
    order = orders.pop()
    tmap = next(iter(recorded.values()))[1]
    return {"concepts": order, "targets": tuple((a, tmap[a]) for a in order)}


@dataclass(frozen=True)
class DefendedSweep:
    """What a defended sweep runs: the attacked pack's folder, the defense, optional level and
    seed subsets, the output folder (None: :func:`default_out`) and local worker processes."""

    pack: Path
    defense: DefenseConfig
    out: Path | None = None
    levels: Sequence[int] | None = None
    seeds: Sequence[int] | None = None
    workers: int = 1

    def sweep_config(self) -> Any:
        """The SweepConfig it runs (checked: a bad pack, level or seed raises ValueError)."""
        return defended_config(self.pack, self.defense, self.levels, self.seeds)

    def folder(self) -> Path:
        return Path(self.out) if self.out is not None else default_out(self.pack, self.defense)

    def to_job(self) -> dict[str, Any]:
        """The ``defended-sweep`` job config (JSON)."""
        return {
            "pack": str(Path(self.pack).resolve()),
            "detector": self.defense.detector,
            "fpr": self.defense.fpr,
            "out": str(self.folder()),
            "levels": list(self.levels) if self.levels is not None else None,
            "seeds": list(self.seeds) if self.seeds is not None else None,
            "workers": self.workers,
        }

    @staticmethod
    def from_job(config: dict[str, Any]) -> DefendedSweep:
        if "pack" not in config:
            raise ValueError("pack: the defended-sweep job needs the attacked pack folder")
        return DefendedSweep(
            Path(config["pack"]),
            DefenseConfig(config.get("detector", "misalignment"), config.get("fpr", 0.05)),
            Path(config["out"]) if config.get("out") else None,
            config.get("levels"),
            config.get("seeds"),
            int(config.get("workers") or 1),
        )


def run_defended_sweep(
    request: DefendedSweep,
    on_progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    ctx: JobContext | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run (or resume) the defended sweep; returns (results dict, output folder). ``ctx``: the
    job it runs in (progress by fine-tune step and level end, pause requests)."""
    from core.sweep.mini.run import job_progress, run_sweep

    sc, out, workers = request.sweep_config(), request.folder(), request.workers
    if ctx is None:
        return run_sweep(sc, out, on_progress, should_stop, workers=workers), out
    res = run_sweep(
        sc, out, on_progress, should_stop, workers=workers,
        pause_requested=ctx.pause_requested, on_units=job_progress(ctx, sc),
    )  # fmt: skip
    return res, out


def run_job(config: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``defended-sweep`` (see module docstring)."""
    res, out = run_defended_sweep(DefendedSweep.from_job(config), None, ctx.should_stop, ctx)
    return {"out": str(out), "complete": res.get("complete", False), "records": len(res["records"])}


def start_defended_job(request: DefendedSweep) -> str:
    """Start the ``defended-sweep`` job (queued if the device is busy); returns the run id. The
    config is checked here first, so a bad pack or level fails in the caller, not the worker."""
    from core.jobs import start_job

    request.sweep_config()
    return start_job("defended-sweep", request.to_job(), queue=True)


def defended_packs(attacked_dir: Path) -> dict[str, Path]:
    """Packs listed by the app whose name marks them as defended sweeps of ``attacked_dir``."""
    from core.results.pack import list_packs

    stem = default_out(attacked_dir, DefenseConfig()).name.split("-defended-")[0] + "-defended-"
    return {n: p for n, p in list_packs().items() if n.startswith(stem)}
