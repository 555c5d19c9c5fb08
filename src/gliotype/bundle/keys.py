"""The Ed25519 key pair that signs model folders: make one, read either half, name it.

``gliotype model keygen --out DIR`` writes ``private_key.pem`` (PKCS#8, readable by its
owner only: mode 0600) and ``public_key.pem`` (SubjectPublicKeyInfo), the PEM files of
every OpenSSL tool. The public key is what a model's users get (with the model); the
private key never leaves its owner. A key is named by its *key id*, the first 16 hex
digits of the sha256 of the 32 raw public-key bytes, which is public.

Messages name a key file by its name only, never its folder, and never print a key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gliotype.errors import GliotypeError

PRIVATE_KEY = "private_key.pem"
PUBLIC_KEY = "public_key.pem"


class SigningKeyError(GliotypeError):
    """A key file that is missing, unreadable, of another kind or the wrong half of the pair."""


@dataclass(frozen=True)
class KeyPair:
    """The two files :func:`generate_key_pair` wrote, and the key's id."""

    private: Path
    public: Path
    key_id: str


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw public key: names the key in every message."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key_pair(out_dir: str | Path) -> KeyPair:
    """A new key pair in ``out_dir``: ``private_key.pem`` (mode 0600) and ``public_key.pem``.

    Never replaces a key: an existing file of either name stops it with one line.
    """
    out = Path(out_dir)
    private, public = out / PRIVATE_KEY, out / PUBLIC_KEY
    for p in (private, public):
        if p.exists():
            raise SigningKeyError(f"{p.name} already exists in the --out folder: a key is never replaced "
                                  "(choose another folder)")
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _write_new(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()), 0o600)
    try:
        _write_new(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    except BaseException:
        private.unlink(missing_ok=True)
        raise
    return KeyPair(private, public, key_id(key.public_key()))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never an existing file) with ``mode`` from its first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away from the public key's mode
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise


def _read(path: str | Path, what: str) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"{what} {p.name} not found") from None
    except IsADirectoryError:
        raise SigningKeyError(f"{what} {p.name} is a folder, not a key file") from None
    except PermissionError:
        raise SigningKeyError(f"{what} {p.name} is not readable (permission denied)") from None


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key of a PEM file (unencrypted PKCS#8, as keygen writes it)."""
    name, data = Path(path).name, _read(path, "private key")
    if b"PUBLIC KEY-----" in data:
        raise SigningKeyError(f"{name} is a public key: signing needs the private key ({PRIVATE_KEY})")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted with a passphrase
        raise SigningKeyError(f"{name} is protected by a passphrase; gliotype reads unencrypted keys only "
                              "(keep the file mode 0600 instead)") from None
    except (ValueError, UnicodeDecodeError):
        raise SigningKeyError(f"{name} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{name} is not an Ed25519 key (make one with `gliotype model keygen`)")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key of a PEM file. A private key is refused: give users the public one."""
    name, data = Path(path).name, _read(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise SigningKeyError(f"{name} is a private key: checking a signature needs only the public key "
                              f"({PUBLIC_KEY}); keep the private key to yourself")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnicodeDecodeError):
        raise SigningKeyError(f"{name} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{name} is not an Ed25519 key (make one with `gliotype model keygen`)")
    return key


__all__ = ["KeyPair", "PRIVATE_KEY", "PUBLIC_KEY", "SigningKeyError", "generate_key_pair", "key_id",
           "load_private_key", "load_public_key"]
