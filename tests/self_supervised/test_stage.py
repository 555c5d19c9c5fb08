"""Self-supervised brain-network stage on a small hand-made work folder (section 3.2)."""

import json

import numpy as np
import pytest
import torch
from killing import killed_after
from safetensors.torch import load_file

from gliotype.config import load_config
from gliotype.errors import GliotypeError
from gliotype.modalities.build import AtlasSampling
from gliotype.self_supervised import encode_brain_networks, load_brain_network, train_self_supervised
from gliotype.self_supervised.batches import PerPatientBatches
from gliotype.self_supervised.train import split_holdout

R, T, N_POS = 10, 40, 8  # regions, tracts, positions per region/tract
REGIONS = np.arange(1, R + 1) * 3  # region labels need not be 1..R (a user node atlas)


def _make_workdir(root, n_patients=8, n_fa=6, seed=0):
    """Atlas samples whose MRI and FA tract values share a per-tract, per-patient latent."""
    rng = np.random.default_rng(seed)
    w_mri, w_fa, w_node = rng.normal(size=(3, 4 * N_POS)), rng.normal(size=(3, N_POS)), rng.normal(size=(2, 4 * N_POS))
    pairs = np.array([(a, b) for a in REGIONS for b in REGIONS if b > a][:T])
    AtlasSampling(np.zeros((R, N_POS), int), np.zeros((T, N_POS), int), pairs,
                  np.searchsorted(REGIONS, pairs).T, "k").save(root / "atlas")
    for i in range(n_patients):
        latent = rng.normal(size=(T, 3))
        arrays = {
            "node": (rng.normal(size=(R, 2)) @ w_node + 0.05 * rng.normal(size=(R, 4 * N_POS))).astype(np.float32),
            "tract": (latent @ w_mri + 0.1 * rng.normal(size=(T, 4 * N_POS))).astype(np.float32),
        }
        if i < n_fa:
            arrays["tract_fa"] = (latent @ w_fa + 0.1 * rng.normal(size=(T, N_POS))).astype(np.float32)
        folder = root / "patients" / f"P{i}" / "modalities"
        folder.mkdir(parents=True)
        with open(folder / "atlas_samples.npz", "wb") as fh:
            np.savez(fh, **arrays)
    return pairs


def _config(epochs=25, **extra):
    sets = [f"ssl.node.epochs={epochs}", f"ssl.edge.epochs={epochs}", "ssl.edge.lr=0.05", "ssl.edge.momentum=0.9",
            "ssl.node.lr=0.01", "ssl.edge.batch_size=16", "ssl.node.batch_size=16", "ssl.val_fraction=0.34"]
    return load_config("tiny", overrides=sets + [f"{k}={v}" for k, v in extra.items()])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    pairs = _make_workdir(root)
    report = train_self_supervised(root, _config())
    return root, pairs, report


def test_learns_beyond_trivial_baselines_on_heldout_patients(trained):
    _, _, report = trained
    assert len(report["heldout_patients"]) == 2 and len(report["train_patients"]) == 4
    assert report["edge_retrieval_top1"] > 5 * report["edge_retrieval_chance"]
    assert report["node_reconstruction_mse"] < 0.5 * report["node_mean_baseline_mse"]


def test_encodes_every_patient_fa_or_not_with_the_atlas_edge_list(trained):
    root, pairs, _ = trained
    table = encode_brain_networks(root)
    assert list(table["status"]) == ["done"] * 8
    data = load_brain_network(root, "P7")  # a patient without FA
    assert data.x.shape == (R, 8) and data.edge_attr.shape == (T, 8)
    np.testing.assert_array_equal(REGIONS[data.edge_index.numpy().T], pairs)
    again = encode_brain_networks(root)
    assert set(again["status"]) == {"skipped"}


def test_encoding_is_deterministic_to_the_byte(trained, tmp_path):
    """Same models, same patient: the same file, bytes included (safetensors writes a
    metadata dict in a random order, so x_B files carry a single metadata key)."""
    root, _, _ = trained
    encode_brain_networks(root)
    files = {pid: root / "patients" / pid / "brain_network.safetensors" for pid in ("P1", "P2", "P3", "P5", "P7")}
    a = load_brain_network(root, "P3")
    before = {pid: f.read_bytes() for pid, f in files.items()}
    for f in files.values():
        f.unlink()
    encode_brain_networks(root, list(files))
    b = load_brain_network(root, "P3")
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)
    torch.testing.assert_close(a.edge_attr, b.edge_attr, rtol=0, atol=0)
    assert {pid: f.read_bytes() for pid, f in files.items()} == before


def test_an_unreadable_brain_network_is_named_and_encoded_again(trained, caplog):
    """A truncated x_B: reading it is one line naming the patient and the file (no safetensors
    text); ``ssl encode`` takes it for not encoded and writes it again, the same bytes."""
    from gliotype.errors import CaseError

    root, _, _ = trained
    encode_brain_networks(root)
    path = root / "patients" / "P4" / "brain_network.safetensors"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])
    with pytest.raises(CaseError) as err:
        load_brain_network(root, "P4")
    assert str(err.value) == ("patient P4 [brain_network.safetensors]: unreadable (truncated or not a safetensors "
                              "file): run `gliotype ssl encode` again")
    with caplog.at_level("WARNING"):
        table = encode_brain_networks(root)
    assert dict(zip(table["patient_id"], table["status"]))["P4"] == "done"
    assert set(table.loc[table["patient_id"] != "P4", "status"]) == {"skipped"}
    assert "patient P4: cached file brain_network.safetensors changed since it was written" in caplog.text
    assert path.read_bytes() == good


