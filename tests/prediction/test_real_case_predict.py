"""``predict`` on the real TCGA case (SyN registration; its IDH status is unknown: the
pipeline is checked, not the answer). The 20 s goal of issue 17 is measured by benchmarks/bench_predict.py."""

from __future__ import annotations

import json
import time

import nibabel as nib
import numpy as np
import pytest
from real_data import REAL_DATA, requires_real_case

from gliotype.prediction import inputs_from_case, predict_patient

PID = "TCGA-DU-7294"

pytestmark = [requires_real_case, pytest.mark.slow]


def test_predict_real_case(tiny_model, tmp_path):
    pid, inputs = inputs_from_case(REAL_DATA / PID)
    assert pid == PID and set(inputs) == {"t1", "t1c", "t2", "flair", "mask"}
    t0 = time.perf_counter()
    res = predict_patient(tiny_model, inputs, pid, tmp_path / "out", draws=50)
    seconds = time.perf_counter() - t0
    print(f"real case {PID}: P(IDH mutant) {res.probability:.3f} [{res.interval[0]:.3f}, {res.interval[1]:.3f}] "
          f"{res.decision} in {seconds:.1f} s (tiny model)")
    rec = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert 0 <= rec["idh_mutant_probability"] <= 1 and rec["patient_id"] == PID
    checks = {c["check"]: c for c in rec["input_checks"]}
    assert checks["registration to the template"]["result"] == "SyN"
    assert checks["brain mask Dice with the template"]["ok"]
    # the Grad-CAM map goes back to the patient's own T1c grid through the inverse registration
    t1c = nib.load(inputs["t1c"])
    native = nib.load(tmp_path / "out" / "gradcam_native.nii.gz")
    assert native.shape == t1c.shape and np.allclose(native.affine, t1c.affine, atol=1e-3)
    cam = np.asarray(native.dataobj)
    tumor = np.asarray(nib.load(inputs["mask"]).dataobj) > 0
    assert cam.max() > 0 and cam[tumor].mean() > cam[~tumor].mean()  # the map sits on the tumor
    html = (tmp_path / "out" / "report.html").read_text()
    assert PID in html and str(REAL_DATA) not in html and f"{PID}_t1" not in html and f"{PID}_seg" not in html
