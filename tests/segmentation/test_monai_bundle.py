"""A MONAI bundle as the tumour segmenter of a case without a mask (issue 15, "No tumour mask").

A tiny SegResNet is trained here on easy synthetic cases, saved as a real MONAI bundle folder
(configs/metadata.json, configs/inference.json with network_def, preprocessing and inferer,
models/model.pt a state dict) and loaded back through :func:`gliotype.segmentation.load_segmenter`;
no weights are downloaded.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from segmenter_helpers import blob_case, dice, make_network, train_tiny, write_bundle, write_case
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.errors import CaseError
from gliotype.input import read_manifest
from gliotype.input.validate import check_case
from gliotype.segmentation import SegmenterError, load_segmenter, segment_case

#: Whole-tumour Dice the tiny model reaches on an easy held-out case (it reaches ~0.85 after 60 steps).
MIN_DICE_WT = 0.5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(bundle folder, held-out case files, its labels): trained once for the module."""
    root = tmp_path_factory.mktemp("segmenter")
    rng = np.random.default_rng(0)
    with torch.random.fork_rng():
        net = train_tiny(make_network(0), [blob_case(rng) for _ in range(6)], steps=60)
    bundle = write_bundle(root / "tiny_brats_bundle", net)
    image, labels = blob_case(np.random.default_rng(123))
    return bundle, write_case(root / "cases", "P1", image), labels


def test_the_bundle_loads_as_monai_s_brats_bundle_is_described(trained):
    bundle, _, _ = trained
    seg = load_segmenter(bundle)
    assert seg.kind == "monai-bundle" and seg.name == "tiny_brats_bundle"
    assert seg.inputs == ("t1c", "t1", "t2", "flair")  # from metadata.json's channel_def
    assert seg.spec.output == "regions" and seg.spec.channels == ("TC", "WT", "ET")
    assert seg.roi_size == (32, 32, 32) and seg.overlap == 0.25  # its SlidingWindowInferer
    assert seg.preprocessing is not None and [type(t).__name__ for t in seg.preprocessing.transforms] == [
        "NormalizeIntensityd"]  # LoadImaged left out: gliotype gives the array
    assert len(seg.fingerprint()) == 16


def test_segment_case_finds_the_tumour_and_writes_mask_and_figure(trained, tmp_path):
    bundle, files, truth = trained
    seg = load_segmenter(bundle)
    out = tmp_path / "P1_seg_auto.nii.gz"
    res = segment_case(seg, files, "P1", out, figure=tmp_path / "P1_seg_auto.png")
    mask = nib.load(out)
    labels = np.asarray(mask.dataobj)
    assert mask.get_data_dtype() == np.uint8 and labels.shape == truth.shape
    np.testing.assert_allclose(mask.affine, nib.load(files["t1c"]).affine)
    assert set(np.unique(labels)) <= {0, 1, 2, 4}
    assert dice(labels > 0, truth > 0) > MIN_DICE_WT, dice(labels > 0, truth > 0)
    assert res.volumes_ml["whole_tumor"] == pytest.approx(np.count_nonzero(labels) * 0.008, abs=1e-3)
    assert res.record()["segmenter"] == "tiny_brats_bundle" and res.record()["source"] == "auto"
    assert (tmp_path / "P1_seg_auto.png").read_bytes()[:4] == b"\x89PNG"
    assert mask.header["descrip"].tobytes().strip(b"\x00") == b""  # a fresh header
    # the mask is a valid input of the pipeline: the validator's checks accept it
    check_case({"patient_id": "P1", **{r: str(p) for r, p in files.items()}, "mask": str(out)})


def test_a_t2_on_another_voxel_order_is_reordered_exactly(trained, tmp_path):
    """An image holding the T1c grid's points in another order (LPI vs RAS) gives the same mask."""
    bundle, files, _ = trained
    seg = load_segmenter(bundle)
    a = segment_case(seg, files, "P1", tmp_path / "a.nii.gz")
    img = nib.load(files["t2"])
    flipped = nib.Nifti1Image(np.asarray(img.dataobj)[::-1, :, ::-1].copy(),
                              img.affine @ nib.orientations.inv_ornt_aff([[0, -1], [1, 1], [2, -1]], img.shape))
    moved = dict(files, t2=tmp_path / "P1_t2_lpi.nii.gz")
    nib.save(flipped, moved["t2"])
    b = segment_case(seg, moved, "P1", tmp_path / "b.nii.gz")
    np.testing.assert_array_equal(nib.load(a.path).dataobj, nib.load(b.path).dataobj)


