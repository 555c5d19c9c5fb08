"""Signed model folders (issue 14, "signed bundles"): Ed25519 keys, ``manifest.sig``, and
``gliotype model keygen / sign / verify`` on a folder with every required file (small text
files: the real trained bundle is used in tests/prediction/test_signed_model.py)."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from bundle_helpers import fake_bundle
from typer.testing import CliRunner

from gliotype.bundle import (
    ModelError,
    SignatureError,
    SigningKeyError,
    generate_key_pair,
    sign_bundle,
    stale_signature,
    verify_bundle,
    verify_manifest,
)
from gliotype.cli import app
from gliotype.utils.io import sha256_file


def _rehash(model, rel):
    """What a forger does after editing ``rel``: write its new sha256 into manifest.json."""
    manifest = json.loads(model.manifest.read_text())
    manifest["files"][rel] = sha256_file(model.root / rel)
    model.manifest.write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return generate_key_pair(root / "author"), generate_key_pair(root / "other")


def test_keygen_writes_a_private_key_only_its_owner_can_read_and_never_replaces_one(tmp_path):
    pair = generate_key_pair(tmp_path / "k")
    assert stat.S_IMODE(pair.private.stat().st_mode) == 0o600
    assert pair.private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pair.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert len(pair.key_id) == 16
    before = pair.private.read_bytes()
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_key_pair(tmp_path / "k")
    assert pair.private.read_bytes() == before


def test_sign_and_verify_round_trip(tmp_path, keys):
    author, _ = keys
    model = fake_bundle(tmp_path)
    signed = sign_bundle(model, author.private)
    assert signed.key_id == author.key_id and signed.files == len(model.required())
    assert model.signature.is_file()
    checked = verify_bundle(model, author.public)
    assert checked.key_id == author.key_id and checked.manifest["config_hash"] == "abc"
    assert stale_signature(model) is None


def test_a_weight_edited_and_rehashed_in_the_manifest_fails_verification(tmp_path, keys):
    author, _ = keys
    model = fake_bundle(tmp_path)
    sign_bundle(model, author.private)
    weights = model.population_graph.gnn
    weights.write_text("other weights")
    _rehash(model, "population_graph/gnn.safetensors")
    verify_manifest(model)  # the checksum alone is fooled
    with pytest.raises(SignatureError, match="manifest.json changed after signing"):
        verify_bundle(model, author.public)
    assert "changed after signing" in stale_signature(model)  # without the key: a warning


def test_a_file_changed_or_removed_after_signing_is_named(tmp_path, keys):
    author, _ = keys
    model = fake_bundle(tmp_path)
    sign_bundle(model, author.private)
    model.multimodal.weights.write_text("changed")
    with pytest.raises(SignatureError, match="multimodal/model.safetensors changed after signing"):
        verify_bundle(model, author.public)
    model.multimodal.weights.unlink()
    with pytest.raises(SignatureError, match="multimodal/model.safetensors is missing"):
        verify_bundle(model, author.public)


def test_unsigned_and_resigned_by_another_key_are_refused(tmp_path, keys):
    author, other = keys
    model = fake_bundle(tmp_path)
    with pytest.raises(SignatureError, match="is not signed"):
        verify_bundle(model, author.public)
    sign_bundle(model, author.private)
    model.population_graph.meta.write_text('{"threshold": 0.0}')
    _rehash(model, "population_graph/meta.json")
    sign_bundle(model, other.private)  # the forger signs the forgery with their own key
    verify_bundle(model, other.public)
    with pytest.raises(SignatureError, match=f"signed by another key \\(key id {other.key_id}, not {author.key_id}"):
        verify_bundle(model, author.public)


def test_a_damaged_signature_is_refused(tmp_path, keys):
    author, _ = keys
    model = fake_bundle(tmp_path)
    sign_bundle(model, author.private)
    record = json.loads(model.signature.read_text())
    sig = bytearray(base64.b64decode(record["signature"]))
    sig[0] ^= 1
    record["signature"] = base64.b64encode(bytes(sig)).decode()
    model.signature.write_text(json.dumps(record))
    with pytest.raises(SignatureError, match="does not match manifest.json with this key"):
        verify_bundle(model, author.public)
    model.signature.write_text("not json")
    with pytest.raises(SignatureError, match="manifest.sig is not a readable gliotype signature"):
        verify_bundle(model, author.public)


def test_a_folder_that_differs_from_its_manifest_is_never_signed(tmp_path, keys):
    author, _ = keys
    model = fake_bundle(tmp_path)
    model.config.write_text("edited")
    with pytest.raises(ModelError, match="config.yaml does not match its sha256"):
        sign_bundle(model, author.private)
    assert not model.signature.exists()


def test_wrong_key_files_give_one_line_without_their_folder(tmp_path, keys):
    author, _ = keys
    model = fake_bundle(tmp_path)
    cases = [
        (lambda: sign_bundle(model, author.public), "is a public key"),
        (lambda: verify_bundle(model, author.private), "is a private key"),
        (lambda: verify_bundle(model, tmp_path / "missing.pem"), "public key missing.pem not found"),
        (lambda: sign_bundle(model, model.config), "not a PEM private key"),
    ]
    for call, message in cases:
        with pytest.raises(SigningKeyError, match=message) as err:
            call()
        assert "\n" not in str(err.value) and str(tmp_path) not in str(err.value)
        assert str(author.private.parent) not in str(err.value)


def test_model_commands(tmp_path):
    """keygen, sign, verify through the CLI: one line each, exit 2 on a refusal, no key or path printed."""
    runner = CliRunner()
    model = fake_bundle(tmp_path)
    keys = tmp_path / "keys"
    res = runner.invoke(app, ["model", "keygen", "--out", str(keys)])
    assert res.exit_code == 0, res.output
    private = (keys / "private_key.pem").read_text()
    assert "private_key.pem" in res.output and "public_key.pem" in res.output
    res = runner.invoke(app, ["model", "verify", str(model.root), "--key", str(keys / "public_key.pem")])
    assert res.exit_code == 2 and "not signed" in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["model", "sign", str(model.root), "--key", str(keys / "private_key.pem")])
    assert res.exit_code == 0, res.output
    assert "signed with key" in res.output
    res = runner.invoke(app, ["model", "verify", str(model.root), "--key", str(keys / "public_key.pem")])
    assert res.exit_code == 0 and "unchanged" in res.output
    model.ssl.node_model.write_text("tampered")
    _rehash(model, "ssl/node_autoencoder.safetensors")
    res = runner.invoke(app, ["model", "verify", str(model.root), "--key", str(keys / "public_key.pem")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert res.output.startswith("error: model folder model: manifest.json changed after signing")
    for out in (res.output, runner.invoke(app, ["model", "keygen", "--out", str(keys)]).output):
        assert str(tmp_path) not in out and "BEGIN" not in out and private.splitlines()[1] not in out
