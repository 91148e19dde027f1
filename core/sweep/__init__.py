"""The implosion sweep: configuration and driver (:mod:`.driver`), one level (:mod:`.level`),
parallel level workers (:mod:`.parallel`), the real-model sweep (:mod:`.real` and friends), the
poison-count sweep (:mod:`.budget`) and the single poisoning run (:mod:`.experiment`)."""
