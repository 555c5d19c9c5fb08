"""Deviation inputs, tumour masking, same-tract batching and the FA-deviation evidence (issue 12, point 3)."""

import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gliotype.config import load_config
from gliotype.errors import GliotypeError
from gliotype.modalities.build import AtlasSampling
from gliotype.self_supervised import encode_brain_networks, load_self_supervised, train_self_supervised
from gliotype.modalities.build import modalities_key
from gliotype.self_supervised.batches import SameTractBatches, edge_loader
from gliotype.self_supervised.deviation import NormativeDeviation
from gliotype.self_supervised.evidence import code_fa_evidence, fa_deviation, identity_share
from gliotype.self_supervised.inputs import patient_inputs, tumor_flags
from gliotype.self_supervised.train import stage_key

R, T, N, C = 5, 12, 6, 4  # regions, tracts, positions per row, MRI sequences
GRID = (8, 8, 8)
N_PATIENTS, N_FA = 7, 5


def _make_workdir(root, seed=0):
    """Atlas samples on a tiny grid with region / tract levels, a per-patient deviation and a tumour mask."""
    rng = np.random.default_rng(seed)
    node_pos = rng.integers(0, np.prod(GRID), size=(R, N))
    tract_pos = rng.integers(0, np.prod(GRID), size=(T, N))
    pairs = np.array([(a, b) for a in range(1, R + 1) for b in range(a + 1, R + 1)][:T])
    AtlasSampling(node_pos, tract_pos, pairs, np.searchsorted(np.arange(1, R + 1), pairs).T, "k").save(root / "atlas")
    node_level = rng.normal(0, 5, size=(R, C * N))
    tract_level, fa_level = rng.normal(0, 5, size=(T, C * N)), rng.uniform(0.3, 0.6, size=(T, N))
    for i in range(N_PATIENTS):
        z = rng.normal(size=T)  # the patient's deviation of each tract
        arrays = {"node": node_level + rng.normal(size=(R, C * N)),
                  "tract": tract_level + z[:, None] + 0.3 * rng.normal(size=(T, C * N))}
        if i < N_FA:
            arrays["tract_fa"] = fa_level - 0.05 * z[:, None] + 0.01 * rng.normal(size=(T, N))
        folder = root / "patients" / f"P{i}"
        (folder / "modalities").mkdir(parents=True)
        with open(folder / "modalities" / "atlas_samples.npz", "wb") as fh:
            np.savez(fh, **{k: v.astype(np.float32) for k, v in arrays.items()})
        mask = np.zeros(GRID, np.uint8)
        mask.flat[rng.choice(np.prod(GRID), size=40, replace=False)] = 2
        (folder / "preprocessed").mkdir()
        nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / "preprocessed" / "mask.nii.gz")


def _config(**extra):
    sets = {"ssl.inputs": "deviation", "ssl.node.epochs": 1, "ssl.edge.epochs": 1, "ssl.val_fraction": 0.4,
            "ssl.edge.batch_size": 4, "ssl.node.batch_size": 8, **extra}
    return load_config("tiny", overrides=[f"{k}={v}" for k, v in sets.items()])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dev")
    _make_workdir(root)
    report = train_self_supervised(root, _config())
    return root, report


def _stats(root):
    node, edge = load_self_supervised(root)
    return {"node": node.deviation.centre.clone(), "node_sd": node.deviation.scale.clone(),
            "mri": edge.mri_deviation.centre.clone(), "fa": edge.fa_deviation.centre.clone()}


def _rewrite(root, pid, fn):
    path = root / "patients" / pid / "modalities" / "atlas_samples.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    with open(path, "wb") as fh:
        np.savez(fh, **fn(arrays))


def test_normative_statistics_come_from_the_training_patients_only(trained, tmp_path):
    root, report = trained
    held, train = report["heldout_patients"][0], report["train_patients"][0]
    base = _stats(root)
    # a held-out FA patient and a patient without FA change: the statistics do not
    other = tmp_path / "other"
    shutil.copytree(root, other)
    shutil.rmtree(other / "ssl")
    for pid in (held, f"P{N_PATIENTS - 1}"):
        _rewrite(other, pid, lambda a: {k: v * 3 + 7 for k, v in a.items()})
    assert train_self_supervised(other, _config())["train_patients"] == report["train_patients"]
    for k, v in _stats(other).items():
        torch.testing.assert_close(v, base[k], rtol=0, atol=0)
    # a training patient changes: they do
    shutil.rmtree(other / "ssl")
    _rewrite(other, train, lambda a: {k: v * 3 + 7 for k, v in a.items()})
    train_self_supervised(other, _config())
    assert not torch.equal(_stats(other)["node"], base["node"])


