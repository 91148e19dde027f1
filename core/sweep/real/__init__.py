"""The real-model (Stable Diffusion) sweep: ``config`` (RealSweepConfig, form parsing; no torch),
``data`` (cached training pairs), ``runner`` (RealSweepRunner), ``run`` (run_real_sweep and the
``real-sweep`` job)."""
