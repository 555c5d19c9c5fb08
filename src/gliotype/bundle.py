"""The model bundle's manifest: what makes a model folder (``RUNDIR/model/``) trustworthy.

``manifest.json`` lists the sha256 of every file of the folder (the layout is
:class:`gliotype.layout.ModelDir`), with the gliotype version and the config hash. The
export writes it last (:func:`write_manifest`); loading checks it first
(:func:`verify_manifest`): a modified, missing or unlisted required file stops the
loading with one line naming the folder and the file, never a path above it.
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
    """``manifest.json`` with the sha256 of every other file of ``folder`` (written last)."""
    model = ModelDir.of(folder)
    files = {p.relative_to(model.root).as_posix(): sha256_file(p) for p in sorted(model.root.rglob("*"))
             if p.is_file() and p != model.manifest}
    atomic_write(model.manifest, json.dumps({"gliotype_version": __version__, "config_hash": config_hash,
                                             "files": files}, indent=2))
    return model.manifest


def verify_manifest(folder: str | Path | ModelDir) -> dict:
    """Check every file listed in ``manifest.json`` (present, same sha256) and the required ones."""
    model = ModelDir.of(folder)
    name = model.root.name
    if not model.root.is_dir():
        raise ModelError(f"model folder {name} not found")
    if not model.manifest.is_file():
        raise ModelError(f"model folder {name} has no manifest.json (not a gliotype model folder?)")
    try:
        manifest = json.loads(model.manifest.read_text())
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"model folder {name}: manifest.json is not readable") from None
    missing = [f for f in model.required() if f not in files]
    if missing:
        raise ModelError(f"model folder {name}: manifest.json lists no {missing[0]} (incomplete export)")
    for rel, digest in sorted(files.items()):
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ModelError(f"model folder {name}: manifest.json names a file outside the folder")
        p = model.root / rel
        if not p.is_file():
            raise ModelError(f"model folder {name}: {rel} is missing")
        if sha256_file(p) != digest:
            raise ModelError(f"model folder {name}: {rel} does not match its sha256 in manifest.json "
                             "(modified or corrupted); re-export the model")
    return manifest


def model_id(folder: str | Path | ModelDir) -> str:
    """First 16 hex digits of the sha256 of ``manifest.json``: names one exported model."""
    return sha256_file(ModelDir.of(folder).manifest)[:16]


__all__ = ["ModelError", "model_id", "verify_manifest", "write_manifest"]
