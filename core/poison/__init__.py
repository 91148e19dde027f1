"""Poisoning: builders for dirty-label and Nightshade-style poisons (:mod:`.builders`), the plan of
a run from the UI (:mod:`.plan`) and poisoning of real datasets (:mod:`.real`)."""
