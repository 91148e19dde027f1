"""Real Stable Diffusion models and real image datasets (issue 6).

* :mod:`core.real.sd` — ``load_sd``: a diffusers-format SD 1.x/2.x or SDXL base folder (or hub
  id, network permitting) behind the same interface as :class:`core.models.ldm.MiniLDM`;
  :mod:`core.real.sdxl` holds what SDXL adds (second text encoder, pooled text, size ids).
* :mod:`core.real.tiny` — tiny random SD / SDXL folders for tests and benchmarks.
* :mod:`core.real.data` — streamed image/caption datasets (folder, CSV, JSONL, parquet).
* :mod:`core.real.poison` — dirty-label and Nightshade-style poisoning of a real dataset.
* :mod:`core.real.lora` / :mod:`core.real.train` — full, cross-attention and LoRA fine-tuning.
* :mod:`core.real.accelerate_train` — the same loop under ``accelerate launch``.
* :mod:`core.real.metrics` — CLIP alignment, zero-shot attack success and incoherence.
* :mod:`core.real.sweep` — the implosion sweep over C_P on a real model (``real-sweep`` job);
  config in :mod:`.sweep_config`, concepts in :mod:`.concepts`, pairs in :mod:`.sweep_data`,
  metrics and demo-pack files in :mod:`.sweep_pack`.
"""
