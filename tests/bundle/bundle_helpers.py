"""Test helper (import as ``bundle_helpers``): a model folder whose files are their own names."""

from __future__ import annotations

from gliotype.bundle import write_manifest
from gliotype.layout import ModelDir


def fake_bundle(tmp_path, name: str = "model") -> ModelDir:
    """Every file a model folder needs (each holding its relative name) and ``manifest.json``."""
    model = ModelDir(tmp_path / name)
    for rel in model.required():
        path = model.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    write_manifest(model, "abc")
    return model
