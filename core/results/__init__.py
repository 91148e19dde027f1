"""Results: the pack format and reader (:mod:`.pack`), the pack writer (:mod:`.write`), synthetic
packs for tests (:mod:`.synthetic`), image grids (:mod:`.grid`) and run bundles (:mod:`.export`)."""
