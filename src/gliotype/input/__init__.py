"""Cohort input (paper section 4.1 data): scan a cohort folder into a manifest, attach
IDH labels, read and validate every case before any processing.

The rules on a patient's ID and tumor mask (:mod:`gliotype.input.rules`) are the ones
``gliotype predict`` and preprocessing apply too.
"""

from gliotype.input.labels import attach_labels, id_key, parse_idh, read_labels
from gliotype.input.manifest import (
    IMAGE_COLUMNS,
    LAYOUTS,
    MANIFEST_COLUMNS,
    SEQUENCES,
    cohort_summary,
    detect_layout,
    has_fa,
    is_blank,
    patient_id_from_name,
    read_manifest,
    scan_cohort,
    write_manifest,
)
from gliotype.input.rules import KNOWN_LABELS, check_patient_id, check_tumor_mask
from gliotype.input.validate import CaseReport, check_case, validate_case, validate_manifest, validation_table
from gliotype.input.volumes import load_volume

__all__ = [
    "CaseReport",
    "IMAGE_COLUMNS",
    "KNOWN_LABELS",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "SEQUENCES",
    "attach_labels",
    "check_case",
    "check_patient_id",
    "check_tumor_mask",
    "cohort_summary",
    "detect_layout",
    "id_key",
    "has_fa",
    "is_blank",
    "load_volume",
    "parse_idh",
    "patient_id_from_name",
    "read_labels",
    "read_manifest",
    "scan_cohort",
    "validate_case",
    "validate_manifest",
    "validation_table",
    "write_manifest",
]
