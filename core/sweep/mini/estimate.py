"""Honest run time: a sweep's (or Poison-setup fine-tune's) wall time from this machine's rates.

    T = T_start + T_setup + Σ_levels (T_pairs + T_train + T_probes + T_eval) + T_assemble

- T_start: a worker interpreter importing the sweep code and loading the model (measured);
- T_setup: encoding K · n_clean clean images (VAE + dual encoder) at ``encode`` img/s;
- T_train: steps · batch / ``train`` img/s, in the dtype core.training.precision picks;
- T_probes / T_eval: K generations per probe, K · eval_samples at the end, each eval_steps DDIM
  steps at ``sample`` image-steps/s, plus judging (``judge`` img/s);
- T_pairs: the level's text embeddings and AD, ~ the encode cost of its pairs.

Rates are measured once per machine, model shape, device and dtype by :func:`measure_rates`
(a few seconds of the real model) and cached in ``<runs>/.bench/rates.json``; the load average at
measurement time is kept beside them, since a loaded machine runs slower.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.io import atomic_write_json, runs_dir
from core.jobs.context import JobContext
from core.jobs.progress import sweep_work
from core.sweep.mini.config import SweepConfig


@dataclass(frozen=True)
class Rates:
    """Measured throughput. train: fine-tune images/s; sample: DDIM image-steps/s; encode /
    judge: images/s; start_s: seconds for a worker to import the code and load the model."""

    train: float
    sample: float
    encode: float
    judge: float
    start_s: float
    load: float  # 1-minute load average when measured
    measured: str  # ISO time
    seconds: float = 0.0  # how long the measurement itself took (0: not recorded)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """Seconds per phase (whole run) and the total."""

    start: float
    setup: float
    train: float
    probes: float
    evaluate: float
    other: float
    levels: int

    @property
    def total(self) -> float:
        return self.start + self.setup + self.train + self.probes + self.evaluate + self.other

    def per_level(self) -> float:
        """Seconds of one level (train + probes + evaluation + pairs), the run's mean."""
        return (self.train + self.probes + self.evaluate + self.other) / max(1, self.levels)

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


def _n_probes(steps: int, every: int) -> int:
    if every <= 0:
        return 0
    return 1 + steps // every + (0 if steps % every == 0 else 1)


def estimate(config: SweepConfig, n_concepts: int, rates: Rates) -> Estimate:
    """Wall-time estimate of ``config`` on a model with ``n_concepts`` concepts (see module doc)."""
    k, n_lv = n_concepts, len(config.levels) * len(config.seeds)
    ft = config.finetune
    n_clean = k * config.n_clean_per_concept
    setup = len(config.seeds) * n_clean / rates.encode
    n_poison = max(1, round(config.poison_ratio * config.n_clean_per_concept))
    pairs = sum(n_clean + c * n_poison for c in config.levels) * len(config.seeds)
    train = n_lv * ft.steps * ft.batch / rates.train
    gen_probe = _n_probes(ft.steps, config.probe_every) * k
    gen_eval = k * config.eval_samples
    probes = n_lv * gen_probe * (config.eval_steps / rates.sample + 1 / rates.judge)
    evaluate = n_lv * gen_eval * (config.eval_steps / rates.sample + 2 / rates.judge)
    other = 0.2 * pairs / rates.encode
    return Estimate(rates.start_s, setup, train, probes, evaluate, other, n_lv)


class SweepProgress:
    """A sweep job's progress: the driver's units (fine-tune steps, one unit per level's end)
    weighed in this estimate's seconds and handed to ``ctx.progress`` as work, so the bar moves
    with the step that runs and the time left blends the estimate with the run's own rate.

    ``est`` None (no rates measured on this machine): units are the work and the time left is
    the measured rate alone. The set-up before the first level (start, clean encoding) counts as
    the estimate's ``start + setup`` seconds, done when the driver reports its first level.
    """

    def __init__(self, ctx: JobContext, est: Estimate | None, steps_per_level: int) -> None:
        self.ctx, self.est, self.spl = ctx, est, max(1, steps_per_level)
        self.lead = 0.0
        if est is not None:
            ctx.expect(est.total)
            n = max(1, est.levels)
            self.step_s = (est.train + est.probes) / n / self.spl
            self.end_s = (est.evaluate + est.other) / n
            self.lead = est.start + est.setup

    def start(self, total_units: int, message: str) -> None:
        """Report the run's start (before set-up), so set-up time is measured too."""
        self(0, total_units, message, None, started=False)

    def __call__(
        self, units: int, total: int, msg: str, loss: float | None = None, *, started: bool = True
    ) -> None:
        work = None
        if self.est is not None:
            done, whole = sweep_work(units, total, self.spl, self.step_s, self.end_s)
            work = ((self.lead if started else 0.0) + done, self.lead + whole)
        self.ctx.progress(units, total, loss=loss, message=msg, work=work)


# ---------------------------------------------------------------- measuring and caching


def _cache_path() -> Path:
    return runs_dir() / ".bench" / "rates.json"


