"""A model folder verified and its configuration read, before anything heavy is loaded.

:func:`open_model` checks ``manifest.json`` (every file's sha256; with the author's public key
the signature too, :mod:`gliotype.bundle`) and reads ``config.yaml``. It imports no network
library, so ``gliotype predict`` can refuse a bad model folder, and start the patient's
preprocessing from the model's configuration (:mod:`gliotype.prediction.ahead`), before the
networks are loaded (:func:`gliotype.prediction.load_model`, which opens the folder with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from gliotype import __version__
from gliotype.bundle import ModelError, stale_signature, verify_bundle, verify_manifest
from gliotype.config import GliotypeConfig
from gliotype.config.loader import values_hash
from gliotype.errors import one_line
from gliotype.layout import ModelDir
from gliotype.utils.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class OpenedModel:
    """A verified model folder: its layout, manifest, configuration and signer (None: not checked)."""

    layout: ModelDir
    manifest: dict
    config: GliotypeConfig
    signed_by: str | None = None


def open_model(model_dir: str | Path | ModelDir, public_key: str | Path | None = None) -> OpenedModel:
    """Verify a model folder (``RUNDIR/model``) and read its configuration.

    ``public_key``: a PEM file of the model author's Ed25519 public key; the folder must then
    be signed with that key and unchanged since (:class:`gliotype.bundle.SignatureError`).
    Without it, a signed folder whose manifest changed since it was signed opens with a warning.
    An optional file present but not listed, or a ``config.yaml`` that is not a valid
    configuration or not the one the manifest hashed, is a :class:`ModelError`.
    """
    layout = ModelDir.of(model_dir)
    signed_by = None
    if public_key is not None:
        signed = verify_bundle(layout, public_key)
        manifest, signed_by = signed.manifest, signed.key_id
    else:
        manifest = verify_manifest(layout)
        if (problem := stale_signature(layout)) is not None:
            log.warning(problem)
    _refuse_unlisted(layout, manifest)
    folder = layout.root
    try:
        raw = yaml.safe_load(layout.config.read_text())
        config = GliotypeConfig.model_validate(raw)
    except Exception as exc:
        raise ModelError(f"model folder {folder.name}: config.yaml is not a valid configuration for gliotype "
                         f"{__version__} ({type(exc).__name__}: {one_line(exc, 120)})") from None
    # the hash of the file's own values (sections added to the schema later get defaults
    # when validated, which would change config_hash(config) but not what was trained)
    if manifest.get("config_hash") and values_hash(raw) != manifest["config_hash"]:
        raise ModelError(f"model folder {folder.name}: config.yaml does not match the config hash in manifest.json")
    return OpenedModel(layout, manifest, config, signed_by)


def _refuse_unlisted(layout: ModelDir, manifest: dict) -> None:
    """An optional file (``layout.optional()``: ``sequence_spread.json``, ``applicability.json``,
    ``MODEL_CARD.md``) present but not listed in the manifest was added after the export: a
    :class:`ModelError` (a listed one had its sha256 checked)."""
    for rel in layout.optional():
        if rel not in manifest["files"] and (layout.root / rel).exists():
            raise ModelError(f"model folder {layout.root.name}: {rel} is not listed in manifest.json "
                             "(added after the export); re-export the model")


__all__ = ["OpenedModel", "open_model"]
