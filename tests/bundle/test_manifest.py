"""The model folder's layout and manifest (gliotype.layout.ModelDir, gliotype.bundle.manifest)."""

import json

import pytest
from bundle_helpers import fake_bundle

from gliotype.bundle import ModelError, model_id, verify_manifest, write_manifest
from gliotype.layout import ModelDir


def test_required_files_are_the_exported_names():
    assert ModelDir("m").required() == (
        "config.yaml",
        "ssl/node_autoencoder.safetensors", "ssl/edge_model.safetensors", "ssl/models.json",
        "atlas/atlas_sampling.npz", "atlas/tract_matrix.npz", "atlas/tract_grid.json",
        "multimodal/model.safetensors", "multimodal/model.json",
        "population_graph/nodes.npz", "population_graph/gnn.safetensors", "population_graph/meta.json",
        "population_graph/standardisation.npz", "atlas/regions.npz",
    )


def test_manifest_round_trip_and_every_failure_names_the_file(tmp_path):
    model = fake_bundle(tmp_path)
    manifest = verify_manifest(model.root)
    assert manifest["config_hash"] == "abc" and set(manifest["files"]) == set(model.required())
    assert len(model_id(model)) == 16
    model.population_graph.meta.write_text("changed")
    with pytest.raises(ModelError, match="population_graph/meta.json does not match its sha256"):
        verify_manifest(model)
    model.population_graph.meta.unlink()
    with pytest.raises(ModelError, match="population_graph/meta.json is missing"):
        verify_manifest(model)
    data = json.loads(model.manifest.read_text())
    del data["files"]["population_graph/meta.json"]
    model.manifest.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="lists no population_graph/meta.json"):
        verify_manifest(model)
    data["files"]["population_graph/meta.json"] = "0"
    data["files"]["../outside"] = "0"
    model.manifest.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="outside the folder"):
        verify_manifest(model)
    assert str(tmp_path) not in str(pytest.raises(ModelError, verify_manifest, tmp_path / "nowhere").value)


def test_the_manifest_never_lists_the_signature_and_a_new_export_drops_an_old_one(tmp_path):
    """manifest.sig signs manifest.json, so it cannot be listed in it; rewriting the manifest (a new
    export into the same folder) removes the old signature: the folder is then plainly unsigned."""
    model = fake_bundle(tmp_path)
    model.signature.write_text("an old signature")
    write_manifest(model, "abc")
    assert not model.signature.exists()
    assert set(json.loads(model.manifest.read_text())["files"]) == set(model.required())
    model.signature.write_text("a signature")
    assert set(verify_manifest(model)["files"]) == set(model.required())  # manifest.sig is no changed file
