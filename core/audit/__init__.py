"""The AD audit: how hard a dataset or a planned attack is to align, and what it will do.

Public API::

    audit = Audit(pairs, embedder, calibration=cal)   # pairs: AuditPairs (or raw, embedded here)
    audit.find_issues() / audit.report() -> AuditReport   # health, concepts, overlaps, flagged,
                                                           # prediction
    from_embeddings(FILE) / from_pack(DIR, c_p) / folder_records / manifest_records /
        embed_records(...) / planned_pairs(PlannedAttack(c_p, seed, method), pack_config, scale)
    calibration_for(model, packs) -> OutcomeCalibration   # AD → outcome, refuses to extrapolate
    alignment_graph(audit) / write_graphml(audit, FILE)   # networkx, for Gephi / Cytoscape
"""

from core.audit.audit import Audit, ConceptPairs, concept_pair_structure
from core.audit.calibration import (
    OutcomeCalibration,
    OutcomeFit,
    calibration_for,
    calibration_packs,
    fit_calibration,
    fit_outcome,
)
from core.audit.graph import alignment_graph, write_graphml
from core.audit.pairs import (
    AuditPairs,
    embed_records,
    folder_records,
    from_embeddings,
    from_pack,
    label_captions,
    manifest_records,
)
from core.audit.plan import PlannedAttack, planned_pairs
from core.audit.result import AuditReport, ConceptHealth, FlaggedPair, Overlap, Prediction

__all__ = [
    "Audit",
    "AuditPairs",
    "AuditReport",
    "ConceptHealth",
    "ConceptPairs",
    "FlaggedPair",
    "OutcomeCalibration",
    "OutcomeFit",
    "Overlap",
    "PlannedAttack",
    "Prediction",
    "alignment_graph",
    "calibration_for",
    "calibration_packs",
    "concept_pair_structure",
    "embed_records",
    "fit_calibration",
    "fit_outcome",
    "folder_records",
    "from_embeddings",
    "from_pack",
    "label_captions",
    "manifest_records",
    "planned_pairs",
    "write_graphml",
]
