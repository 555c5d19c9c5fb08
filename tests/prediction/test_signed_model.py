"""Signed model folders with a real trained bundle (issue 14, "signed bundles"): the manifest
covers every file a prediction reads; ``gliotype predict --require-signature`` refuses an
unsigned, re-signed or tampered folder in one line (exit 2) and accepts the author's; without
the flag nothing changes but a warning for a signed folder changed since it was signed.

Uses the session's tiny trained model (conftest.py), copied: no bundle is built here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest
from pred_helpers import split_ids
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from gliotype.bundle import generate_key_pair, sign_bundle
from gliotype.cli import app
from gliotype.layout import ModelDir
from gliotype.prediction import load_model
from gliotype.utils.io import sha256_file

_OPENED: list[str] | None = None  # files opened while an audit is on (see the first test)


def _audit(event, args):
    if event == "open" and _OPENED is not None and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


@pytest.fixture
def model(tiny_run, tmp_path):
    """A copy of the trained model folder, ours to sign and tamper with."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_run / "run" / "model", folder)
    return ModelDir(folder)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return generate_key_pair(root / "author"), generate_key_pair(root / "other")


def _predict(tiny_run, model, out, *extra):
    pid = split_ids(tiny_run / "run")[0]
    return CliRunner().invoke(app, ["predict", "--model", str(model.root), "--case", str(tiny_run / "cohort" / pid),
                                    "--out", str(out), "--no-explain", "--draws", "0", *extra])


def _refused(res, out, problem):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and problem in lines[0], res.output
    assert not out.exists()
    return lines[0]


def test_the_manifest_covers_every_file_a_prediction_reads(model):
    """Every exported file is required (so listed in the manifest, or the loading stops), and every
    file load_model opens through Python is one of them. (safetensors opens its files in Rust,
    out of the audit's sight; they are required files too.)"""
    global _OPENED
    exported = {p.relative_to(model.root).as_posix() for p in model.root.rglob("*") if p.is_file()}
    listed = set(model.required()) | set(model.optional())  # optional: sequence_spread.json (issue 15)
    listed -= {"population_graph/neighbours.faiss"}  # only with population_graph.neighbours: ann
    assert exported == listed | {"manifest.json"}
    assert set(json.loads(model.manifest.read_text())["files"]) == listed
    sys.addaudithook(_audit)
    _OPENED = []
    try:
        load_model(model.root)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    root = str(model.root.resolve())
    inside = {p[len(root) + 1:] for p in (str(Path(o).resolve()) for o in opened) if p.startswith(root + "/")}
    assert {"manifest.json", "config.yaml", "population_graph/nodes.npz"} <= inside  # the audit sees the opens
    assert inside <= listed | {"manifest.json", "manifest.sig"}


def test_a_signed_model_is_accepted_with_its_key(tiny_run, model, keys, tmp_path):
    author, _ = keys
    sign_bundle(model, author.private)
    assert load_model(model.root, public_key=author.public).signed_by == author.key_id
    out = tmp_path / "pred"
    res = _predict(tiny_run, model, out, "--require-signature", str(author.public))
    assert res.exit_code == 0, res.output
    assert json.loads((out / "prediction.json").read_text())["model"]["signature_key_id"] == author.key_id
    res = CliRunner().invoke(app, ["model", "verify", str(model.root), "--key", str(author.public)])
    assert res.exit_code == 0 and f"signed with key {author.key_id}" in res.output


def test_a_weight_edited_and_rehashed_after_signing_is_refused(tiny_run, model, keys, tmp_path):
    """The attack a checksum cannot stop: edit the GNN, write its new sha256 into manifest.json."""
    author, _ = keys
    sign_bundle(model, author.private)
    honest = load_model(model.root)
    weights = model.population_graph.gnn
    tensors = load_file(str(weights))
    tensors["classifier.weight"] = -tensors["classifier.weight"]  # flips every prediction
    save_file(tensors, str(weights))
    manifest = json.loads(model.manifest.read_text())
    manifest["files"]["population_graph/gnn.safetensors"] = sha256_file(weights)
    model.manifest.write_text(json.dumps(manifest, indent=2))

    out = tmp_path / "pred"
    line = _refused(_predict(tiny_run, model, out, "--require-signature", str(author.public)), out,
                    "model folder model: manifest.json changed after signing")
    assert str(tmp_path) not in line
    res = CliRunner().invoke(app, ["model", "verify", str(model.root), "--key", str(author.public)])
    _refused(res, out, "manifest.json changed after signing")

    res = _predict(tiny_run, model, tmp_path / "unchecked")  # without the flag: predicts, with a warning
    assert res.exit_code == 0, res.output
    assert "WARNING model folder model is signed, but manifest.json changed after signing" in " ".join(res.output.split())
    forged = load_model(model.root)
    assert forged.signed_by is None
    graph = honest.graph
    from gliotype.population_graph import predict_proba

    assert abs(predict_proba(forged.gnn, graph) - predict_proba(honest.gnn, graph)).max() > 0.1  # the edit matters


def test_a_file_changed_after_signing_is_refused(tiny_run, model, keys, tmp_path):
    author, _ = keys
    sign_bundle(model, author.private)
    data = bytearray(model.multimodal.weights.read_bytes())
    data[-1] ^= 0xFF
    model.multimodal.weights.write_bytes(bytes(data))
    out = tmp_path / "pred"
    _refused(_predict(tiny_run, model, out, "--require-signature", str(author.public)), out,
             "multimodal/model.safetensors changed after signing")


def test_unsigned_or_resigned_by_another_key_is_refused_with_the_flag_only(tiny_run, model, keys, tmp_path, caplog):
    author, other = keys
    out = tmp_path / "pred"
    _refused(_predict(tiny_run, model, out, "--require-signature", str(author.public)), out, "is not signed")
    with caplog.at_level(logging.WARNING):
        assert load_model(model.root).signed_by is None  # unsigned, no flag: accepted, no warning
    assert "signed" not in caplog.text
    sign_bundle(model, author.private)
    sign_bundle(model, other.private)  # someone else signs it over
    _refused(_predict(tiny_run, model, out, "--require-signature", str(author.public)), out,
             f"signed by another key (key id {other.key_id}, not {author.key_id}")
    _refused(_predict(tiny_run, model, out, "--require-signature", str(tmp_path / "nokey.pem")), out,
             "public key nokey.pem not found")
