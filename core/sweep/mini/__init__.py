"""The mini-model sweep: ``config`` (SweepConfig, presets), ``runner`` (SweepRunner), ``run``
(run_sweep and the ``sweep`` job), ``checks`` (launch checks), ``estimate`` (run time),
``finetune`` (the Poison-setup run), ``defended`` (the defended sweep), ``budget`` (the
poison-count sweep)."""
