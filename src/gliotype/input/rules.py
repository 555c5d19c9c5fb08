"""The rules every patient's input obeys, wherever it is read: the patient ID, the voxel values, the tumor mask.

One function each, one message each, used by the cohort validator
(:func:`gliotype.input.validate_case`), by ``gliotype predict`` and by preprocessing:

- :func:`check_patient_id`: the ID names the patient's folders, so it must be a
  usable folder name;
- :func:`check_finite`: NaN or infinite voxels of a sequence or FA reject the case, or
  are set to 0 when the user asks for it (``preprocess.nonfinite: zero``);
- :func:`check_tumor_mask`: finite, integer, known labels (:data:`KNOWN_LABELS`), not
  empty; returns the labels as uint8;
- :func:`present_sequences`: which of the four sequences a case has (a blank manifest cell is
  a missing sequence), at most ``input.missing_sequences`` missing; :func:`reference_sequence`:
  the first present one of :data:`REFERENCE_ORDER`, the native grid of the case and the
  registration's fallback moving image (docs/design.md point 37).

:class:`InputRules` carries the user's settings of these rules (and the voxel limit of
:func:`gliotype.input.load_volume`) from the config to every reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliotype.config.schema import InputConfig, PreprocessConfig
from gliotype.errors import CaseError, GliotypeError

#: Tumor mask labels: BraTS 1 necrotic/non-enhancing core, 2 edema, 4 enhancing
#: (3 is the enhancing label of BraTS 2023 and the old non-enhancing label). Kept as they are.
KNOWN_LABELS = frozenset({0, 1, 2, 3, 4})
#: Longest patient ID (it names folders and appears in every table and report).
MAX_ID_LENGTH = 64
#: A mask voxel farther than this from an integer is not a label.
LABEL_TOLERANCE = 1e-3
#: Voxels an image file may declare by default (config ``input.max_voxels``).
MAX_VOXELS: int = InputConfig.model_fields["max_voxels"].default
#: What to do with NaN or infinite voxels by default (config ``preprocess.nonfinite``).
NONFINITE: str = PreprocessConfig.model_fields["nonfinite"].default
#: Sequences a case may lack by default (config ``input.missing_sequences``): none.
MISSING_SEQUENCES: int = InputConfig.model_fields["missing_sequences"].default
#: The native grid of a case is its first present sequence in this order (t1c, as the
#: paper's co-registration, whenever it is there).
REFERENCE_ORDER: tuple[str, ...] = ("t1c", "t1", "flair", "t2")


@dataclass(frozen=True)
class InputRules:
    """The user's settings of the input rules: the voxel limit of an image file
    (``input.max_voxels``), the non-finite rule (``preprocess.nonfinite``: reject | zero) and
    how many sequences a case may lack (``input.missing_sequences``)."""

    max_voxels: int = MAX_VOXELS
    nonfinite: str = NONFINITE
    missing_sequences: int = MISSING_SEQUENCES

    @classmethod
    def of(cls, config) -> InputRules:
        """The rules of a :class:`~gliotype.config.schema.GliotypeConfig`."""
        return cls(int(config.input.max_voxels), str(config.preprocess.nonfinite),
                   int(config.input.missing_sequences))


def present_sequences(row, patient_id: str | None, allowed: int = MISSING_SEQUENCES, given: str = "in the manifest",
                      hint: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(present, missing)`` sequences of a case (each in :data:`SEQUENCES` order); ``row``: role ->
    file, a blank value (or no entry) is a missing sequence.

    More than ``allowed`` missing (``input.missing_sequences``) is a one-line :class:`CaseError`
    naming the patient and the missing roles (``given``: where the files were expected; ``hint``:
    appended to the rule, e.g. the option that overrides it).
    """
    from gliotype.input.manifest import SEQUENCES, is_blank  # manifest -> volumes -> rules

    missing = tuple(s for s in SEQUENCES if is_blank(row.get(s)))
    if len(missing) > allowed:
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + f" or {missing[-1]}"
        raise CaseError(patient_id, None, f"no {names} file {given} (input.missing_sequences allows "
                                          f"{allowed} missing sequence{'' if allowed == 1 else 's'}{hint})")
    return tuple(s for s in SEQUENCES if s not in missing), missing


