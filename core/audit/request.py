"""One audit request, checked before any work, and the one call that runs it (CLI and page).

``AuditRequest`` names the source (a planned attack, a captioned folder, a manifest, an
embeddings file or a pack's level) and the options; :func:`prepare` validates it cheaply (paths,
captions, manifest containment, C_P ≤ K, a calibration for a plan) and fits the calibration;
:func:`run_audit` builds or embeds the pairs and returns the :class:`~core.audit.audit.Audit`
with its report computed.

Which calibration applies:

* plan: the model's (default: the shipped base, fitted on the demo pack); none is an error;
* pack level: the pack's model's, when it measures AD on the same scale;
* folder / manifest with the mini dual encoder (no ``clip``): the model's;
* folder / manifest with a real CLIP: a finished real sweep with that CLIP, else none (said so);
* embeddings file: only with ``model`` or ``calibrate_on`` (a file does not say who embedded it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from core.audit.audit import Audit
from core.audit.calibration import OutcomeCalibration, calibration_for, fit_calibration
from core.audit.plan import PlannedAttack
from core.metrics.result import CLIP_SCALE

Source = Literal["plan", "dataset", "manifest", "embeddings", "pack"]
SOURCES: tuple[str, ...] = ("plan", "dataset", "manifest", "embeddings", "pack")


@dataclass(frozen=True)
class AuditRequest:
    """What to audit. ``path``: the folder / manifest / embeddings file / pack (not for a plan);
    ``level``: the pack's C_P; ``attack``: the planned attack; ``model``: mini model folder
    (default shipped base); ``clip``: a local CLIP folder for real images; ``calibrate_on``:
    packs to fit the calibration on instead of the model's default ones; ``scale``: AD scale
    when no calibration applies (None: raw cosines)."""

    source: Source
    path: str | None = None
    level: int | None = None
    attack: PlannedAttack | None = None
    model: str | None = None
    clip: str | None = None
    calibrate_on: tuple[str, ...] = ()
    labels: str | None = None
    scale: tuple[float, float] | None = CLIP_SCALE
    top: int = 50
    progress: bool = False
    root: str | None = None  # manifest: the folder its image paths are relative to

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source: {self.source!r}; choose one of {', '.join(SOURCES)}")
        if self.source == "plan":
            if self.attack is None:
                raise ValueError("--plan: give --c-p N and --seed S")
        elif self.path is None:
            raise ValueError(f"--{self.source}: give a path")
        if self.source == "pack" and self.level is None:
            raise ValueError("--level: a pack audit needs the level, e.g. --pack demo --level 8")
        if self.level is not None and self.source != "pack":
            raise ValueError("--level: only with --pack (a plan takes --c-p)")
        if self.clip is not None and self.source not in ("dataset", "manifest"):
            raise ValueError("--clip: only with --dataset or --manifest (images to embed)")
        if self.labels is not None and self.source != "embeddings":
            raise ValueError("--labels: only with --embeddings FILE.npz")
        if self.top < 1:
            raise ValueError(f"--top: must be ≥ 1, got {self.top}")


@dataclass
class Prepared:
    """A checked request: cheap inputs read, the calibration fitted (or why there is none)."""

    request: AuditRequest
    calibration: OutcomeCalibration | None
    no_calibration: str
    records: tuple[list[Path], list[str]] | None = None


def _real_calibration(clip: str) -> OutcomeCalibration | None:
    """Calibration from finished real sweeps that embedded with this CLIP, or None."""
    from core.results.pack import list_packs, load_pack

    want = Path(clip).expanduser().resolve()
    packs = []
    for root in list_packs().values():
        try:
            p = load_pack(root)
        except (OSError, ValueError):
            continue
        c = p.config.get("clip")
        if c and Path(c).expanduser().resolve() == want and p.results.get("complete"):
            packs.append(p)
    if not packs:
        return None
    try:
        return fit_calibration(packs)
    except ValueError:
        return None


def prepare(req: AuditRequest) -> Prepared:
    """Validate ``req`` and fit its calibration; ValueError naming the field before any work."""
    from core.audit.pairs import folder_records, manifest_records

    cal: OutcomeCalibration | None = None
    why = ""
    records = None
    if req.source == "plan":
        from core.audit.plan import model_concepts

        assert req.attack is not None
        req.attack.check(model_concepts(req.model))
        cal = calibration_for(req.model, req.calibrate_on or None)  # none: ValueError
    elif req.source == "pack":
        from core.audit.calibration import pack_model
        from core.results.pack import load_pack

        pack = load_pack(Path(str(req.path)))
        if req.level not in pack.levels:
            raise ValueError(
                f"--level: C_P={req.level} is not a level of {pack.root}; levels: {pack.levels}"
            )
        try:
            cal = calibration_for(str(pack_model(pack)), req.calibrate_on or None)
        except ValueError as e:
            why = str(e)
        pack_scale = pack.config.get("ad_scale")
        if cal is not None and cal.scale != (tuple(pack_scale) if pack_scale else None):
            why = (
                f"the pack measures AD on scale {pack.config.get('ad_scale')}, the calibration "
                f"on {cal.scale}; no prediction"
            )
            cal = None
    elif req.source in ("dataset", "manifest"):
        path = str(req.path)
        records = (
            folder_records(path) if req.source == "dataset" else manifest_records(path, req.root)
        )
        if req.clip is not None:
            clip = Path(req.clip).expanduser()
            if not (clip / "config.json").is_file():
                raise ValueError(f"--clip: {clip} has no config.json; give a local CLIP folder")
            cal = _real_calibration(str(clip))
            if cal is None:
                why = (
                    f"no calibration exists for CLIP {clip}: no finished real sweep embedded "
                    "with it (`implosion real sweep --clip …` with ≥ 2 seeds makes one)"
                )
        else:
            try:
                cal = calibration_for(req.model, req.calibrate_on or None)
            except ValueError as e:
                why = str(e)
    else:  # embeddings
        if req.model is not None or req.calibrate_on:
            cal = calibration_for(req.model, req.calibrate_on or None)
        else:
            why = (
                "an embeddings file does not say which model embedded it; pass --model DIR "
                "(or --calibrate-on PACK) for a prediction"
            )
    return Prepared(req, cal, why, records)


def run_audit(prep: Prepared, device: str = "cpu") -> Audit:
    """Build or embed the pairs of a prepared request and run the audit (report computed)."""
    req, cal = prep.request, prep.calibration
    c_p = seed = None
    if req.source == "plan":
        from core.audit.plan import planned_pairs
        from core.results.pack import load_pack

        assert req.attack is not None and cal is not None
        pack = load_pack(Path(cal.fitted_on[0]))
        pairs = planned_pairs(req.attack, pack.config, cal.scale, req.model, device)
        if req.attack.method == pack.config.get("method", "dirty-label"):
            c_p, seed = req.attack.c_p, req.attack.seed  # a fitted run of this level may exist
    elif req.source == "pack":
        from core.audit.pairs import from_pack
        from core.results.pack import load_pack

        pairs = from_pack(str(req.path), int(req.level or 0))
        pack = load_pack(Path(str(req.path)))
        c_p, seed = req.level, int(pack.config.get("seeds", [0])[0])
    elif req.source == "embeddings":
        from core.audit.pairs import from_embeddings

        pairs = from_embeddings(str(req.path), req.labels)
    else:
        from core.audit.pairs import embed_records
        from core.models.dual import load_embedder

        assert prep.records is not None
        embedder = load_embedder(req.clip) if req.clip else _mini_embedder(req.model)
        names = None if req.clip else _model_names(req.model)
        pairs = embed_records(
            *prep.records, embedder, names, f"{req.source} {req.path}", req.progress
        )
    audit = Audit(
        pairs,
        calibration=cal,
        scale=req.scale,
        no_calibration=prep.no_calibration,
        c_p=c_p,
        seed=seed,
        top=req.top,
        progress=req.progress,
    )
    rep = audit.find_issues()
    if req.source == "plan" and rep.prediction is not None:
        assert req.attack is not None and cal is not None
        pred = rep.prediction
        if c_p is None:  # another attack than the fitted sweeps'
            pred = replace(
                pred,
                notes=(
                    *pred.notes,
                    f"the calibration was fitted on dirty-label sweeps; this {req.attack.method} "
                    "forecast assumes the outcome follows AD whatever the attack (untested here)",
                ),
            )
        elif pred.measured is None:
            pred = replace(pred, measured=measured_in_runs(req.attack, cal))
        audit.amend_prediction(pred)
    return audit


def measured_in_runs(attack: PlannedAttack, cal: OutcomeCalibration) -> dict[str, Any] | None:
    """The measured outcome of the planned level in a finished run (a pack under the runs folder
    with the calibration's fine-tune, the same seed and the same poisoned concepts), or None."""
    from core.audit.calibration import OUTCOMES, training_of
    from core.audit.plan import plan_order
    from core.results.pack import list_packs, load_pack

    for name, root in list_packs().items():
        if str(root) in cal.fitted_on:
            continue
        try:
            pack = load_pack(root)
        except (OSError, ValueError):
            continue
        if training_of(pack) != cal.training:
            continue
        k = len(pack.concepts)
        if attack.c_p > k:
            continue
        plans = pack.config.get("plans", {})
        order = plans.get(str(attack.seed), {}).get("order")
        want, _ = plan_order(attack, k)
        if order is None or set(order[: attack.c_p]) != set(want):
            continue
        for r in pack.records:
            if int(r["c_p"]) == attack.c_p and int(r["seed"]) == attack.seed:
                return {"run": name, **{k2: r.get(k2) for k2 in ("c_p", "seed", "ad", *OUTCOMES)}}
    return None


def _mini_embedder(model: str | None) -> Any:
    from core.models.dual import MiniEmbedder

    return MiniEmbedder(Path(model) if model else None)


def _model_names(model: str | None) -> list[str]:
    from core.sweep.mini.finetune import model_world

    return list(model_world(model).names)
