"""The signature of a model folder: ``manifest.sig``, an Ed25519 signature of ``manifest.json``.

``manifest.json`` lists the sha256 of every file of the folder, so signing it signs them
all: :func:`sign_bundle` checks every file against the manifest, then signs the
manifest's bytes with the author's private key (:mod:`gliotype.bundle.keys`).
:func:`verify_bundle` checks the signature with the author's public key, then re-hashes
every file against the signed manifest. What it refuses, in one line each
(:class:`SignatureError`):

- an unsigned folder (no ``manifest.sig``);
- a folder signed by another key (re-signed by someone else);
- a ``manifest.json`` changed after signing (e.g. a weight edited and re-hashed);
- a file changed (or missing) after signing.

``manifest.sig`` is JSON: the signature (base64) and, as hints for the messages only
(they are not signed), the key id and the sha256 of the manifest that was signed. The
signed bytes are ``SIGNED_PREFIX + manifest.json``, so the signature means nothing
outside gliotype. Without a public key, :func:`stale_signature` can still tell that a
signed folder's manifest changed since it was signed (a warning when loading).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from gliotype.bundle.keys import PUBLIC_KEY, key_id, load_private_key, load_public_key
from gliotype.bundle.manifest import ModelError, changed_file, manifest_bytes, parse_manifest
from gliotype.layout import ModelDir
from gliotype.utils.io import atomic_write

SIGNED_PREFIX = b"gliotype model manifest signature v1\n"
FORMAT = "gliotype-manifest-signature-1"


class SignatureError(ModelError):
    """A model folder whose signature is missing, of another key, or no longer matches its files."""


@dataclass(frozen=True)
class Signed:
    """A signature made or checked: the key's id and the signed manifest (parsed)."""

    key_id: str
    manifest: dict

    @property
    def files(self) -> int:
        return len(self.manifest["files"])


def _read_signed_manifest(model: ModelDir) -> tuple[bytes, dict]:
    """The manifest's bytes and their parse (one read: what is checked is what is signed)."""
    data = manifest_bytes(model)
    return data, parse_manifest(model, data)


def sign_bundle(folder: str | Path | ModelDir, private_key: str | Path) -> Signed:
    """Sign ``folder``'s ``manifest.json`` with the private key file ``private_key``; writes ``manifest.sig``.

    Every file is checked against the manifest first: a folder that already differs from
    its manifest is never signed. Signing again (another key, a new export) replaces
    ``manifest.sig``.
    """
    model = ModelDir.of(folder)
    key = load_private_key(private_key)
    data, manifest = _read_signed_manifest(model)
    changed = changed_file(model, manifest)
    if changed is not None:
        rel, how = changed
        problem = "is missing" if how == "missing" else "does not match its sha256 in manifest.json"
        raise ModelError(f"model folder {model.root.name}: {rel} {problem}; a folder is signed only as "
                         "exported (re-export the model)")
    kid = key_id(key.public_key())
    record = {
        "format": FORMAT,
        "algorithm": "ed25519",
        "key_id": kid,
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
        "signature": base64.b64encode(key.sign(SIGNED_PREFIX + data)).decode("ascii"),
    }
    atomic_write(model.signature, json.dumps(record, indent=2) + "\n")
    return Signed(kid, manifest)


def _read_signature(model: ModelDir) -> dict:
    name = model.root.name
    if not model.signature.is_file():
        raise SignatureError(f"model folder {name} is not signed (no manifest.sig): ask its author for a "
                             "signed copy, or sign it yourself with `gliotype model sign`")
    try:
        record = json.loads(model.signature.read_bytes())
        if record.get("format") != FORMAT or record.get("algorithm") != "ed25519":
            raise ValueError
        record["signature"] = base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise SignatureError(f"model folder {name}: manifest.sig is not a readable gliotype signature") from None
    return record


def verify_bundle(folder: str | Path | ModelDir, public_key: str | Path) -> Signed:
    """Check ``folder``'s signature with the public key file ``public_key`` and every file against
    the signed manifest; :class:`SignatureError` (one line) names the problem."""
    model = ModelDir.of(folder)
    name = model.root.name
    key = load_public_key(public_key)
    kid = key_id(key)
    data, manifest = _read_signed_manifest(model)
    record = _read_signature(model)
    try:
        key.verify(record["signature"], SIGNED_PREFIX + data)
    except InvalidSignature:
        signer = str(record.get("key_id", ""))
        if signer != kid:
            raise SignatureError(f"model folder {name} is signed by another key (key id {signer[:16] or 'unknown'}, "
                                 f"not {kid} of {Path(public_key).name})") from None
        if record.get("manifest_sha256") != hashlib.sha256(data).hexdigest():
            raise SignatureError(f"model folder {name}: manifest.json changed after signing (a file edited and "
                                 "re-hashed?): the signature does not match it") from None
        raise SignatureError(f"model folder {name}: the signature in manifest.sig does not match manifest.json "
                             "with this key (a damaged or forged signature)") from None
    changed = changed_file(model, manifest)
    if changed is not None:
        rel, how = changed
        raise SignatureError(f"model folder {name}: {rel} " + ("is missing (listed in the signed manifest.json)"
                                                                if how == "missing" else
                                                                "changed after signing (its sha256 is not the "
                                                                "signed one in manifest.json)"))
    return Signed(kid, manifest)


def stale_signature(folder: str | Path | ModelDir) -> str | None:
    """Without a key: a one-line problem when ``folder`` is signed but its ``manifest.json`` is not
    the one that was signed (or ``manifest.sig`` is unreadable); None otherwise (unsigned, or
    unchanged as far as can be told without the public key)."""
    model = ModelDir.of(folder)
    if not model.signature.exists():
        return None
    try:
        record = _read_signature(model)
    except SignatureError as exc:
        return str(exc)
    if record.get("manifest_sha256") != hashlib.sha256(model.manifest.read_bytes()).hexdigest():
        return (f"model folder {model.root.name} is signed, but manifest.json changed after signing: the "
                f"signature no longer holds (check it with `gliotype model verify {model.root.name} --key "
                f"{PUBLIC_KEY}`)")
    return None


__all__ = ["SIGNED_PREFIX", "SignatureError", "Signed", "sign_bundle", "stale_signature", "verify_bundle"]
