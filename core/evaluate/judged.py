"""Scoring generations: judged accuracy, incoherence and CLIP-style alignment per concept.

``evaluate_model`` generates ``samples_per_concept`` images of each concept with fixed seeds
(image j of concept k always starts from the same noise), judges them and embeds them:

* accuracy_k   = share of concept k's images whose judged (size, colour, shape) equals k's;
* incoherence  = mean normalised entropy of the judge's three heads (0 certain … 1 uniform);
* undefined    = share of images on which some head's top probability is < 0.6;
* alignment_k  = mean cosine, in the dual encoder's joint space, of k's images to k's prompt;
* target_rate  = share judged as a given other concept (attack success for a poisoned concept).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.models.judge import judge_scores
from core.models.ldm import MiniLDM


@dataclass(frozen=True)
class Generations:
    """images: (K·m, 3, S, S); concept: (K·m,) int64 — the prompted concept of each image."""

    images: torch.Tensor
    concept: torch.Tensor
    prompts: list[str]


def generate_concepts(
    ldm: MiniLDM,
    concepts: list[int] | None = None,
    samples_per_concept: int = 16,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 3.0,
    template: int = 0,
) -> Generations:
    """Generate m images per concept with prompt template ``template`` (fixed seeds)."""
    ids = list(range(ldm.world.n_concepts)) if concepts is None else list(concepts)
    concept = torch.tensor(ids, dtype=torch.long).repeat_interleave(samples_per_concept)
    prompts = [ldm.world.concepts[int(k)].caption(template) for k in concept]
    images = ldm.sample(prompts, seed=seed, steps=steps, guidance=guidance)
    return Generations(images, concept, prompts)


@torch.no_grad()
def score_generations(ldm: MiniLDM, gen: Generations) -> dict[str, Any]:
    """Judge and embed generations; per-concept and overall metrics (see module docstring)."""
    attr_table = torch.from_numpy(ldm.world.attribute_ids).to(ldm.device)
    s = judge_scores(ldm.judge, gen.images, attr_table)
    pred = s.predicted.cpu()
    concept = gen.concept
    correct = (pred == concept).float()
    uniq = sorted(set(gen.prompts))
    t = ldm.text_embeds(uniq)
    z = ldm.image_embeds(gen.images)
    ti = torch.tensor([uniq.index(p) for p in gen.prompts], device=z.device)
    cos = (z * t[ti]).sum(-1).cpu()
    per_concept, align, incoh = {}, {}, {}
    names = ldm.world.names
    for k in concept.unique().tolist():
        m = concept == k
        per_concept[names[k]] = float(correct[m].mean())
        align[names[k]] = float(cos[m].mean())
        incoh[names[k]] = float(s.entropy.cpu()[m].mean())
    return {
        "accuracy": float(np.mean(list(per_concept.values()))),
        "per_concept": per_concept,
        "incoherence": float(s.entropy.mean()),
        "undefined_rate": float(s.undefined.float().mean()),
        "alignment": float(np.mean(list(align.values()))),
        "per_concept_alignment": align,
        "per_concept_incoherence": incoh,
        "predicted": pred.tolist(),
    }


def evaluate_model(
    ldm: MiniLDM,
    samples_per_concept: int = 16,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 3.0,
    concepts: list[int] | None = None,
) -> dict[str, Any]:
    """Generate and score every concept; the ``eval-base`` JSON (without the per-image list)."""
    if samples_per_concept < 1:
        raise ValueError(f"samples_per_concept must be ≥ 1, got {samples_per_concept}")
    t0 = time.time()
    gen = generate_concepts(ldm, concepts, samples_per_concept, seed, steps, guidance)
    out = score_generations(ldm, gen)
    out.pop("predicted")
    out.update(
        samples_per_concept=samples_per_concept,
        seed=seed,
        steps=steps,
        guidance=guidance,
        seconds=round(time.time() - t0, 2),
    )
    return out
