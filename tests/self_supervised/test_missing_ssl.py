"""Missing sequences in the self-supervised models (issue 15): the one imputation rule (a missing
sequence's block of a prepared row takes the model's Standardize mean), encoding a patient that
lacks a sequence and the x_B variants, ``ssl.sequence_dropout`` (in the stage key, reproducible,
resume-exact) and training without the incomplete FA patients."""

import json

import numpy as np
import pytest
import torch
from killing import killed_after
from safetensors.torch import load_file
from test_deviation import _config as dev_config
from test_deviation import _make_workdir as make_dev_workdir
from test_stage import _config, _make_workdir

from gliotype.modalities.build import missing_sequences, modalities_key
from gliotype.self_supervised import (
    SelfSupervisedModels,
    encode_brain_networks,
    impute_missing,
    load_brain_network,
    load_brain_network_variants,
    train_self_supervised,
)
from gliotype.self_supervised.inputs import flag_tensor, patient_inputs, to_tensor
from gliotype.self_supervised.models import NodeAutoencoder, Standardize, sequence_dropout
from gliotype.self_supervised.train import stage_key

SEQUENCES = ("t1", "t1c", "t2", "flair")


def _reference_impute(rows: np.ndarray, mean: np.ndarray, channels: int, missing: list[int]) -> np.ndarray:
    """The rule by hand, one column at a time."""
    out = rows.copy()
    n = rows.shape[1] // channels
    for c in missing:
        for j in range(c * n, (c + 1) * n):
            for i in range(rows.shape[0]):
                out[i, j] = mean[j]
    return out


@pytest.mark.parametrize("extra", [0, 1])  # deviation inputs with tumor=mask append one fraction column
@pytest.mark.parametrize("missing", [[1], [0, 3], []])
def test_imputation_sets_the_block_to_the_standardize_mean_and_nothing_else(extra, missing):
    rng = np.random.default_rng(0)
    n, channels = 5, 4
    rows = rng.normal(size=(7, channels * n + extra)).astype(np.float32)
    norm = Standardize(rows.shape[1]).fit(torch.from_numpy(rng.normal(3, 2, size=(50, rows.shape[1])).astype(np.float32)))
    got = impute_missing(torch.from_numpy(rows), norm, channels, missing).numpy()
    np.testing.assert_array_equal(got, _reference_impute(rows, norm.mean.numpy(), channels, missing))
    if extra:
        np.testing.assert_array_equal(got[:, -1], rows[:, -1])  # the tumour fraction is never imputed
    standardised = norm(torch.from_numpy(got)).numpy()
    for c in missing:  # what the model sees there: 0, the training mean
        np.testing.assert_allclose(standardised[:, c * n:(c + 1) * n], 0, atol=1e-5)


def test_attributes_of_a_patient_without_a_sequence_use_the_imputed_rows():
    torch.manual_seed(0)
    model = NodeAutoencoder(4 * 3, [8], 4).eval()
    model.norm.fit(torch.randn(30, 12) * 2 + 1)
    node = torch.randn(6, 12)
    node[:, 6:9] = 0  # t2, a zero volume after preprocessing
    with torch.no_grad():
        want = model.code_norm(model.encode(torch.from_numpy(
            _reference_impute(node.numpy(), model.norm.mean.numpy(), 4, [2]))))
        torch.testing.assert_close(model.attributes(node, missing=["t2"]), want, rtol=0, atol=0)
        assert not torch.equal(model.attributes(node), want)  # the zero block is not what the model sees