def test_statistics_match_a_reference_over_the_training_patients_and_round_trip(trained):
    root, report = trained
    node, edge = load_self_supervised(root)  # from the saved safetensors files
    sampling = AtlasSampling.load(root / "atlas")
    x = np.stack([patient_inputs(root, p)["tract"] for p in report["train_patients"]]).astype(np.float64)
    flags = np.stack([tumor_flags(root, p, sampling)["tract_tumor"] for p in report["train_patients"]])
    centre, scale = np.zeros((T, C * N)), np.zeros((T, C * N))
    for t in range(T):  # reference loop: tumour-free patients at each position
        for f in range(C * N):
            v = [x[p, t, f] for p in range(len(x)) if not flags[p, t, f % N]]
            v = v if len(v) >= 2 else list(x[:, t, f])
            centre[t, f], scale[t, f] = np.mean(v), np.std(v, ddof=1)
    for c in range(C):  # the floor: 0.1 x the channel's median scale
        block = scale[:, c * N:(c + 1) * N]
        scale[:, c * N:(c + 1) * N] = np.maximum(block, 0.1 * np.median(block))
    np.testing.assert_allclose(edge.mri_deviation.centre.numpy(), centre, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(edge.mri_deviation.scale.numpy(), scale, rtol=1e-4, atol=1e-4)
    stored = load_file(str(root / "ssl" / "edge_model.safetensors"))
    torch.testing.assert_close(stored["mri_deviation.centre"], edge.mri_deviation.centre)
    assert "deviation.scale" in load_file(str(root / "ssl" / "node_autoencoder.safetensors"))


def test_a_patient_at_the_normative_value_has_zero_deviation(trained):
    root, _ = trained
    node, edge = load_self_supervised(root)
    no_tumor = torch.zeros(R, N, dtype=torch.bool)
    d = node.prepare(node.deviation.centre.clone(), no_tumor)
    assert d.shape == (R, C * N + 1)
    torch.testing.assert_close(d, torch.zeros_like(d), rtol=0, atol=1e-6)
    # one unit of normative sd above at every position: deviation 1
    d1 = edge.prepare_mri(edge.mri_deviation.centre + edge.mri_deviation.scale, torch.zeros(T, N, dtype=torch.bool))
    torch.testing.assert_close(d1[:, :-1], torch.ones(T, C * N), rtol=0, atol=1e-5)


def test_tumour_positions_are_masked_and_their_fraction_is_an_input(trained):
    root, _ = trained
    node, _ = load_self_supervised(root)
    x = node.deviation.centre + 5 * node.deviation.scale  # deviation 5 everywhere
    tumor = torch.zeros(R, N, dtype=torch.bool)
    tumor[1, [0, 3]] = True
    d = node.prepare(x, tumor)
    for c in range(C):  # all four sequences of a masked position
        assert torch.all(d[1, [c * N, c * N + 3]] == 0)
    torch.testing.assert_close(d[0, :-1], torch.full((C * N,), 5.0), rtol=0, atol=1e-4)
    assert float(d[1, 1]) == pytest.approx(5.0, abs=1e-4)
    assert d[1, -1] == pytest.approx(2 / N) and d[0, -1] == 0
    with pytest.raises(GliotypeError, match="tumour flags"):
        node.prepare(x, None)


def test_tumour_values_stay_out_of_the_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2, 2 * 3))
    tumor = np.zeros((6, 2, 3), bool)
    tumor[0, 1, 2] = True
    x[0, 1, [2, 5]] = 1e6  # a bright tumour in patient 0, both channels of position 2
    dev = NormativeDeviation(2, 6, 2, "mask").fit(x, tumor)
    assert abs(float(dev.centre[1, 2])) < 10 and abs(float(dev.centre[1, 5])) < 10
    keep = NormativeDeviation(2, 6, 2, "keep").fit(x, tumor)
    assert float(keep.centre[1, 2]) > 1e5


