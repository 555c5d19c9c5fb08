"""Cohort input (paper section 4.1 data): scan a cohort folder into a manifest, attach
IDH labels, read and validate every case before any processing.

The rules on a patient's ID, voxel values and tumor mask (:mod:`gliotype.input.rules`) and
the one image reader (:func:`load_volume`) are the ones ``gliotype predict`` and
preprocessing apply too.
"""

from gliotype.input.labels import attach_labels, id_key, parse_idh, read_labels
from gliotype.input.layouts import LAYOUTS, detect_layout, patient_id_from_name
from gliotype.input.manifest import (
    IMAGE_COLUMNS,
    MANIFEST_COLUMNS,
    SEQUENCES,
    cohort_summary,
    has_fa,
    is_blank,
    read_manifest,
    scan_cohort,
    write_manifest,
)
from gliotype.input.rules import (
    KNOWN_LABELS,
    MAX_VOXELS,
    REFERENCE_ORDER,
    InputRules,
    check_finite,
    check_patient_id,
    check_tumor_mask,
    nonfinite_note,
    present_sequences,
    reference_sequence,
)
from gliotype.input.validate import CaseReport, check_case, validate_case, validate_manifest, validation_table
from gliotype.input.volumes import load_volume

__all__ = [
    "CaseReport",
    "IMAGE_COLUMNS",
    "InputRules",
    "KNOWN_LABELS",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "MAX_VOXELS",
    "REFERENCE_ORDER",
    "SEQUENCES",
    "attach_labels",
    "check_case",
    "check_finite",
    "check_patient_id",
    "check_tumor_mask",
    "cohort_summary",
    "detect_layout",
    "id_key",
    "has_fa",
    "is_blank",
    "load_volume",
    "nonfinite_note",
    "parse_idh",
    "patient_id_from_name",
    "present_sequences",
    "read_labels",
    "read_manifest",
    "reference_sequence",
    "scan_cohort",
    "validate_case",
    "validate_manifest",
    "validation_table",
    "write_manifest",
]
