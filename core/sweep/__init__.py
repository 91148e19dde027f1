"""The implosion sweep: a grid of (C_P, seed) levels, each a fine-tune plus its measurements.

- :mod:`.engine`: the one engine (order, resume/identity rule, progress, stop/pause, atomic writes,
  pack files) over any level runner;
- :mod:`.runner`: the level-runner protocol, the one record builder and the one level packer;
- :mod:`.executors`: where levels run (this process, local worker processes, Ray);
- :mod:`.mini` and :mod:`.real`: the mini-model and the Stable Diffusion sweep, cut the same way:
  ``config.py`` (the frozen config), ``runner.py`` (the level runner), ``run.py`` (the front
  door: ``run_sweep`` / ``run_real_sweep`` and the job); the real sweep adds ``data.py`` (its
  cached training pairs), the mini one its launch checks, run-time estimate, the Poison-setup
  fine-tune (a two-level sweep), the defended sweep and the poison-count sweep.
"""