def test_tumor_flags_read_the_mask_at_the_sampled_positions(trained):
    root, _ = trained
    sampling = AtlasSampling.load(root / "atlas")
    flags = tumor_flags(root, "P0", sampling)
    mask = np.asarray(nib.load(root / "patients" / "P0" / "preprocessed" / "mask.nii.gz").dataobj) > 0
    np.testing.assert_array_equal(flags["tract_tumor"], mask.ravel()[sampling.tract_positions])
    assert flags["tract_tumor"].any() and flags["node_tumor"].shape == (R, N)


def test_encoding_uses_the_stored_statistics_and_records_the_tumour_fraction(trained):
    root, _ = trained
    encode_brain_networks(root, ["P6"])  # a patient without FA, never seen in training
    stored = load_file(str(root / "patients" / "P6" / "brain_network.safetensors"))
    node, edge = load_self_supervised(root)
    s = patient_inputs(root, "P6", AtlasSampling.load(root / "atlas"), required=True)
    with torch.no_grad():
        want = edge.code_norm(edge.encode(edge.mri_deviation(torch.as_tensor(s["tract"]),
                                                             torch.as_tensor(s["tract_tumor"]))))
    torch.testing.assert_close(stored["edge_attr"], want)
    np.testing.assert_allclose(stored["edge_tumor_fraction"].numpy(), s["tract_tumor"].mean(1), atol=1e-7)