def machine_key(model: str | Path | None, device: str, precision: str, params: str = "all") -> str:
    """Machine (CPU model, cores, torch), device, dtype rule, model folder and which weights train
    (a LoRA step skips the frozen weights' gradients): one cache entry."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    folder = str(Path(model).resolve()) if model else "shipped-base"
    key = f"{cpu}|{os.cpu_count()}|torch {torch.__version__}|{device}|{precision}|{folder}"
    return key if params == "all" else f"{key}|{params}"


def cached_rates(
    model: str | Path | None, device: str = "cpu", precision: str = "auto", params: str = "all"
) -> Rates | None:
    """Rates measured earlier on this machine for this model, device, dtype and trained weights,
    or None."""
    try:
        data = json.loads(_cache_path().read_text())
        return Rates(**data[machine_key(model, device, precision, params)])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_rates(
    model: str | Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
    batch: int = 64,
    save: bool = True,
    start_s: float | None = None,
    params: str = "all",
) -> Rates:
    """Measure this machine on the real model: 3 fine-tune steps (the 2 after warm-up timed),
    one DDIM sampling of 32 images × 5 steps, encoding and judging 256 images, and a worker's
    start (a fresh interpreter importing the sweep and loading the model). ~10–60 s, recorded
    in ``Rates.seconds``."""
    import numpy as np
    import torch

    from core.evaluate.judged import Generations, score_generations
    from core.io import default_base
    from core.models.ldm import MiniLDM
    from core.training.finetune import FinetuneConfig, encode_images, finetune_unet, make_pairs

    t_all = time.perf_counter()
    folder = Path(model) if model else default_base()
    code = (
        "import time;t=time.perf_counter();import core.sweep.mini.runner;"
        "from core.models.ldm import MiniLDM;"
        f"MiniLDM.from_pretrained({str(folder)!r});print(time.perf_counter()-t)"
    )
    if start_s is None:  # a worker measures its own start instead (process_age_s)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
        )
        start_s = time.perf_counter() - t0 if proc.returncode == 0 else 10.0
    ldm = MiniLDM.from_pretrained(folder, device)
    world = ldm.world
    d = world.sample(max(1, 256 // world.n_concepts), seed=1)
    n_img = len(d.captions)
    t_enc = _timed(
        lambda: (
            encode_images(ldm, d.images),
            ldm.image_embeds(torch.from_numpy(d.images)),
            ldm.text_embeds(d.captions),
        )
    )
    mean, std = encode_images(ldm, d.images)
    data = make_pairs(ldm, mean, std, np.arange(n_img), list(d.captions))
    stamps: list[float] = []
    cfg = FinetuneConfig(steps=3, batch=batch, lr=1e-6, precision=precision, params=params)  # type: ignore[arg-type]  # checked by FinetuneConfig
    state = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    finetune_unet(ldm, data, cfg, on_step=lambda s, t, lo: stamps.append(time.perf_counter()))
    ldm.unet.load_state_dict(state)
    ldm.unet.eval()
    train = 2 * batch / max(1e-6, stamps[-1] - stamps[0])
    prompts = [world.concepts[i % world.n_concepts].caption(0) for i in range(32)]
    images: list[torch.Tensor] = []
    t_s = _timed(lambda: images.append(ldm.sample(prompts, seed=0, steps=5)))
    concept = torch.tensor([i % world.n_concepts for i in range(32)])
    t_j = _timed(lambda: score_generations(ldm, Generations(images[0], concept, prompts)))
    rates = Rates(
        train=train,
        sample=32 * 5 / t_s,
        encode=n_img / t_enc,
        judge=32 / t_j,
        start_s=start_s,
        load=os.getloadavg()[0],
        measured=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        seconds=round(time.perf_counter() - t_all, 1),
    )
    if save:
        path = _cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data_all = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data_all = {}
        data_all[machine_key(model, device, precision, params)] = rates.to_dict()
        atomic_write_json(path, data_all)
    return rates


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), None elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return time.time() - (btime + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def rates_for(
    model: str | Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
    start_s: float | None = None,
    params: str = "all",
) -> Rates:
    """Cached rates, measured now if this machine has none yet (``start_s``: a worker's own
    start-up time, which then need not be measured in a fresh interpreter)."""
    cached = cached_rates(model, device, precision, params)
    return cached or measure_rates(model, device, precision, start_s=start_s, params=params)


def last_measure_seconds() -> float | None:
    """How long the latest measurement on this machine took (any model or device), or None."""
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, json.JSONDecodeError):
        return None
    done = [v for v in data.values() if isinstance(v, dict) and v.get("seconds")]
    latest = max(done, key=lambda v: str(v.get("measured", "")), default=None)
    return float(latest["seconds"]) if latest else None


def format_seconds(s: float) -> str:
    """``"45 s"``, ``"3.2 min"``, ``"1.5 h"``."""
    if s < 90:
        return f"{max(0.0, s):.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


__all__ = [
    "Estimate",
    "Rates",
    "SweepProgress",
    "cached_rates",
    "estimate",
    "format_seconds",
    "last_measure_seconds",
    "measure_rates",
    "rates_for",
]
