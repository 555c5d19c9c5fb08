"""One chosen DICOM series to one NIfTI file with dcm2niix, cached and anonymous.

:func:`convert_series` writes ``<convert_dir>/<patient_id>/<role>.nii.gz`` and, beside it,
``<role>.json`` (the series number, its image count and the cache key; never a path, a UID
or header text); :func:`copy_nifti` does the same for the patient's NIfTI tumour mask
(``mask.nii.gz``), so the manifest names no input path.

dcm2niix is the one of the ``dcm2niix`` Python wheel (:func:`dcm2niix_binary`), run on links
to the series' files only, with fixed output names (``-f series<N>``, no header field), no
BIDS sidecar (``-b n``; ``-ba y`` should one be asked for), an empty NIfTI comment (``-c ""``),
gzip (``-z y``) and the user's defaults file ignored (``-g i``). Then the NIfTI header's
free-text fields (descrip, aux_file, intent_name, db_name, data_type) are cleared and header
extensions dropped, so no header text of the DICOM files reaches the NIfTI.

The conversion happens in a hidden temporary folder beside the target and is renamed into
place: a target is complete or absent. It is reused while the key is unchanged: a sha256 of
the sorted (path relative to the patient's folder, size, mtime_ns) of the series' files,
the dcm2niix version and :data:`CONVERT_VERSION`. A failure is a :class:`ConversionError`
with one line (the caller names the patient and the series).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nibabel as nib

from gliotype.errors import GliotypeError
from gliotype.input.dicom.series import Series
from gliotype.utils.io import atomic_write, make_folder
from gliotype.utils.records import holds_key

#: Bump when the conversion's flags or clean-up change: every cached conversion is redone.
CONVERT_VERSION = 1
#: Longest dcm2niix run (s) for one series before it counts as failed.
TIMEOUT_S = 600
#: The NIfTI-1 header's free-text fields, cleared after conversion.
TEXT_FIELDS = ("descrip", "aux_file", "intent_name", "db_name", "data_type")
#: dcm2niix's exit codes (its documentation) that say more than "failed".
_EXIT_CODES = {2: "no DICOM image it could convert", 4: "a corrupt DICOM file", 8: "only part of the images converted",
               10: "images it cannot convert together (incompatible)"}
_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"]+")


class ConversionError(Exception):
    """dcm2niix could not turn a series into one 3D NIfTI volume (the message: one line)."""


def dcm2niix_binary() -> str:
    """The dcm2niix executable of the ``dcm2niix`` wheel (never another one on the PATH)."""
    try:
        import dcm2niix
    except ImportError:
        raise GliotypeError("DICOM input needs the dcm2niix package: pip install 'dcm2niix>=1.0.20240202'") from None
    binary = getattr(dcm2niix, "bin", None)
    if not binary or not Path(binary).is_file():
        raise GliotypeError("the dcm2niix package has no executable for this machine; reinstall it "
                            "(pip install --force-reinstall dcm2niix)")
    return str(binary)


def _dcm2niix_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dcm2niix")
    except PackageNotFoundError:
        return "unknown"


def files_key(files, base: str | Path) -> str:
    """The cache key of converting ``files``: their paths relative to ``base`` (the patient's
    folder), sizes and modification times, the dcm2niix version, :data:`CONVERT_VERSION`."""
    base = Path(base)
    listing = []
    for f in files:
        st = Path(f).stat()
        listing.append((os.path.relpath(f, base), st.st_size, st.st_mtime_ns))
    blob = json.dumps({"files": sorted(listing), "dcm2niix": _dcm2niix_version(), "version": CONVERT_VERSION})
    return hashlib.sha256(blob.encode()).hexdigest()


def series_key(series: Series, base: str | Path) -> str:
    """The cache key of converting ``series`` (:func:`files_key` of its files)."""
    return files_key(series.files, base)


def _cached(target: Path, record: Path, key: str) -> bool:
    return target.is_file() and holds_key(record, key)


def _name(series: Series) -> str:
    """dcm2niix's output name: fixed, from the series number only (never header text)."""
    return f"series{series.number}" if series.number is not None and series.number >= 0 else "series"


def _problem(result: subprocess.CompletedProcess, work: Path) -> str:
    """One line from a failed dcm2niix run: what its exit code means and its first error line,
    without any path."""
    text = f"{result.stdout or ''}\n{result.stderr or ''}"
    errors = [ln.strip() for ln in text.splitlines() if ln.strip().lower().startswith("error")]
    what = _EXIT_CODES.get(result.returncode, f"exit code {result.returncode}")
    if errors:
        line = _PATH.sub("<file>", errors[0].replace(str(work), ""))
        what += f": {line[:120]}"
    return what


