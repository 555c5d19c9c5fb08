"""The DICOM series under one patient's folder: which files are DICOM (the ``DICM`` magic at
byte 128), their headers (pydicom, stopping before the pixels) and :class:`Series`, the files
and the few header values of one SeriesInstanceUID that the role heuristic reads.

Nothing here is written anywhere: the header values stay in memory, and only the series
number, the description and the counts reach the scan's table (:mod:`gliotype.input.dicom.scan`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The DICOM file format: a 128-byte preamble, then these four bytes.
DICOM_MAGIC = b"DICM"
MAGIC_OFFSET = 128
#: SOP classes of MR images that dcm2niix converts and the heuristic reads.
MR_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
}
#: A DICOMDIR (the index of a DICOM medium): a DICOM file, not an image; ignored.
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Header values of an enhanced (multi-frame) MR file live in its shared functional groups,
#: some under another name.
_ALIASES = {"EchoTime": ("EchoTime", "EffectiveEchoTime"), "InversionTime": ("InversionTime", "InversionTimes")}


def is_dicom(path: str | Path) -> bool:
    """A file in the DICOM file format (``DICM`` at byte 128); False for an unreadable file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(MAGIC_OFFSET)
            return fh.read(4) == DICOM_MAGIC
    except OSError:
        return False


def _walk(folder: Path):
    """Every non-hidden file under ``folder``, in sorted order."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def dicom_files(folder: str | Path) -> list[Path]:
    """Every DICOM file under ``folder`` (any depth, hidden files and folders skipped), sorted."""
    return [p for p in _walk(Path(folder)) if is_dicom(p)]


def holds_dicom(folder: str | Path) -> bool:
    """Whether ``folder`` holds at least one DICOM file (stops at the first)."""
    return any(is_dicom(p) for p in _walk(Path(folder)))


@dataclass
class Series:
    """One DICOM series (one SeriesInstanceUID) of a patient: its files and what the role
    heuristic reads (:func:`gliotype.input.dicom.identify.identify`)."""

    uid: str
    number: int | None
    description: str = ""
    protocol: str = ""
    sop_class: str = ""
    modality: str = ""
    image_type: tuple[str, ...] = ()
    contrast_agent: str = ""
    scanning_sequence: tuple[str, ...] = ()
    sequence_name: str = ""
    tr: float | None = None
    te: float | None = None
    ti: float | None = None
    slices: int = 0
    orientations: int = 1
    files: list[Path] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        """``series N`` (``series ?`` without a SeriesNumber)."""
        return f"series {self.number if self.number is not None else '?'}"

    @property
    def is_mr_image(self) -> bool:
        return self.sop_class in MR_IMAGE_CLASSES


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _multi(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split("\\")
    elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        items = [str(v) for v in value]
    else:
        items = [str(value)]
    return tuple(s.strip().upper() for s in items if s.strip())


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def header_value(ds, keyword: str):
    """``keyword``'s value in ``ds``, else in its shared functional groups (enhanced MR), else None."""
    names = _ALIASES.get(keyword, (keyword,))
    for name in names:
        value = ds.get(name)
        if value not in (None, ""):
            return value
    for group in ds.get("SharedFunctionalGroupsSequence", []) or []:
        for element in group:
            if element.VR != "SQ":
                continue
            for item in element.value:
                for name in names:
                    value = item.get(name)
                    if value not in (None, ""):
                        return value
    return None


def _sop_class(ds) -> str:
    """The SOP class UID of a file (its header's, else its file meta information's)."""
    meta = getattr(ds, "file_meta", None)
    return str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta is not None else ""))


def _series_number(ds) -> int | None:
    x = _number(ds.get("SeriesNumber"))
    return int(x) if x is not None else None


def _orientation(ds) -> tuple[float, ...] | None:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    try:
        return tuple(round(float(v), 2) for v in iop)
    except (TypeError, ValueError):
        return None


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """pydicom's warnings about odd header values quote the values (a patient's name, a date):
    keep them off the terminal and out of the logs while headers are read."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def read_series(folder: str | Path) -> tuple[list[Series], int]:
    """The series under ``folder`` (ordered by series number) and the count of DICOM files
    whose header could not be read (left out; the caller reports the count, never the names)."""
    with quiet_pydicom():
        return _read_series(Path(folder))


def _read_series(folder: Path) -> tuple[list[Series], int]:
    import pydicom

    by_uid: dict[str, list] = defaultdict(list)
    unreadable = 0
    for path in dicom_files(folder):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # a damaged file is one file's problem
            unreadable += 1
            continue
        if _sop_class(ds) == DICOMDIR_CLASS:
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:
            unreadable += 1
            continue
        by_uid[uid].append((path, ds))
    series = [_series(uid, items) for uid, items in by_uid.items()]
    series.sort(key=lambda s: (s.number if s.number is not None else 10**9, s.uid))
    return series, unreadable


def _series(uid: str, items: list) -> Series:
    """One :class:`Series` from its (path, header) pairs; the values of its first image."""
    items = sorted(items, key=lambda pd_: (_number(pd_[1].get("InstanceNumber")) or 0.0, str(pd_[0])))
    ds = items[0][1]
    frames = sum(int(_number(d.get("NumberOfFrames")) or 1) for _, d in items)
    orientations = {o for o in (_orientation(d) for _, d in items) if o is not None}
    return Series(
        uid=uid,
        number=_series_number(ds),
        description=_text(ds.get("SeriesDescription")),
        protocol=_text(ds.get("ProtocolName")),
        sop_class=_sop_class(ds),
        modality=_text(ds.get("Modality")).upper(),
        image_type=_multi(ds.get("ImageType")),
        contrast_agent=_text(header_value(ds, "ContrastBolusAgent")),
        scanning_sequence=_multi(header_value(ds, "ScanningSequence")),
        sequence_name=_text(header_value(ds, "SequenceName")),
        tr=_number(header_value(ds, "RepetitionTime")),
        te=_number(header_value(ds, "EchoTime")),
        ti=_number(header_value(ds, "InversionTime")),
        slices=frames,
        orientations=max(len(orientations), 1),
        files=[p for p, _ in items],
    )


__all__ = ["DICOM_MAGIC", "MR_IMAGE_CLASSES", "Series", "dicom_files", "header_value", "holds_dicom", "is_dicom",
           "read_series"]
