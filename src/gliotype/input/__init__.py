"""Cohort input (paper section 4.1 data): scan a cohort folder into a manifest, attach
IDH labels, read and validate every case before any processing."""

from gliotype.input.labels import attach_labels, id_key, parse_idh, read_labels
from gliotype.input.manifest import (
    IMAGE_COLUMNS,
    LAYOUTS,
    MANIFEST_COLUMNS,
    SEQUENCES,
    cohort_summary,
    detect_layout,
    is_blank,
    read_manifest,
    scan_cohort,
    write_manifest,
)
from gliotype.input.validate import CaseReport, validate_case, validate_manifest, validation_table
from gliotype.input.volumes import load_volume

__all__ = [
    "CaseReport",
    "IMAGE_COLUMNS",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "SEQUENCES",
    "attach_labels",
    "cohort_summary",
    "detect_layout",
    "id_key",
    "is_blank",
    "load_volume",
    "parse_idh",
    "read_labels",
    "read_manifest",
    "scan_cohort",
    "validate_case",
    "validate_manifest",
    "validation_table",
    "write_manifest",
]