def test_rerun_reuses_trained_models(trained):
    root, _, report = trained
    mtime = (root / "ssl" / "edge_model.safetensors").stat().st_mtime_ns
    assert train_self_supervised(root, _config()) == report
    assert (root / "ssl" / "edge_model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("batching", ["mixed", "per_patient", "same_tract"])
def test_killed_and_resumed_training_equals_uninterrupted(tmp_path, monkeypatch, caplog, batching):
    a, b = tmp_path / "a", tmp_path / "b"
    _make_workdir(a)
    _make_workdir(b)
    config = _config(epochs=4, **{"ssl.edge.batching": batching})
    train_self_supervised(a, config)
    killed_after(monkeypatch, 2, "edge", lambda: train_self_supervised(b, config))
    with caplog.at_level("INFO"):
        train_self_supervised(b, config)
    assert "edge model: resuming after epoch 2 of 4" in caplog.text
    ha = json.loads((a / "ssl" / "edge" / "history.json").read_text())
    hb = json.loads((b / "ssl" / "edge" / "history.json").read_text())
    assert [r["loss"] for r in ha] == pytest.approx([r["loss"] for r in hb], rel=1e-6)
    for name in ("node", "edge"):
        wa = load_file(str(a / "ssl" / name / "model.safetensors"))
        wb = load_file(str(b / "ssl" / name / "model.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_needs_fa_patients(tmp_path):
    _make_workdir(tmp_path, n_fa=1)
    with pytest.raises(GliotypeError, match="at least 2 patients with FA"):
        train_self_supervised(tmp_path, _config())


def test_per_patient_batches_never_mix_patients():
    owner = torch.tensor([0] * 10 + [1] * 7 + [2] * 12)
    batches = list(PerPatientBatches(owner, 4, torch.Generator().manual_seed(0)))
    assert len(batches) == 2 + 1 + 3
    assert all(len(set(owner[b].tolist())) == 1 and len(b) == 4 for b in batches)


def test_split_holdout_is_seeded_and_disjoint():
    ids = [f"P{i}" for i in range(20)]
    tr, va = split_holdout(ids, 0.2, 0)
    assert len(va) == 4 and not set(tr) & set(va) and sorted(tr + va) == sorted(ids)
    assert split_holdout(ids, 0.2, 0) == (tr, va) and split_holdout(ids, 0.2, 1) != (tr, va)


def test_brain_network_attributes_are_standardised_on_the_training_patients(trained):
    root, _, report = trained
    encode_brain_networks(root)
    nets = [load_brain_network(root, p) for p in report["train_patients"]]
    for attr in ("x", "edge_attr"):
        values = torch.cat([getattr(n, attr) for n in nets])
        torch.testing.assert_close(values.mean(0), torch.zeros(values.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(values.std(0), torch.ones(values.shape[1]), atol=1e-3, rtol=0)


def test_a_diverging_loss_stops_training_with_a_clear_error(tmp_path):
    from gliotype.utils.training import fit

    model = torch.nn.Linear(2, 1)
    loader = [torch.ones(4, 2)]
    schedule = load_config("tiny").ssl.node
    with pytest.raises(GliotypeError, match="diverged"):
        fit(model, lambda b: model(b).sum() * float("nan"), loader, schedule, tmp_path / "ck", "node autoencoder")


def test_loaded_models_encode_like_the_work_folders_own(trained, tmp_path):
    """SelfSupervisedModels loads the models, key and atlas positions once: the x_B of a work folder
    without ssl/ or atlas/ is the work folder's own, to the byte; load_self_supervised still works."""
    import shutil

    from gliotype.self_supervised import SelfSupervisedModels, load_self_supervised

    root, pairs, _ = trained
    encode_brain_networks(root, ["P7"])
    models = SelfSupervisedModels.load(root / "ssl", root / "atlas")
    np.testing.assert_array_equal(REGIONS[models.edge_index.T], pairs)
    assert models.edge_index.dtype == np.int64
    node, edge = load_self_supervised(root)
    assert all(torch.equal(a, b) for a, b in zip(node.state_dict().values(), models.node.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(edge.state_dict().values(), models.edge.state_dict().values()))
    bare = tmp_path / "bare"
    shutil.copytree(root / "patients" / "P7" / "modalities", bare / "patients" / "P7" / "modalities")
    table = encode_brain_networks(bare, ["P7"], models=models)
    assert table["status"].tolist() == ["done"] and sorted(p.name for p in bare.iterdir()) == [
        "brain_network_status.csv", "patients"]
    name = "patients/P7/brain_network.safetensors"
    assert (bare / name).read_bytes() == (root / name).read_bytes()
    assert encode_brain_networks(bare, ["P7"], models=models)["status"].tolist() == ["skipped"]