def test_spatial_preprocessing_of_the_bundle_is_applied_and_inverted(trained, tmp_path):
    """A bundle whose preprocessing reorients to RAS (the order it was trained in), given a case stored in
    LPS voxel order: the network sees the RAS array, the mask comes back on the LPS grid (Invertd)."""
    bundle, files, _ = trained
    net = make_network(0)
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    reorienting = write_bundle(tmp_path / "ras_bundle", net,
                               spatial=[{"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"}])
    seg = load_segmenter(reorienting)
    assert [type(t).__name__ for t in seg.preprocessing.transforms] == ["Orientationd", "NormalizeIntensityd"]
    ras = segment_case(seg, files, "P1", tmp_path / "ras.nii.gz")
    lps_files = {}
    for role, path in files.items():
        img = nib.load(path)
        flip = nib.orientations.inv_ornt_aff([[0, -1], [1, -1], [2, 1]], img.shape)
        lps_files[role] = tmp_path / f"lps_{path.name}"
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[::-1, ::-1, :].copy(), img.affine @ flip), lps_files[role])
    lps = segment_case(seg, lps_files, "P1", tmp_path / "lps.nii.gz")
    a, b = nib.load(ras.path), nib.load(lps.path)
    assert nib.aff2axcodes(b.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(np.asarray(b.dataobj)[::-1, ::-1, :], np.asarray(a.dataobj))


def test_checks_fire_on_a_model_that_finds_nothing(trained, tmp_path):
    bundle, files, _ = trained
    net = make_network(0)
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    with torch.no_grad():
        last = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        last.bias.fill_(-1e4)  # every region's logit very negative: nothing is tumour
    empty = write_bundle(tmp_path / "empty_bundle", net)
    out = tmp_path / "P1_seg_auto.nii.gz"
    with pytest.raises(CaseError) as info:
        segment_case(load_segmenter(empty), files, "P1", out)
    text = str(info.value)
    assert text == ("patient P1: the segmenter found no tumour (segmenter empty_bundle); check the images or give "
                    "--mask")
    assert not out.exists()


def test_spec_file_and_bad_bundles_give_one_line(trained, tmp_path):
    bundle, files, truth = trained
    # no metadata: the spec must come from gliotype_segmenter.json
    bare = tmp_path / "bare"
    shutil.copytree(bundle, bare)
    (bare / "configs" / "metadata.json").unlink()
    with pytest.raises(SegmenterError, match=r"^segmenter bare: its metadata does not say its input channels; "
                                             r"write gliotype_segmenter.json"):
        load_segmenter(bare)
    (bare / "gliotype_segmenter.json").write_text(json.dumps(
        {"inputs": ["T1ce", "T1", "T2", "FLAIR"], "output": "regions", "channels": ["TC", "WT", "ET"],
         "preprocessing": "zscore", "roi_size": [32, 32, 32], "overlap": 0.5}))
    seg = load_segmenter(bare)
    assert seg.preprocessing is None and seg.overlap == 0.5  # MONAI's NormalizeIntensity, the same numbers
    res = segment_case(seg, files, "P1", tmp_path / "m.nii.gz")
    assert dice(np.asarray(nib.load(res.path).dataobj) > 0, truth > 0) > MIN_DICE_WT

    # a model.pt that would need unpickling is refused, never loaded
    pickled = tmp_path / "pickled"
    shutil.copytree(bundle, pickled)
    torch.save({"model": make_network(0).state_dict(), "note": _Note()}, pickled / "models" / "model.pt")
    with pytest.raises(SegmenterError, match="would need unpickling, which gliotype refuses"):
        load_segmenter(pickled)
    # weights of another network
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    cfg = json.loads((other / "configs" / "inference.json").read_text())
    cfg["network_def"]["init_filters"] = 8
    (other / "configs" / "inference.json").write_text(json.dumps(cfg))
    with pytest.raises(SegmenterError, match=r"^segmenter other: models/model.pt does not fit network_def"):
        load_segmenter(other)
    for folder, words in ((tmp_path / "nothing", "not found"), (files["t1"], "not a folder"),
                          (tmp_path, "neither a MONAI bundle")):
        with pytest.raises(SegmenterError) as info:
            load_segmenter(folder)
        assert words in str(info.value) and "\n" not in str(info.value) and str(tmp_path) not in str(info.value)


class _Note:
    """An object a weights file should not hold."""


def test_cohort_segment_writes_masks_and_a_new_manifest(trained, tmp_path):
    bundle, files, _ = trained
    cohort = tmp_path / "cohort"
    rows = []
    for k, pid in enumerate(("A1", "A2", "A3")):
        image, labels = blob_case(np.random.default_rng(200 + k))
        f = write_case(cohort, pid, image, labels if pid == "A3" else None)
        rows.append({"patient_id": pid, **{r: str(p) for r, p in f.items()}, "idh": k % 2})
    rows.append({**rows[0], "patient_id": "A4", "t1c": str(tmp_path / "missing_t1ce.nii.gz")})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = tmp_path / "auto"
    res = CliRunner().invoke(app, ["cohort", "segment", str(manifest), "--segmenter", str(bundle), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 cases: 1 with a mask, 2 segmented, 0 reused from an earlier run, 1 failed" in res.output
    assert "patient A4 [missing_t1ce.nii.gz]: t1c file not found" in res.output
    new = read_manifest(out / "manifest.csv")
    assert new.set_index("patient_id").loc["A1", "mask"] == str((out / "A1_seg_auto.nii.gz").resolve())
    assert new.set_index("patient_id").loc["A3", "mask"] == str(files_of(cohort, "A3"))
    assert new.set_index("patient_id").loc["A4", "mask"] == "" and list(new["idh"]) == [0, 1, 0, 0]
    table = pd.read_csv(out / "segmentation.csv")
    assert list(table["status"]) == ["segmented", "segmented", "given", "failed"]
    assert (out / "A1_seg_auto.png").exists() and (out / "A2_seg_auto.json").exists()
    assert str(tmp_path) not in (out / "A1_seg_auto.json").read_text()
    again = CliRunner().invoke(app, ["cohort", "segment", str(manifest), "--segmenter", str(bundle), "--out",
                                     str(out)])
    assert again.exit_code == 0 and "0 segmented, 2 reused from an earlier run" in again.output


def files_of(cohort, pid):
    return (cohort / pid / f"{pid}_seg.nii.gz").resolve()
