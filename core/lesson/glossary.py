"""Plain words: one definition per symbol, in the words of the Home story. The app's hover help,
its glossary and the printed handout all read this one table."""

from __future__ import annotations

GLOSSARY: dict[str, str] = {
    "C_P": "C_P: how many concepts the attacker poisoned (0 = the clean baseline).",
    "AD": "AD (alignment difficulty): how hard it is to map captions onto images; "
    "AD = α·D_fea + (1−α)·D_stru. Higher = more contradictory training pairs.",
    "D_fea": "D_fea (feature term): how far each caption is from its own image "
    "(1 − their rescaled cosine, averaged over pairs).",
    "D_stru": "D_stru (structure term): how much the two graphs disagree: images that look "
    "alike with captions that do not, or the reverse.",
    "α": "α: the weight of D_fea in AD (0.8 by default; 1 − α weighs D_stru).",
    "incoherence": "incoherence: how unsure a judge is about what a generated image shows "
    "(entropy of its guess; 0 = clear picture, 1 = noise).",
    "attack success": "attack success: share of poisoned prompts whose images show the "
    "attacker's target concept instead.",
    "related": "related: not poisoned, but shares at least two attribute words (size, colour, "
    "shape) with a poisoned concept.",
    "unrelated": "unrelated: not poisoned and shares at most one word with any poisoned concept.",
    "poisoned": "poisoned (×, vermillion): its captions are also paired with images of a target.",
}

__all__ = ["GLOSSARY"]
