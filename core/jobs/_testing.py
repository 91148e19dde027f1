"""Dummy job kinds for tests and smoke checks (no torch, milliseconds per step).

``count`` sums 1..steps with a checkpoint every ``checkpoint_every`` steps, so a run that was
stopped, killed or resumed any number of times must still return ``sum == steps*(steps+1)/2``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from core.jobs.context import JobContext


def count(config: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sum 1..``steps`` (default 20), ``step_seconds`` (0.02) each, checkpoint every k steps.

    Options for tests: ``fail_at`` (raise RuntimeError at that step), ``disk_full_at`` (the
    checkpoint writer raises ENOSPC at that step), ``ignore_stop`` (never call should_stop),
    ``hold`` (a file path: after every step from ``hold_at`` on, default 1, wait until that file
    exists, still obeying stop / pause / cancel) so tests wait on events, not on how fast the machine is.
    """
    steps = int(config.get("steps", 20))
    every = int(config.get("checkpoint_every", 5))
    dt = float(config.get("step_seconds", 0.02))
    step, total = 0, 0
    resumed_from = None
    if (ckpt := ctx.latest_checkpoint()) is not None:
        state = json.loads(ckpt.read_text())
        step, total, resumed_from = state["step"], state["sum"], state["step"]
        ctx.log(f"resuming from {ckpt.name} (step {step})")

    def save(at: int, acc: int) -> None:
        def writer(path: Path) -> None:
            if config.get("disk_full_at") == at:
                raise OSError(28, "No space left on device", str(path))
            path.write_text(json.dumps({"step": at, "sum": acc}))

        ctx.save_checkpoint(f"step-{at:06d}.json", writer, keep=2)

    while step < steps:
        step += 1
        time.sleep(dt)
        if config.get("fail_at") == step:
            raise RuntimeError(f"boom at step {step}")
        total += step
        ctx.progress(step, steps, loss=1.0 / step, message=f"step {step}", total_so_far=total)
        if step % every == 0 or step == steps:
            save(step, total)
        if not config.get("ignore_stop") and ctx.should_stop():
            save(step, total)
            return {"step": step, "sum": total}
        if config.get("hold") and step >= int(config.get("hold_at", 1)):
            ctx.flush()  # readers see the step it holds at
            while not Path(config["hold"]).exists():
                if ctx.should_stop():
                    save(step, total)
                    return {"step": step, "sum": total}
                time.sleep(0.02)
    return {"steps": steps, "sum": total, "resumed_from": resumed_from, "attempt": ctx.attempt}


def sleepy(config: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleep ``seconds`` without ever checking should_stop (tests the cancel grace period)."""
    time.sleep(float(config.get("seconds", 30)))
    return {}
