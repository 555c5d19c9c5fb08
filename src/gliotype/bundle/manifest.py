"""The model bundle's manifest: what makes a model folder (``RUNDIR/model/``) consistent.

``manifest.json`` lists the sha256 of every file of the folder (the layout is
:class:`gliotype.layout.ModelDir`), with the gliotype version and the config hash. The
export writes it last (:func:`write_manifest`); loading checks it first
(:func:`verify_manifest`): a modified, missing or unlisted required file stops the
loading with one line naming the folder and the file, never a path above it.

The manifest is a checksum, not a signature: whoever edits a file can re-hash it. That
``manifest.json`` is the one the model's author published is what its signature
(``manifest.sig``, :mod:`gliotype.bundle.signature`) proves.
"""

from __future__ import annotations

import json
from pathlib import Path

from gliotype import __version__
from gliotype.errors import GliotypeError
from gliotype.layout import ModelDir
from gliotype.utils.io import atomic_write, sha256_file


class ModelError(GliotypeError):
    """A model folder that is incomplete, modified or unreadable."""


def write_manifest(folder: str | Path | ModelDir, config_hash: str) -> Path:
    """``manifest.json`` with the sha256 of every other file of ``folder`` (written last).

    A signature of an earlier manifest (``manifest.sig``) is removed first: the folder is
    then plainly unsigned until it is signed again.
    """
    model = ModelDir.of(folder)
    model.signature.unlink(missing_ok=True)
    files = {p.relative_to(model.root).as_posix(): sha256_file(p) for p in sorted(model.root.rglob("*"))
             if p.is_file() and p not in (model.manifest, model.signature)}
    atomic_write(model.manifest, json.dumps({"gliotype_version": __version__, "config_hash": config_hash,
                                             "files": files}, indent=2))
    return model.manifest


def manifest_bytes(folder: str | Path | ModelDir) -> bytes:
    """The bytes of ``manifest.json`` (one line naming the folder when it or its manifest is missing)."""
    model = ModelDir.of(folder)
    if not model.root.is_dir():
        raise ModelError(f"model folder {model.root.name} not found")
    if not model.manifest.is_file():
        raise ModelError(f"model folder {model.root.name} has no manifest.json (not a gliotype model folder?)")
    return model.manifest.read_bytes()


def read_manifest(folder: str | Path | ModelDir) -> dict:
    """``manifest.json`` parsed, with every required file listed and no path outside the folder."""
    return parse_manifest(folder, manifest_bytes(folder))


def parse_manifest(folder: str | Path | ModelDir, data: bytes) -> dict:
    """:func:`read_manifest` of bytes already read (those a signature was checked on)."""
    model = ModelDir.of(folder)
    name = model.root.name
    try:
        manifest = json.loads(data)
        files = manifest["files"] = dict(manifest["files"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ModelError(f"model folder {name}: manifest.json is not readable") from None
    missing = [f for f in model.required() if f not in files]
    if missing:
        raise ModelError(f"model folder {name}: manifest.json lists no {missing[0]} (incomplete export)")
    for rel in files:
        if not isinstance(rel, str) or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ModelError(f"model folder {name}: manifest.json names a file outside the folder")
    return manifest


def changed_file(folder: str | Path | ModelDir, manifest: dict) -> tuple[str, str] | None:
    """The first listed file that is missing or whose bytes are not those of its sha256 in
    ``manifest``, as ``(relative name, "missing" or "changed")``; None when every file matches."""
    model = ModelDir.of(folder)
    for rel, digest in sorted(manifest["files"].items()):
        p = model.root / rel
        if not p.is_file():
            return rel, "missing"
        if sha256_file(p) != digest:
            return rel, "changed"
    return None


def verify_manifest(folder: str | Path | ModelDir) -> dict:
    """Check every file listed in ``manifest.json`` (present, same sha256) and the required ones."""
    model = ModelDir.of(folder)
    manifest = read_manifest(model)
    changed = changed_file(model, manifest)
    if changed is not None:
        rel, how = changed
        if how == "missing":
            raise ModelError(f"model folder {model.root.name}: {rel} is missing")
        raise ModelError(f"model folder {model.root.name}: {rel} does not match its sha256 in manifest.json "
                         "(modified or corrupted); re-export the model")
    return manifest


def model_id(folder: str | Path | ModelDir) -> str:
    """First 16 hex digits of the sha256 of ``manifest.json``: names one exported model."""
    return sha256_file(ModelDir.of(folder).manifest)[:16]


__all__ = ["ModelError", "changed_file", "manifest_bytes", "model_id", "parse_manifest", "read_manifest", "verify_manifest", "write_manifest"]