def reference_sequence(present) -> str:
    """The first of :data:`REFERENCE_ORDER` in ``present``: the case's native grid (t1c when present)."""
    for role in REFERENCE_ORDER:
        if role in present:
            return role
    raise GliotypeError("a case needs at least one of t1, t1c, t2 and flair")


def check_patient_id(patient_id) -> str:
    """The patient ID, stripped of surrounding spaces, when it can name the patient's folder.

    It must be non-empty, printable, at most :data:`MAX_ID_LENGTH` characters, without
    ``/`` or ``\\`` and not ``.`` or ``..``; otherwise a :class:`GliotypeError`
    (``invalid patient id ...``).
    """
    pid = "" if patient_id is None else str(patient_id).strip()
    if (not pid or pid in (".", "..") or any(c in pid for c in "/\\") or not pid.isprintable()
            or len(pid) > MAX_ID_LENGTH):
        raise GliotypeError(f"invalid patient id {pid[:MAX_ID_LENGTH]!r}: it names the patient's folder, so use "
                            f"1 to {MAX_ID_LENGTH} printable characters without '/' or '\\' (not '.' or '..'), "
                            "e.g. letters, digits, '-', '_' and '.'")
    return pid


def check_finite(data: np.ndarray, patient_id: str | None, path: str | Path | None, role: str,
                 nonfinite: str = NONFINITE) -> tuple[np.ndarray, int]:
    """``data`` and its count of NaN or infinite voxels, under the rule ``nonfinite``.

    ``reject``: any such voxel is a one-line :class:`CaseError` naming the patient, ``path``
    and the count. ``zero``: they are set to 0 (a copy); the caller reports the count
    (:func:`nonfinite_note`).
    """
    if not np.issubdtype(data.dtype, np.floating):
        return data, 0
    bad = ~np.isfinite(data)
    count = int(np.count_nonzero(bad))
    if count and nonfinite != "zero":
        raise CaseError(patient_id, path, f"{role} has {count} NaN or infinite voxels "
                                          "(preprocess.nonfinite=zero would set them to 0)")
    return (np.where(bad, 0, data).astype(data.dtype) if count else data), count


def nonfinite_note(role: str, count: int) -> str:
    """The warning for ``count`` voxels of ``role`` set to 0 by ``preprocess.nonfinite: zero``."""
    return f"{role}: {count} NaN or infinite voxels set to 0 (preprocess.nonfinite=zero)"


def check_tumor_mask(mask, patient_id: str | None, path: str | Path | None) -> np.ndarray:
    """The tumor mask as uint8 labels, or a one-line :class:`CaseError` naming the patient and ``path``.

    ``mask``: the voxels (an array) or a nibabel image. A problem: NaN or infinite
    values, values farther than :data:`LABEL_TOLERANCE` from an integer, labels outside
    :data:`KNOWN_LABELS`, no tumor voxel.
    """
    raw = np.asanyarray(mask.dataobj if hasattr(mask, "dataobj") else mask)
    if np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_:
        rounded = raw
    else:
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        if bad:
            raise CaseError(patient_id, path, f"mask has {bad} NaN or infinite voxels")
        rounded = np.rint(raw)
        if np.any(np.abs(raw - rounded) > LABEL_TOLERANCE):
            raise CaseError(patient_id, path, "mask has non-integer values (expected labels 0, 1, 2, 3, 4)")
    values = np.unique(rounded).astype(np.int64)
    unknown = [int(v) for v in values if v not in KNOWN_LABELS]
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise CaseError(patient_id, path, f"mask has unknown label values {shown} (expected 0, 1, 2, 3, 4)")
    if not np.any(values > 0):
        raise CaseError(patient_id, path, "mask is empty (no tumor voxel)")
    return rounded.astype(np.uint8)


__all__ = ["InputRules", "KNOWN_LABELS", "MAX_ID_LENGTH", "MAX_VOXELS", "MISSING_SEQUENCES", "REFERENCE_ORDER",
           "check_finite", "check_patient_id", "check_tumor_mask", "nonfinite_note", "present_sequences",
           "reference_sequence"]
