"""An nnU-Net v2 trained-model folder as the tumour segmenter (issue 15, "No tumour mask").

The folder format is read by gliotype itself (dataset.json, plans.json, fold_X/checkpoint_final.pth
read with weights_only): tested always. Inference runs through nnU-Net's own code, which gliotype
does not install (nnunetv2's dependencies would replace torch): that test trains a tiny
PlainConvUNet built by nnU-Net, writes it as nnU-Net does and segments a case; it is skipped where
nnunetv2 is not installed (docs/real-data.md says how to install it without replacing torch).
"""

from __future__ import annotations

import importlib.util
import json
import nibabel as nib
import numpy as np
import pytest
import torch
from segmenter_helpers import (
    NNUNET_CHANNELS,
    NNUNET_DATASET,
    blob_case,
    dice,
    nnunet_network,
    nnunet_plans,
    train_tiny,
    write_case,
    write_nnunet_folder,
)

from gliotype.segmentation import SegmenterError, load_segmenter, segment_case

HAS_NNUNET = importlib.util.find_spec("nnunetv2") is not None


def _weights() -> dict:
    return {"encoder.stages.0.0.convs.0.conv.weight": torch.zeros(8, 4, 3, 3, 3)}


def test_the_folder_is_read_without_nnunet_s_code(tmp_path):
    folder = write_nnunet_folder(tmp_path / "Dataset999_TinyBraTS" / "nnUNetTrainer__nnUNetPlans__3d_fullres",
                                 _weights())
    seg = load_segmenter(folder)
    assert seg.kind == "nnunet" and seg.name == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert seg.inputs == ("t1", "t1c", "t2", "flair")  # channel_names T1, T1ce, T2, Flair
    # regions painted WT -> 1, TC -> 2, ET -> 3 (regions_class_order): nnU-Net's 1, 2, 3 are BraTS 2, 1, 4
    assert seg.spec.labels == (0, 2, 1, 4)
    assert seg.configuration == "3d_fullres" and seg.mirror_axes == (0, 1, 2) and seg.trainer_name == "nnUNetTrainer"
    assert seg.describe()["folds"] == 1 and len(seg.fingerprint()) == 16
    # plain labels by name
    plain = dict(NNUNET_DATASET, labels={"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3})
    plain.pop("regions_class_order")
    assert load_segmenter(write_nnunet_folder(tmp_path / "plain", _weights(), dataset=plain)).spec.labels == (
        0, 2, 1, 4)


class Note:
    """An object a checkpoint should not hold."""


def test_bad_folders_give_one_line(tmp_path):
    folder = write_nnunet_folder(tmp_path / "pickled", _weights(), extra={"note": Note()})
    with pytest.raises(SegmenterError, match=r"^segmenter pickled: fold_0/checkpoint_final.pth holds objects other "
                                             r"than tensors and numbers, and would need unpickling"):
        load_segmenter(folder)
    odd = dict(NNUNET_DATASET, channel_names={"0": "A", "1": "B", "2": "C", "3": "D"})
    folder = write_nnunet_folder(tmp_path / "odd", _weights(), dataset=odd)
    with pytest.raises(SegmenterError, match="dataset.json's channel_names are not understood; write "
                                             "gliotype_segmenter.json"):
        load_segmenter(folder)
    (folder / "gliotype_segmenter.json").write_text(json.dumps({"inputs": ["flair", "t1", "t1c", "t2"]}))
    assert load_segmenter(folder).inputs == ("flair", "t1", "t1c", "t2")
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"] = {"2d": plans["configurations"]["3d_fullres"]}
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(SegmenterError, match="plans.json has no configuration '3d_fullres'"):
        load_segmenter(folder)


@pytest.mark.skipif(HAS_NNUNET, reason="nnunetv2 is installed")
def test_without_nnunetv2_segmenting_says_how_to_install_it(tmp_path):
    seg = load_segmenter(write_nnunet_folder(tmp_path / "m", _weights()))
    image, _ = blob_case(np.random.default_rng(0))
    with pytest.raises(SegmenterError) as info:
        seg.segment(image, np.eye(4))
    text = str(info.value)
    assert "needs the nnunetv2 package" in text and "pip install --no-deps nnunetv2" in text and "\n" not in text


@pytest.fixture(scope="module")
def nnunet_weights():
    """A tiny PlainConvUNet built by nnU-Net's code, trained once on easy cases given as nnU-Net's readers
    give them (z, y, x; channels T1, T1ce, T2, Flair) to output dataset.json's regions WT, TC, ET."""
    if not HAS_NNUNET:
        pytest.skip("nnunetv2 is not installed (docs/real-data.md: 'No tumour mask')")
    rng = np.random.default_rng(0)
    order = [("t1c", "t1", "t2", "flair").index(r) for r in NNUNET_CHANNELS]
    cases = []
    for _ in range(6):
        image, labels = blob_case(rng)
        cases.append((image[order].transpose(0, 3, 2, 1).copy(), labels.transpose(2, 1, 0).copy()))
    with torch.random.fork_rng():
        net = train_tiny(nnunet_network(0), cases, regions=("WT", "TC", "ET"), steps=60)
    return net.state_dict()


def test_a_trained_nnunet_folder_segments_a_case(nnunet_weights, tmp_path):
    folder = write_nnunet_folder(tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres", nnunet_weights)
    image, truth = blob_case(np.random.default_rng(123))
    files = write_case(tmp_path / "cases", "P1", image)
    seg = load_segmenter(folder)
    res = segment_case(seg, files, "P1", tmp_path / "P1_seg_auto.nii.gz")
    labels = np.asarray(nib.load(res.path).dataobj)
    assert labels.shape == truth.shape and set(np.unique(labels)) <= {0, 1, 2, 4}
    assert dice(labels > 0, truth > 0) > 0.5, dice(labels > 0, truth > 0)
    # nnU-Net's regions -> its labels 1, 2, 3 -> BraTS 2, 1, 4: the core is where the truth's core is
    assert dice(np.isin(labels, [1, 4]), np.isin(truth, [1, 4])) > 0.3
    assert res.record()["kind"] == "nnunet"


def test_a_reorienting_reader_gets_the_ras_array_and_the_mask_comes_back(nnunet_weights, tmp_path):
    """plans.json's NibabelIOWithReorient: a case stored in LPS voxel order is segmented as its RAS twin."""
    folder = write_nnunet_folder(tmp_path / "m", nnunet_weights, plans=nnunet_plans("NibabelIOWithReorient"))
    image, _ = blob_case(np.random.default_rng(123))
    ras = write_case(tmp_path / "ras", "P1", image)
    flip = nib.orientations.inv_ornt_aff([[0, -1], [1, -1], [2, 1]], image.shape[1:])
    lps = write_case(tmp_path / "lps", "P1", image[:, ::-1, ::-1, :], affine=np.diag([2.0, 2.0, 2.0, 1.0]) @ flip)
    seg = load_segmenter(folder)
    a = segment_case(seg, ras, "P1", tmp_path / "a.nii.gz")
    b = segment_case(seg, lps, "P1", tmp_path / "b.nii.gz")
    assert nib.aff2axcodes(nib.load(b.path).affine) == ("L", "P", "S")
    np.testing.assert_array_equal(np.asarray(nib.load(b.path).dataobj)[::-1, ::-1, :], nib.load(a.path).dataobj)
