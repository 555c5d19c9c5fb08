"""The public naming conventions of a cohort folder (BraTS 2021, BraTS 2023 GLI, UCSF-PDGM):
which file is which patient's which role, and which convention a folder follows.

:func:`detect_layout` also recognises a BIDS dataset (:mod:`gliotype.input.bids`) and a
folder of DICOM studies (:mod:`gliotype.input.dicom`); :data:`LAYOUT_NAMES` are every
value of ``gliotype cohort scan --layout``. :func:`gliotype.input.manifest.scan_cohort` is
the one entry point that dispatches on them.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.errors import GliotypeError
from gliotype.input.manifest import IMAGE_COLUMNS, REQUIRED_COLUMNS
from gliotype.input.volumes import image_suffix
from gliotype.utils.logging import get_logger

log = get_logger("gliotype.input.manifest")  # the scan's messages, whichever module finds the files


@dataclass(frozen=True)
class Layout:
    """A naming convention: the file-name ending of each role (before ``.nii.gz``)."""

    name: str
    suffixes: dict[str, tuple[str, ...]]
    case_sensitive: bool = False

    def role_of(self, stem: str) -> tuple[str, str] | None:
        """(patient_id, role) when ``stem`` ends with one of the role endings."""
        text = stem if self.case_sensitive else stem.lower()
        for role, endings in self.suffixes.items():
            for end in endings:
                e = end if self.case_sensitive else end.lower()
                if text.endswith(e) and len(text) > len(e):
                    return stem[: len(stem) - len(e)], role
        return None


LAYOUTS: dict[str, Layout] = {
    "brats2021": Layout("brats2021", {
        "t1": ("_t1",), "t1c": ("_t1ce", "_t1gd"), "t2": ("_t2",), "flair": ("_flair",),
        "mask": ("_seg",), "fa": ("_fa",),
    }),
    "brats2023": Layout("brats2023", {
        "t1": ("-t1n",), "t1c": ("-t1c",), "t2": ("-t2w",), "flair": ("-t2f",),
        "mask": ("-seg",), "fa": ("-fa",),
    }),
    "ucsf-pdgm": Layout("ucsf-pdgm", {
        "t1": ("_T1",), "t1c": ("_T1c",), "t2": ("_T2",), "flair": ("_FLAIR",),
        "mask": ("_tumor_segmentation",), "fa": ("_DTI_eddy_FA",),
    }, case_sensitive=True),
}
LAYOUT_NAMES = ("auto", *LAYOUTS, "bids", "csv", "dicom")


def _image_files(root: Path) -> list[Path]:
    """Every supported image under ``root`` (sorted, hidden files and folders skipped)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and image_suffix(name):
                files.append(Path(dirpath) / name)
    return files


def _stem(path: Path) -> str:
    return path.name[: len(path.name) - len(image_suffix(path.name) or "")]


def patient_id_from_name(path: str | Path, role: str | None = None) -> str | None:
    """The patient ID in an image file's name under a known layout (``P1_t1ce.nii.gz`` -> ``P1``)
    when the name is that of ``role`` (any role when None); else None."""
    stem = _stem(Path(str(path)))
    for layout in LAYOUTS.values():
        hit = layout.role_of(stem)
        if hit and (role is None or hit[1] == role):
            return hit[0]
    return None


def _match(files: list[Path], layout: Layout) -> dict[str, dict[str, list[Path]]]:
    found: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for f in files:
        hit = layout.role_of(_stem(f))
        if hit:
            pid, role = hit
            found[pid][role].append(f)
    return found


def _complete(found: dict[str, dict[str, list[Path]]]) -> int:
    return sum(all(r in roles for r in REQUIRED_COLUMNS[1:]) for roles in found.values())


def detect_layout(root: str | Path) -> str:
    """The layout whose naming gives the most complete patients under ``root``; ``dicom`` when
    none does and DICOM files (``DICM`` at byte 128) lie under it."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    from gliotype.input.bids import is_bids

    if is_bids(root):
        return "bids"
    files = _image_files(root)
    scores = {name: _complete(_match(files, lay)) for name, lay in LAYOUTS.items()}
    best = max(scores.values()) if scores else 0
    if best == 0:
        from gliotype.input.dicom.series import holds_dicom

        if root.is_dir() and holds_dicom(root):
            return "dicom"
        raise GliotypeError(
            f"no complete case found under {root.name or root}: expected per patient T1, T1c, T2, FLAIR and a mask "
            "named as in BraTS 2021 (<id>_t1.nii.gz, _t1ce, _t2, _flair, _seg), BraTS 2023 (<id>-t1n.nii.gz, "
            "-t1c, -t2w, -t2f, -seg) or UCSF-PDGM (<id>_T1.nii.gz, _T1c, _T2, _FLAIR, _tumor_segmentation), "
            "or DICOM studies (one folder per patient); a BIDS dataset needs its dataset_description.json "
            "(or --layout bids); for other names give a CSV with --layout csv")
    winners = [n for n, s in scores.items() if s == best]
    if len(winners) > 1:
        raise GliotypeError(f"layout is ambiguous ({' and '.join(winners)} both fit); choose one with --layout")
    return winners[0]


def scan_layout(root: str | Path, layout: str) -> pd.DataFrame:
    """Find the files of every patient under ``root`` named by ``layout``.

    A patient missing a required file is kept with an empty entry (validation then
    rejects it with the reason); two files for one role are reported and the patient
    kept with that role empty.
    """
    root = Path(root)
    found = _match(_image_files(root), LAYOUTS[layout])
    rows = []
    for pid in sorted(found):
        roles = found[pid]
        row: dict = {"patient_id": pid}
        for role in IMAGE_COLUMNS:
            paths = roles.get(role, [])
            if len(paths) > 1:
                log.warning("patient %s: %d %s files (%s); none used", pid, len(paths), role,
                            ", ".join(p.name for p in paths))
                row[role] = ""
            else:
                row[role] = str(paths[0].resolve()) if paths else ""
        missing = [r for r in REQUIRED_COLUMNS[1:] if not row[r]]
        if missing:
            log.warning("patient %s: no %s file found", pid, ", ".join(missing))
        rows.append(row)
    df = pd.DataFrame(rows, columns=["patient_id", *IMAGE_COLUMNS])
    for col in ("idh", "age", "site", "sex"):
        df[col] = np.nan
    return df


__all__ = ["LAYOUTS", "LAYOUT_NAMES", "Layout", "detect_layout", "patient_id_from_name", "scan_layout"]
