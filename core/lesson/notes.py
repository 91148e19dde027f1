"""Sentences that reconcile what the figures show with what the claims panel checks."""

from __future__ import annotations

from core.analysis.claims import PackClaims


def implosion_note(claims: PackClaims, steps: int | None = None) -> str | None:
    """When the implosion claim is missed (✗) while unpoisoned prompts visibly fail: one sentence
    saying what was measured and what the target asks, so a ✗ beside failing prompts is not read
    as "no implosion". None when the claim holds or was not measured.

    ``steps``: the pack's fine-tune steps (named in the sentence when known)."""
    try:
        claim = claims.get("implosion_ratio")
    except KeyError:
        return None
    if claim.holds is not False or claim.value is None:
        return None
    iv = claim.interval
    span = f" [{iv.low:.0%}, {iv.high:.0%}]" if iv is not None and iv.n > 1 else ""
    fell = 1 - claim.value
    sentence = (
        f"Both are true: unpoisoned prompts do fail here, keeping {claim.value:.0%}{span} of their "
        f"clean accuracy (a {fell:.0%} loss, which the Story shows), but the target for "
        f"“implosion” is stricter ({claim.target})"
    )
    sentence += f", and this {steps}-step run misses it." if steps else ", and this run misses it."
    try:
        longer = claims.get("longer_training")
    except KeyError:
        longer = None
    if longer is not None and longer.holds and longer.value is not None:
        sentence += (
            f" With longer fine-tuning the pack's own check reaches {longer.value:.0%} of clean "
            f"(✓ “{longer.title}”)."
        )
    return sentence
