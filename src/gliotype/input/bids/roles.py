"""Which BIDS file is which gliotype role, and which one is kept when a case has several.

Raw dataset, ``anat/`` (NIfTI, magnitude images: no ``part-`` entity or ``part-mag``):

- ``t1``: ``*_T1w`` without a ``ce-`` entity;
- ``t1c``: ``*_ce-<agent>_T1w``, any agent (``ce-gadolinium``, ``ce-Gd``...), or
  ``*_acq-<label>_T1w`` whose label says contrast (:data:`CONTRAST_ACQ`: datasets named
  before the ``ce-`` entity existed);
- ``t2``: ``*_T2w``; ``flair``: ``*_FLAIR``.

Derivatives (any pipeline folder under ``derivatives/`` but gliotype's own outputs), in
the native space of the raw images (no ``space-`` entity, or ``space-orig`` / ``-T1w`` /
``-individual``):

- ``mask``: ``*_desc-<tumor>_dseg``, ``*_label-<tumor>_mask`` or ``*_label-<tumor>_dseg``
  (``<tumor>``: :data:`TUMOR_WORDS`); else a plain ``*_dseg`` (no ``desc-`` or
  ``label-``), except from the anatomical pipelines of :data:`TISSUE_PIPELINES`, whose
  plain ``_dseg`` is a grey/white-matter segmentation;
- ``fa`` (raw ``dwi/`` too): a name with ``param-FA`` (``*_model-DTI_param-FA_dwimap``),
  ``desc-FA`` or the suffix ``FA``.

Several files for one role (runs, acquisitions, reconstructions, several pipelines): the
best-ranked name is kept (a tumour-named mask before a plain ``_dseg``), then the highest
``run-`` (a repeated scan usually replaces a failed one), then the first name in sorted
order; the scanner warns naming the files by their BIDS names (:func:`choose`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``acq-`` labels of a ``*_T1w`` that mark a contrast-enhanced T1 (compared in lower case).
CONTRAST_ACQ = ("ce", "gd", "gad", "gado", "gadolinium", "contrast", "postcontrast", "postgd")
#: ``desc-`` / ``label-`` values that name a tumour segmentation (compared in lower case).
TUMOR_WORDS = ("tumor", "tumour", "glioma")
#: ``space-`` values of a derivative in the raw images' own space (no ``space-`` entity too).
NATIVE_SPACES = ("orig", "T1w", "individual")
#: Pipelines (derivative folder name or ``GeneratedBy`` name, lower case, a prefix) whose plain
#: ``*_dseg`` is a tissue segmentation, never a tumour mask.
TISSUE_PIPELINES = ("fmriprep", "smriprep", "freesurfer", "fastsurfer", "qsiprep", "mriqc", "synthseg", "aslprep")
#: Image file endings of BIDS.
NIFTI = (".nii", ".nii.gz")
#: The BIDS suffix of each sequence role (t1 and t1c: a T1w without and with contrast).
SEQUENCE_SUFFIX = {"t1": "T1w", "t1c": "T1w", "t2": "T2w", "flair": "FLAIR"}


@dataclass(frozen=True)
class Candidate:
    """A file found for a role: its path, BIDS name, entities and rank (lower is better)."""

    path: str
    name: str
    entities: dict
    rank: int = 0

    @property
    def run(self) -> int:
        try:
            return int(self.entities.get("run") or 0)
        except (TypeError, ValueError):
            return 0


def _lower(entities: dict, key: str) -> str:
    return str(entities.get(key) or "").lower()


def sequence_role(entities: dict) -> str | None:
    """The sequence role (t1, t1c, t2, flair) of a raw ``anat/`` image's entities, else None."""
    if entities.get("extension") not in NIFTI or entities.get("datatype") != "anat":
        return None
    if _lower(entities, "part") not in ("", "mag"):  # phase, real or imaginary parts are no images to read
        return None
    suffix = entities.get("suffix")
    if suffix == "T1w":
        contrast = entities.get("ceagent") or _lower(entities, "acquisition") in CONTRAST_ACQ
        return "t1c" if contrast else "t1"
    return {"T2w": "t2", "FLAIR": "flair"}.get(suffix)


def is_native(entities: dict) -> bool:
    """A derivative in the raw images' own space (no ``space-`` entity or a native one)."""
    space = entities.get("space")
    return not space or space in NATIVE_SPACES


def mask_rank(entities: dict, pipeline: tuple[str, ...]) -> int | None:
    """The rank of a derivative file as a tumour mask (0 tumour-named, 1 a plain ``_dseg``), else None.

    ``pipeline``: the names of its derivative dataset (folder name, ``GeneratedBy`` names).
    """
    if entities.get("extension") not in NIFTI or not is_native(entities):
        return None
    suffix, desc, label = entities.get("suffix"), _lower(entities, "desc"), _lower(entities, "label")
    if (suffix == "dseg" and (desc in TUMOR_WORDS or label in TUMOR_WORDS)) or (suffix == "mask" and label in TUMOR_WORDS):
        return 0
    tissue = any(name.lower().startswith(TISSUE_PIPELINES) for name in pipeline)
    if suffix == "dseg" and not desc and not label and not tissue:
        return 1
    return None


def is_fa(name: str, entities: dict) -> bool:
    """An FA map: ``param-FA``, ``desc-FA`` or the suffix ``FA`` in its BIDS name, native space."""
    if entities.get("extension") not in NIFTI or not is_native(entities):
        return False
    stem = name[: -len(entities["extension"])]
    parts = [p.lower() for p in stem.split("_")]
    return parts[-1] == "fa" or "param-fa" in parts or "desc-fa" in parts


def choose(candidates: list[Candidate]) -> tuple[Candidate, list[Candidate]]:
    """The file kept for a role and the ones left out: best rank, then highest run, then first name."""
    ordered = sorted(candidates, key=lambda c: (c.rank, -c.run, c.name))
    return ordered[0], ordered[1:]


__all__ = ["CONTRAST_ACQ", "Candidate", "NATIVE_SPACES", "NIFTI", "SEQUENCE_SUFFIX", "TISSUE_PIPELINES",
           "TUMOR_WORDS", "choose", "is_fa", "is_native", "mask_rank", "sequence_role"]