def _link(series: Series, folder: Path) -> None:
    """Links (copies where links are not allowed) to the series' files only, named by their order."""
    folder.mkdir()
    for i, f in enumerate(series.files):
        dst = folder / f"{i:05d}.dcm"
        try:
            os.symlink(f.resolve(), dst)
        except OSError:
            shutil.copyfile(f, dst)


def run_dcm2niix(series: Series, work: Path) -> Path:
    """Convert ``series`` inside the folder ``work``; the one NIfTI file it wrote."""
    inputs, outputs = work / "in", work / "out"
    _link(series, inputs)
    outputs.mkdir()
    cmd = [dcm2niix_binary(), "-g", "i", "-f", _name(series), "-z", "y", "-b", "n", "-ba", "y", "-c", "",
           "-d", "0", "-i", "n", "-w", "1", "-v", "0", "-o", str(outputs), str(inputs)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"dcm2niix took longer than {TIMEOUT_S} s") from None
    written = sorted(p for p in outputs.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    if result.returncode != 0:
        raise ConversionError(f"dcm2niix failed ({_problem(result, work)})")
    if not written:
        raise ConversionError("dcm2niix wrote no NIfTI file (no image it could convert)")
    if len(written) > 1:
        raise ConversionError(f"dcm2niix wrote {len(written)} volumes for one series (several echoes, "
                              "orientations or positions); name another series with --dicom-overrides")
    return written[0]


def clean_header(src: Path, dst: Path) -> None:
    """Write ``src`` to ``dst`` with the NIfTI free-text fields (:data:`TEXT_FIELDS`) empty and no
    header extension; voxels, affine and scaling unchanged."""
    img = nib.load(str(src))
    for name in TEXT_FIELDS:
        img.header[name] = b""
    img.header.extensions.clear()
    nib.save(img, str(dst))


def _record(target: Path) -> Path:
    return target.with_name(target.name.removesuffix(".nii.gz") + ".json")


def _publish(clean: Path, target: Path, record: Path, info: dict) -> None:
    """Move ``clean`` onto ``target``, then write its record (a stale record never vouches for it)."""
    record.unlink(missing_ok=True)
    os.replace(clean, target)
    atomic_write(record, json.dumps(info, indent=2))


def convert_series(series: Series, target: str | Path, base: str | Path) -> bool:
    """``series`` as the NIfTI file ``target`` (``<convert_dir>/<patient_id>/<role>.nii.gz``) with its
    record ``<role>.json`` beside; ``base``: the patient's folder (for the cache key).

    Returns True when an earlier conversion was reused. Raises :class:`ConversionError`.
    """
    target = Path(target)
    record = _record(target)
    key = series_key(series, base)
    if _cached(target, record, key):
        return True
    make_folder(target.parent)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        written = run_dcm2niix(series, work)
        clean = work / "clean.nii.gz"
        try:
            clean_header(written, clean)
        except Exception as exc:
            raise ConversionError(f"dcm2niix's output is not a readable NIfTI file ({type(exc).__name__})") from None
        _publish(clean, target, record, {"series_number": series.number, "images": series.slices, "key": key,
                                         "dcm2niix": _dcm2niix_version()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return False


def copy_nifti(source: str | Path, target: str | Path, base: str | Path) -> bool:
    """A NIfTI file of the patient's folder (the tumour mask) as ``target`` with the header's free
    text cleared (:func:`clean_header`), cached like a conversion; so the manifest names no input
    path. Returns True when an earlier copy was reused; an unreadable file raises :class:`ConversionError`."""
    source, target = Path(source), Path(target)
    record = _record(target)
    key = files_key([source], base)
    if _cached(target, record, key):
        return True
    make_folder(target.parent)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        clean = work / "clean.nii.gz"
        try:
            clean_header(source, clean)
        except Exception as exc:
            raise ConversionError(f"not a readable NIfTI file ({type(exc).__name__})") from None
        _publish(clean, target, record, {"source": "NIfTI file of the patient's folder", "key": key})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return False


__all__ = ["CONVERT_VERSION", "ConversionError", "TEXT_FIELDS", "clean_header", "convert_series",
           "copy_nifti", "dcm2niix_binary", "files_key", "run_dcm2niix", "series_key"]
