"""The model bundle (``RUNDIR/model/``, the folder ``gliotype predict`` loads): what makes it
trustworthy.

- :mod:`~gliotype.bundle.manifest`: ``manifest.json``, the sha256 of every file (a
  checksum: catches corruption and accidental edits);
- :mod:`~gliotype.bundle.keys`: the Ed25519 key pair of a model's author;
- :mod:`~gliotype.bundle.signature`: ``manifest.sig``, the author's signature of the
  manifest (catches an edited file whose manifest was re-hashed, and a re-signed folder).

The layout of the folder is :class:`gliotype.layout.ModelDir`.
"""

from gliotype.bundle.keys import KeyPair, SigningKeyError, generate_key_pair, key_id, load_private_key, load_public_key
from gliotype.bundle.manifest import (
    ModelError,
    changed_file,
    manifest_bytes,
    model_id,
    parse_manifest,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from gliotype.bundle.signature import SignatureError, Signed, sign_bundle, stale_signature, verify_bundle

__all__ = [
    "KeyPair",
    "ModelError",
    "SignatureError",
    "Signed",
    "SigningKeyError",
    "changed_file",
    "generate_key_pair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "manifest_bytes",
    "model_id",
    "parse_manifest",
    "read_manifest",
    "sign_bundle",
    "stale_signature",
    "verify_bundle",
    "verify_manifest",
    "write_manifest",
]
