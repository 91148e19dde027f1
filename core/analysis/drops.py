"""Per-prompt accuracy drops as the pages show them: grouped by the shown seed's plan, averaged
only over the seeds where each prompt is in the group it is shown in.

A pack's pictures come from its shown seed (:attr:`core.results.pack.Pack.shown_seed`), so the
pages group prompts poisoned / related / unrelated by that seed's plan at the chosen C_P. Every
other seed poisons a different set: a prompt shown as unrelated may have been poisoned in
seed 3, and its accuracy there says nothing about bleed-through. Each prompt's drop is therefore
the mean, over the seeds where :meth:`~core.results.pack.Pack.groups` puts it in the same group,
of its judged accuracy at C_P 0 minus at C_P (paired by seed, :func:`core.results.aggregate.
concept_drop`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.results.aggregate import concept_drop

if TYPE_CHECKING:
    from core.results.pack import Pack


def accuracy_drop(pack: Pack, c_p: int) -> np.ndarray | None:
    """(K,) float64: per prompt, judged accuracy at C_P 0 minus at ``c_p`` (positive = worse),
    averaged over the seeds where the prompt is in the group (poisoned / related / unrelated) it
    has in the shown seed's plan at ``c_p``; seeds the pack records no plan for are left out.
    None when the records carry no per-concept accuracy for both levels."""
    shown = pack.groups(c_p)
    role = {i: group for group, ids in shown.items() for i in ids}

    def same_role(seed: int) -> list[int] | None:
        if pack.seed_plan(seed) is None:
            return None
        groups = pack.groups(c_p, seed)
        return [i for group, ids in groups.items() for i in ids if role.get(i) == group]

    return concept_drop(pack.records, len(pack.concepts), c_p, same_role)


__all__ = ["accuracy_drop"]
