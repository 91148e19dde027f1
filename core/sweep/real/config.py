"""Configuration of the real-model implosion sweep, and the light entry points the UI uses.

Nothing here imports torch or diffusers at module level, so the Streamlit Jobs page can parse and
validate a form and start the ``real-sweep`` job cheaply (the work runs in a worker process).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from core.jobs import register_kind
from core.poison.plan import METHODS, check_levels_and_seeds
from core.sweep.job import SweepJob

register_kind("real-sweep", "core.sweep.real.run:run_job")

MODES: tuple[str, ...] = (
    "full",
    "xattn",
    "lora",
)  # = core.models.lora.MODES (no torch import here)
PRECISIONS: tuple[str, ...] = ("auto", "no", "bf16", "fp16")  # as core.training.real
# How AD's feature term rescales matched CLIP cosines (docs/science.md): the released code's
# interval for CLIP ViT-B/32, quantiles of this sweep's clean pairs, raw cosines, or ad_interval.
RESCALES: tuple[str, ...] = ("clip", "calibrate", "none", "custom")
CLIP_INTERVAL: tuple[float, float] = (0.20, 0.45)  # = core.metrics.CLIP_SCALE


@dataclass(frozen=True)
class RealSweepConfig:
    """AD and implosion metrics of a real SD model over C_P (number of poisoned concepts).

    model: diffusers SD 1.x/2.x or SDXL base folder. clip: transformers CLIPModel folder (AD embeddings,
    zero-shot accuracy, attack success, alignment). data: folders / CSV / JSONL / parquet of
    (image, caption). concepts: one keyword tuple per concept, its name is the first keyword (empty:
    the ``auto_concepts`` most frequent caption words). levels: C_P values (ascending, ≤ K).
    poison_ratio: poison pairs per concept A = ratio × A's clean images (conflicting poison: A's
    clean pairs stay). steps / batch / lr / rank: fine-tune of each (C_P, seed) from the base.
    resolution: training and generation size (None: the model's). max_images: cap on clean pairs
    (a random subset; None: all). eval_samples: generations per concept (eval_steps DDIM steps,
    guidance CFG scale); grid_samples of them go to the PNG grids and the pack at image_size px.
    """

    model: str
    clip: str
    data: tuple[str, ...]
    concepts: tuple[tuple[str, ...], ...] = ()
    auto_concepts: int = 8
    levels: tuple[int, ...] = (0, 1, 2)
    seeds: tuple[int, ...] = (0,)
    method: str = "dirty-label"
    poison_ratio: float = 1.0
    nightshade_epsilon: float = 8 / 255
    nightshade_steps: int = 100
    mode: str = "xattn"
    steps: int = 100
    batch: int = 4
    lr: float = 1e-5
    rank: int = 4
    resolution: int | None = None
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False
    max_images: int | None = None
    eval_samples: int = 4
    eval_steps: int = 25
    guidance: float = 7.5
    grid_samples: int = 4
    image_size: int = 128
    embeddings_per_level: int = 2048
    ad_rescale: str = "clip"
    ad_interval: tuple[float, float] = CLIP_INTERVAL
    ad_alpha: float = 0.8
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("data", "levels", "seeds", "ad_interval"):
            value = getattr(self, name)
            if isinstance(value, str | Path | int | float):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) if name == "data" else v for v in value))
        object.__setattr__(self, "model", str(self.model))
        object.__setattr__(self, "clip", str(self.clip))
        object.__setattr__(self, "concepts", tuple(_keywords(c) for c in self.concepts))
        for name in ("model", "clip"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"{name}: empty; pass --{name} DIR (a local folder)")
        if not self.data:
            raise ValueError("data: empty; pass --data DIR (images with same-name .txt captions)")
        _choice("method", self.method, METHODS)
        _choice("mode", self.mode, MODES)
        _choice("mixed_precision", self.mixed_precision, PRECISIONS)
        _choice("ad_rescale", self.ad_rescale, RESCALES)
        self._check_levels()
        self._check_concepts()
        for name in ("steps", "batch", "rank", "eval_samples", "eval_steps", "grid_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.grid_samples > self.eval_samples:
            raise ValueError(f"grid_samples ({self.grid_samples}) must be ≤ eval_samples")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if self.poison_ratio <= 0:
            raise ValueError(f"poison_ratio must be > 0, got {self.poison_ratio}")
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")
        if self.max_images is not None and self.max_images < 2:
            raise ValueError(f"max_images must be ≥ 2 (or None for all), got {self.max_images}")
        if self.image_size < 8 or self.embeddings_per_level < 2:
            raise ValueError("image_size must be ≥ 8 and embeddings_per_level ≥ 2")
        if len(self.ad_interval) != 2 or not self.ad_interval[0] < self.ad_interval[1]:
            raise ValueError(f"ad_interval must be (lo, hi) with lo < hi, got {self.ad_interval}")
        if not 0 <= self.ad_alpha <= 1:
            raise ValueError(f"ad_alpha must be in [0, 1], got {self.ad_alpha}")

    def _check_levels(self) -> None:
        check_levels_and_seeds(self.levels, self.seeds, "--levels 0 1 2")

    def _check_concepts(self) -> None:
        if not self.concepts:
            if self.auto_concepts < 2:
                raise ValueError(
                    "concepts: none given and auto_concepts < 2; pass --concepts dog cat car "
                    "(comma-separated keywords per concept) or --auto-concepts 8"
                )
            return
        if len(self.concepts) < 2:
            raise ValueError(
                f"concepts: need ≥ 2 (zero-shot accuracy classifies among them), got "
                f"{[list(c) for c in self.concepts]}; add one, e.g. --concepts dog cat"
            )
        owner: dict[str, str] = {}
        for c in self.concepts:
            for k in c:
                if k.lower() in owner:
                    raise ValueError(
                        f"concepts: keyword {k!r} is in both {owner[k.lower()]!r} and {c[0]!r}; "
                        "each keyword may name one concept only"
                    )
                owner[k.lower()] = c[0]
        if self.levels[-1] > len(self.concepts):
            raise ValueError(
                f"levels: C_P={self.levels[-1]} > {len(self.concepts)} concepts; use levels ≤ "
                f"{len(self.concepts)} or add concepts"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (tuples as lists)."""
        d = asdict(self)
        for k in ("data", "levels", "seeds", "ad_interval"):
            d[k] = list(d[k])
        d["concepts"] = [list(c) for c in self.concepts]
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> RealSweepConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(RealSweepConfig)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown real-sweep settings {bad}; allowed: {sorted(known)}")
        for name, what in (("model", "SD model"), ("clip", "CLIP model"), ("data", "dataset")):
            if not d.get(name):
                raise ValueError(f"{name}: missing; give the {what} folder (--{name} DIR)")
        return RealSweepConfig(**d)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _keywords(concept: Any) -> tuple[str, ...]:
    words = parse_keywords(concept) if isinstance(concept, str) else tuple(concept)
    words = tuple(str(w).strip() for w in words if str(w).strip())
    if not words:
        raise ValueError("concepts: an empty keyword list; give e.g. --concepts dog cat,kitten")
    return words


def parse_keywords(text: str) -> tuple[str, ...]:
    """``"cat, kitten"`` → ``("cat", "kitten")``: one concept's keywords."""
    return tuple(w.strip() for w in text.split(",") if w.strip())


def parse_concepts(text: str) -> tuple[tuple[str, ...], ...]:
    """Form text → concepts: one concept per line or ``;``, keywords separated by commas.

    ``"dog, puppy; cat\\ncar"`` → ``(("dog", "puppy"), ("cat",), ("car",))``; empty → ().
    """
    return tuple(kw for part in re.split(r"[;\n]", text) if (kw := parse_keywords(part)))


def parse_ints(text: str, name: str) -> tuple[int, ...]:
    """``"0 1, 2"`` → ``(0, 1, 2)``; ValueError naming the field otherwise."""
    try:
        return tuple(int(t) for t in re.split(r"[\s,]+", text.strip()) if t)
    except ValueError as e:
        raise ValueError(f"{name}: expected whole numbers such as '0 1 2', got {text!r}") from e


def check_inputs(cfg: RealSweepConfig) -> Any:
    """Cheap checks before any model loads (also run in the foreground before a job starts).

    Model folder layout, CLIP folder, data readable and every concept present in captions,
    levels ≤ K. Returns the :class:`core.data.concepts.ConceptIndex` of the data (captions only).
    Raises ValueError / FileNotFoundError naming the field and the fix.
    """
    from core.data.concepts import ConceptIndex

    model = Path(cfg.model).expanduser()
    if not model.is_dir():
        raise FileNotFoundError(
            f"model {cfg.model}: no such folder; pass --model with a diffusers Stable Diffusion "
            "1.x/2.x or SDXL base folder (e.g. `huggingface-cli download stable-diffusion-v1-5/"
            "stable-diffusion-v1-5 --local-dir DIR` on a machine with network)"
        )
    clip = Path(cfg.clip).expanduser()
    if not (clip / "config.json").is_file():
        raise FileNotFoundError(
            f"clip {cfg.clip}: no CLIP model there (no config.json); download one in transformers "
            "format on a machine with network (e.g. `huggingface-cli download "
            "openai/clip-vit-base-patch32 --local-dir DIR`) and pass --clip DIR"
        )
    from core.models.sd import check_sd_folder  # imports diffusers: after the cheap checks

    check_sd_folder(model)
    index = ConceptIndex.scan(cfg)
    if cfg.levels[-1] > len(index.names):
        raise ValueError(
            f"levels: C_P={cfg.levels[-1]} > {len(index.names)} concepts ({index.names}); use "
            f"levels ≤ {len(index.names)} or add concepts"
        )
    return index


def start_real_sweep_job(
    form: dict[str, Any],
    device: str = "auto",
    queue: bool = True,
    out: str | None = None,
    executor: dict[str, Any] | None = None,
) -> str:
    """Validate a real-sweep form and start the ``real-sweep`` job; returns its run id.

    ``form`` holds :class:`RealSweepConfig` fields; ``concepts`` / ``levels`` / ``seeds`` may be
    form text (see :func:`parse_concepts`, :func:`parse_ints`) and ``data`` a single path. The
    results go to ``out`` or to ``<run dir>/sweep`` (where the app looks for packs).
    ``executor``: {"executor": "local" | "ray", "address"?, "gpus_per_level"?,
    "cpus_per_level"?} (core/sweep/executors), checked here.
    """
    from core.jobs import start_job

    form = {k: v for k, v in form.items() if v is not None and v != ""}
    if isinstance(form.get("concepts"), str):
        form["concepts"] = parse_concepts(form["concepts"])
    for k in ("levels", "seeds"):
        if isinstance(form.get(k), str):
            form[k] = parse_ints(form[k], k)
    cfg = RealSweepConfig.from_dict(form)
    check_inputs(cfg)
    settings = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    where: dict[str, Any] = {}
    if out is not None:
        from core.io import ensure_writable_dir

        where["out"] = str(ensure_writable_dir(Path(out).expanduser().resolve(), "out"))
    if executor and executor != {"executor": "local"}:  # the default adds nothing to the job
        where.update(executor)
    job = SweepJob(settings, **where)
    if job.executor != "local":
        from core.sweep.executors import make_executor

        make_executor(job.executor, job.options(1))  # e.g. Ray missing: fails here, not later
    return start_job("real-sweep", job.to_dict(), device=device, queue=queue, seed=cfg.seeds[0])