def test_same_tract_batches_hold_one_tract_from_distinct_patients():
    owner = torch.arange(5).repeat_interleave(7)  # 5 patients x 7 tracts, patient-major
    tract = torch.arange(7).repeat(5)
    sampler = SameTractBatches(tract, 3, torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7 * 2  # 5 patients in batches of 3 -> 3 + 2
    for b in batches:
        assert len(set(tract[b].tolist())) == 1
        assert len(set(owner[b].tolist())) == len(b) >= 2
    assert sorted(i for b in batches for i in b) == list(range(35))
    loader = edge_loader(torch.randn(35, 4), torch.randn(35, 2), owner, tract, 3, "same_tract",
                         torch.Generator().manual_seed(0))
    assert sum(len(b[0]) for b in loader) == 35


@pytest.mark.parametrize("loss", ["printed", "infonce"])
def test_same_tract_training_runs_with_both_forms_of_eq1(tmp_path, loss):
    _make_workdir(tmp_path)
    report = train_self_supervised(tmp_path, _config(**{"ssl.edge.batching": "same_tract", "ssl.edge.loss": loss}))
    assert report["edge_batching"] == "same_tract" and np.isfinite(report["edge_final_loss"])
    assert report["edge_retrieval_chance"] == pytest.approx(1 / len(report["heldout_patients"]))


def test_fa_evidence_tells_patient_deviation_from_tract_identity():
    rng = np.random.default_rng(0)
    p_tr, p_ev, t = 20, 6, 30
    offset = 2 * rng.normal(size=t)  # tracts differ in their mean deviation: identity alone predicts some of it
    dev_tr, dev = offset + rng.normal(size=(p_tr, t)), offset + rng.normal(size=(p_ev, t))
    tract_code = rng.normal(size=(t, 40))  # as many dimensions as tracts: a probe can learn the offsets
    noise = lambda p: 0.1 * rng.normal(size=(p, t, 40))  # noqa: E731
    patient = lambda d: np.concatenate([d[..., None], rng.normal(size=d.shape + (39,))], -1)  # noqa: E731
    carries = code_fa_evidence(patient(dev_tr), dev_tr, patient(dev), dev)
    atlas = code_fa_evidence(tract_code + noise(p_tr), dev_tr, tract_code + noise(p_ev), dev)
    assert carries["fa_probe_rho_within_tract"] > 0.9 and abs(atlas["fa_probe_rho_within_tract"]) < 0.2
    assert atlas["fa_probe_rho"] > 0.6  # pooled over tracts, identity looks like evidence: hence within-tract
    assert atlas["tract_identity_top1"] > 0.9 and carries["tract_identity_top1"] < 0.2
    assert atlas["tract_identity_share"] > 0.9 > 0.5 > carries["tract_identity_share"]


def test_fa_deviation_by_hand():
    train = np.array([[[0.4, 0.6]], [[0.6, 0.4]]])  # 2 patients, 1 tract, 2 positions
    fa = np.array([[[0.5 + np.sqrt(0.02), 0.5]]])  # +1 sd at position 0, 0 at position 1
    assert fa_deviation(train, fa)[0, 0] == pytest.approx(0.5)
    tumor_tr = np.zeros((2, 1, 2), bool)
    assert fa_deviation(train, fa, tumor_tr, np.array([[[False, True]]]))[0, 0] == pytest.approx(1.0)
    assert identity_share(np.ones((3, 2, 1)) * np.array([[[0.0], [1.0]]])) == pytest.approx(1.0)


def test_workdir_evidence_reproduces_the_stage_report(trained):
    from gliotype.self_supervised import workdir_evidence

    root, report = trained
    evidence = workdir_evidence(root)
    assert {"fa_probe_rho_within_tract", "tract_identity_top1", "node_region_share",
            "node_tumor_patient_share"} <= set(evidence)
    for k, v in evidence.items():
        assert v == pytest.approx(report[k], nan_ok=True), k


def test_a_collapsed_edge_code_is_detected(trained):
    from gliotype.self_supervised.evidence import code_collapsed

    root, report = trained
    _, edge = load_self_supervised(root)
    rows = torch.randn(16, edge.mri_norm.mean.shape[0])
    assert report["edge_code_collapsed"] is False and not code_collapsed(edge, rows)
    with torch.no_grad():
        for p in edge.mri_encoder.parameters():
            p.zero_()  # every unit dead: one code for every tract
    assert code_collapsed(edge, rows)


def test_same_tract_training_is_deterministic_and_resumes_exactly(tmp_path):
    import json

    cfg = lambda e: _config(**{"ssl.edge.batching": "same_tract", "ssl.edge.epochs": e})  # noqa: E731
    a, b = tmp_path / "a", tmp_path / "b"
    _make_workdir(a)
    _make_workdir(b)
    report = train_self_supervised(a, cfg(4))
    train_self_supervised(b, cfg(2))  # as if a 4-epoch run was interrupted after 2 epochs, then resumed
    ids = report["train_patients"] + report["heldout_patients"]
    key = stage_key(cfg(4), report["train_patients"], report["heldout_patients"], modalities_key(b, ids))
    for part in ("node", "edge"):
        (b / "ssl" / part / "key.txt").write_text(key)
    (b / "ssl" / "models.json").unlink()
    train_self_supervised(b, cfg(4))
    ha = [r["loss"] for r in json.loads((a / "ssl" / "edge" / "history.json").read_text())]
    hb = [r["loss"] for r in json.loads((b / "ssl" / "edge" / "history.json").read_text())]
    assert ha == pytest.approx(hb, rel=1e-6) and len(ha) == 4
    wa, wb = (load_file(str(p / "ssl" / "edge_model.safetensors")) for p in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_loaded_models_encode_a_bare_work_folder_the_same_with_the_tumour_flags(trained, tmp_path):
    """``ssl.tumor = mask``: the tumour flags come from the loaded models' atlas positions, so a
    prediction's work folder (the patient's own files, no atlas/ or ssl/) gets the same x_B."""
    import json
    import shutil

    from gliotype.layout import WorkDir
    from gliotype.self_supervised import SelfSupervisedModels

    root, _ = trained
    encode_brain_networks(root, ["P6"])
    model = WorkDir(tmp_path / "model")
    model.ssl.root.mkdir(parents=True)
    model.atlas.root.mkdir(parents=True)
    for src, dst in zip(WorkDir(root).ssl.copied, model.ssl.copied):
        shutil.copyfile(src, dst)
    shutil.copyfile(WorkDir(root).atlas.sampling, model.atlas.sampling)
    bare = tmp_path / "bare"
    shutil.copytree(root / "patients" / "P6", bare / "patients" / "P6",
                    ignore=shutil.ignore_patterns("brain_network.safetensors"))
    models = SelfSupervisedModels.load(model.ssl, model.atlas)
    assert models.key == json.loads((root / "ssl" / "models.json").read_text())["key"]
    assert encode_brain_networks(bare, ["P6"], models=models)["status"].tolist() == ["done"]
    assert not (bare / "atlas").exists() and not (bare / "ssl").exists()
    name = "patients/P6/brain_network.safetensors"
    assert (bare / name).read_bytes() == (root / name).read_bytes()
    assert "edge_tumor_fraction" in load_file(str(bare / name))
