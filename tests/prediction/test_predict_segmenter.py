"""``gliotype predict --segmenter``: a case without a tumour mask is segmented by the user's model,
the mask is used and shown for checking; a given mask wins (issue 15, "No tumour mask").

The segmenter is a tiny SegResNet trained here for seconds on patients of the tiny run's own
synthetic cohort (not the one predicted) and saved as a MONAI bundle (tests/segmenter_helpers.py).
"""

from __future__ import annotations

import json
import logging
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from pred_helpers import case_inputs, split_ids
from segmenter_helpers import dice, load_case, make_network, train_tiny, write_bundle
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.prediction import predict_patient

#: Trained for seconds, the tiny model is under-confident away from the tumour: its
#: gliotype_segmenter.json raises the threshold of the sigmoid regions, as a user's may.
SPEC = {"inputs": ["t1c", "t1", "t2", "flair"], "output": "regions", "channels": ["TC", "WT", "ET"],
        "threshold": 0.8, "roi_size": [128, 128, 96]}


@pytest.fixture(scope="module")
def segmenter(tiny_run, tmp_path_factory):
    run, cohort = tiny_run / "run", tiny_run / "cohort"
    train_ids = split_ids(run, "A")[:3]
    with torch.random.fork_rng():
        net = train_tiny(make_network(0), [load_case(cohort, pid) for pid in train_ids], steps=80)
    return write_bundle(tmp_path_factory.mktemp("seg") / "tiny_brats_bundle", net, spec=SPEC)


def test_predict_segments_a_case_without_mask(tiny_run, segmenter, tmp_path):
    run, cohort = tiny_run / "run", tiny_run / "cohort"
    pid = split_ids(run)[0]
    case = tmp_path / pid
    shutil.copytree(cohort / pid, case)
    (case / f"{pid}_seg.nii.gz").unlink()  # no mask in the case folder
    out = tmp_path / "pred"
    res = CliRunner().invoke(app, ["predict", "--model", str(run / "model"), "--case", str(case), "--out", str(out),
                                   "--no-explain", "--draws", "5", "--segmenter", str(segmenter)])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "prediction.json").read_text())
    seg = rec["segmentation"]
    assert seg["source"] == "auto" and seg["segmenter"] == "tiny_brats_bundle" and seg["kind"] == "monai-bundle"
    assert seg["file"] == f"{pid}_seg_auto.nii.gz" and seg["figure"] == "segmentation.png"
    assert set(seg["volumes_ml"]) == {"necrotic_core", "edema", "enhancing", "whole_tumor"}
    mask = np.asarray(nib.load(out / seg["file"]).dataobj)
    truth = np.asarray(nib.load(cohort / pid / f"{pid}_seg.nii.gz").dataobj)
    assert seg["volumes_ml"]["whole_tumor"] == pytest.approx(np.count_nonzero(mask) * 0.008, abs=1e-3)
    assert dice(mask > 0, truth > 0) > 0.2  # it found the tumour (a tiny model, seconds of training)
    assert {f"{pid}_seg_auto.nii.gz", "segmentation.png"} <= set(rec["outputs"])
    assert (out / "segmentation.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "Automatic segmentation: check it" in html and "automatic segmentation: check it" in html
    assert str(tmp_path) not in (out / "prediction.json").read_text() + html


def test_a_given_mask_wins_and_the_segmenter_is_not_run(tiny_run, tiny_model, segmenter, tmp_path, caplog):
    pid = split_ids(tiny_run / "run")[0]
    inputs = case_inputs(tiny_run / "cohort", pid)
    with caplog.at_level(logging.INFO, logger="gliotype"):
        res = predict_patient(tiny_model.without([pid]), inputs, None, tmp_path / "p", draws=0, explain=False,
                              segmenter=segmenter)
    assert f"patient {pid}: a tumour mask was given: it is used and the segmenter tiny_brats_bundle is not run" \
        in caplog.text
    assert res.record["segmentation"] == {"source": "given"}
    assert not (tmp_path / "p" / f"{pid}_seg_auto.nii.gz").exists()
    assert not (tmp_path / "p" / "segmentation.png").exists()
    assert "Automatic segmentation" not in (tmp_path / "p" / "report.html").read_text()


def test_predict_without_mask_or_segmenter_and_with_a_bad_segmenter(tiny_run, tmp_path):
    run = tiny_run / "run"
    pid = split_ids(run)[0]
    files = case_inputs(tiny_run / "cohort", pid)
    args = ["predict", "--model", str(run / "model"), "--out", str(tmp_path / "o"),
            *[a for r in ("t1", "t1c", "t2", "flair") for a in (f"--{r}", str(files[r]))]]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "missing --mask" in res.output
    res = CliRunner().invoke(app, [*args, "--segmenter", str(tmp_path)])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "neither a MONAI bundle" in res.output and not (tmp_path / "o").exists()
