"""Where an MHA or NRRD file keeps its voxels, read from its text header before any voxel is.

:func:`raw_voxels` returns the file and byte offset of uncompressed voxel data (attached
or in a detached data file), so :func:`gliotype.input.load_volume` can compare the bytes a
header declares with the bytes the file holds. Anything else (compressed data, file
lists, an unusual header) returns None: the check is skipped and SimpleITK's reader has
the last word, its memory bounded by the voxel limit.
"""

from __future__ import annotations

from pathlib import Path

#: A text header longer than this is not parsed (no size check).
MAX_HEADER_BYTES = 1 << 16


def raw_voxels(path: Path) -> tuple[Path, int] | None:
    """``(file, offset)`` of the uncompressed voxels of an MHA/MHD or NRRD/NHDR file, else None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(MAX_HEADER_BYTES)
        if path.name.lower().endswith((".mha", ".mhd")):
            return _metaimage(path, head)
        return _nrrd(path, head)
    except (OSError, ValueError):
        return None


def _lines(head: bytes):
    """``(line, offset after it)`` of each complete line of ``head``."""
    start = 0
    while (end := head.find(b"\n", start)) >= 0:
        yield head[start:end].rstrip(b"\r").decode("latin-1"), end + 1
        start = end + 1


def _detached(path: Path, name: str, offset: int) -> tuple[Path, int] | None:
    """A single detached data file next to the header (not a list or a file pattern)."""
    if not name or offset < 0 or "%" in name or " " in name or name.upper().startswith("LIST"):
        return None
    return path.parent / name, offset


def _metaimage(path: Path, head: bytes) -> tuple[Path, int] | None:
    """MetaImage: ``Key = Value`` lines, the last one ``ElementDataFile`` (``LOCAL``: the voxels follow)."""
    fields: dict[str, str] = {}
    for line, after in _lines(head):
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            if fields.get("CompressedData", "False").lower() == "true":
                return None
            if value.strip() == "LOCAL":
                return path, after
            return _detached(path, value.strip(), int(fields.get("HeaderSize", 0)))
    return None


def _nrrd(path: Path, head: bytes) -> tuple[Path, int] | None:
    """NRRD: ``field: value`` lines up to a blank line, after which attached voxels follow."""
    fields: dict[str, str] = {}
    for line, after in _lines(head):
        if not line:
            break
        key, sep, value = line.partition(":")
        if sep and not value.startswith("="):  # "key:=value" pairs are not fields
            fields[key.strip().lower().replace(" ", "")] = value.strip()
    else:
        if not path.name.lower().endswith(".nhdr"):
            return None  # no end of header within MAX_HEADER_BYTES
        after = len(head)
    if fields.get("encoding", "").lower() != "raw" or int(fields.get("lineskip", 0)) != 0:
        return None
    skip = int(fields.get("byteskip", 0))
    name = fields.get("datafile")
    if name is not None:
        return _detached(path, name, skip)
    return (path, after + skip) if skip >= 0 else None


__all__ = ["MAX_HEADER_BYTES", "raw_voxels"]