def test_sequence_dropout_imputes_one_block_of_about_p_of_the_rows():
    rng = np.random.default_rng(1)
    rows = torch.from_numpy(rng.normal(size=(2000, 12)).astype(np.float32))
    norm = Standardize(12).fit(torch.from_numpy(rng.normal(5, 1, size=(40, 12)).astype(np.float32)))
    out = sequence_dropout(rows, norm, 4, 0.3, torch.Generator().manual_seed(0))
    imputed = np.stack([(out[:, c * 3:(c + 1) * 3] == norm.mean[c * 3:(c + 1) * 3]).all(1).numpy() for c in range(4)], 1)
    changed = (out != rows).any(1).numpy()
    assert np.array_equal(changed, imputed.any(1)) and imputed.sum(1).max() == 1
    assert 0.25 < changed.mean() < 0.35 and all(imputed[:, c].sum() > 50 for c in range(4))
    again = sequence_dropout(rows, norm, 4, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert sequence_dropout(rows, norm, 4, 0.0, torch.Generator()) is rows


def _mark_missing(root, pid, missing):
    path = root / "patients" / pid / "modalities" / "modalities.json"
    path.write_text(json.dumps({"key": "k", "files": {}, "missing_sequences": list(missing)}))
    samples = root / "patients" / pid / "modalities" / "atlas_samples.npz"
    with np.load(samples) as z:
        arrays = {k: z[k].copy() for k in z.files}
    n = arrays["node"].shape[1] // 4
    for s in missing:  # a zero volume: zero samples
        c = SEQUENCES.index(s)
        arrays["node"][:, c * n:(c + 1) * n] = 0
        arrays["tract"][:, c * n:(c + 1) * n] = 0
    with open(samples, "wb") as fh:
        np.savez(fh, **arrays)


def test_a_patient_without_a_sequence_is_encoded_imputed_and_variants_are_the_same_rule(tmp_path):
    make_dev_workdir(tmp_path)  # deviation inputs, tumour masked: the rows carry a fraction column
    _mark_missing(tmp_path, "P6", ["t1c"])  # P6 has no FA
    train_self_supervised(tmp_path, dev_config())
    assert missing_sequences(tmp_path, "P6") == ("t1c",) and missing_sequences(tmp_path, "P0") == ()
    encode_brain_networks(tmp_path, ["P6", "P0"], variants=True)
    models = SelfSupervisedModels.load(tmp_path / "ssl", tmp_path / "atlas")
    s = patient_inputs(tmp_path, "P6", models.sampling, required=True)
    with torch.no_grad():
        rows = models.node.prepare(to_tensor(s["node"]), flag_tensor(s, "node"))
        want = models.node.code_norm(models.node.encode(torch.from_numpy(
            _reference_impute(rows.numpy(), models.node.norm.mean.numpy(), 4, [1]))))
        rows_e = models.edge.prepare_mri(to_tensor(s["tract"]), flag_tensor(s, "tract"))
        want_e = models.edge.code_norm(models.edge.encode(torch.from_numpy(
            _reference_impute(rows_e.numpy(), models.edge.mri_norm.mean.numpy(), 4, [1]))))
    data = load_brain_network(tmp_path, "P6")
    torch.testing.assert_close(data.x, want, rtol=0, atol=0)
    torch.testing.assert_close(data.edge_attr, want_e, rtol=0, atol=0)
    # the variants: one per present sequence, the missing one imputed besides
    variants = load_brain_network_variants(tmp_path, "P6")
    assert sorted(variants) == ["flair", "t1", "t2"]
    with torch.no_grad():
        both = models.node.code_norm(models.node.encode(torch.from_numpy(
            _reference_impute(rows.numpy(), models.node.norm.mean.numpy(), 4, [1, 3]))))
    torch.testing.assert_close(variants["flair"][0], both, rtol=0, atol=0)
    assert sorted(load_brain_network_variants(tmp_path, "P0")) == list(sorted(SEQUENCES))
    # without variants the file has none, and the key says so: encoding again rewrites it
    table = encode_brain_networks(tmp_path, ["P0"])
    assert table["status"].tolist() == ["done"] and load_brain_network_variants(tmp_path, "P0") == {}


def test_incomplete_fa_patients_are_left_out_of_training(tmp_path, caplog):
    make_dev_workdir(tmp_path)
    _mark_missing(tmp_path, "P1", ["flair"])  # an FA patient
    with caplog.at_level("INFO"):
        report = train_self_supervised(tmp_path, dev_config())
    assert "P1" not in report["train_patients"] + report["heldout_patients"]
    assert len(report["train_patients"]) + len(report["heldout_patients"]) == 4
    assert "leaves out 1 FA patient(s) without all four sequences: P1" in caplog.text


def test_sequence_dropout_is_in_the_stage_key():
    ids, val = ["P0", "P1"], ["P2"]
    assert stage_key(_config(), ids, val) == stage_key(_config(**{"ssl.sequence_dropout": 0.0}), ids, val)
    assert stage_key(_config(), ids, val) != stage_key(_config(**{"ssl.sequence_dropout": 0.5}), ids, val)


def test_training_with_sequence_dropout_is_reproducible_and_resumes_exactly(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root in (a, b, c):
        _make_workdir(root)
    config = _config(epochs=4, **{"ssl.sequence_dropout": 0.5})
    train_self_supervised(a, config)
    killed_after(monkeypatch, 2, "node", lambda: train_self_supervised(b, config))
    train_self_supervised(b, config)
    train_self_supervised(c, _config(epochs=4))
    w = {r: {n: load_file(str(r / "ssl" / f"{n}.safetensors")) for n in ("node_autoencoder", "edge_model")}
         for r in (a, b, c)}
    for name in ("node_autoencoder", "edge_model"):
        assert all(torch.equal(w[a][name][k], w[b][name][k]) for k in w[a][name]), name
        assert not all(torch.equal(w[a][name][k], w[c][name][k]) for k in w[a][name]), name  # dropout acts
    ha = [r["loss"] for r in json.loads((a / "ssl" / "node" / "history.json").read_text())]
    hb = [r["loss"] for r in json.loads((b / "ssl" / "node" / "history.json").read_text())]
    assert ha == hb
    assert modalities_key(a, ["P0"]) == modalities_key(b, ["P0"])
