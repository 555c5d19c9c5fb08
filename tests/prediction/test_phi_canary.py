"""Patient data stays private: a canary string in every text field of every NIfTI header, in a
header extension and in the input folder path reaches no output of validation, preprocessing
or prediction, compressed or not (issue 14, the fault-injection suite)."""

from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
from pred_helpers import case_inputs, split_ids

from gliotype import stages
from gliotype.config import load_config
from gliotype.prediction import predict_patient

CANARY = "ZQX7CANARY"
#: The NIfTI-1 header's free-text fields (nibabel names) and their lengths.
TEXT_FIELDS = {"descrip": 80, "aux_file": 24, "intent_name": 16, "db_name": 18, "data_type": 10}


def _with_canary(src, dst) -> None:
    img = nib.load(str(src))
    out = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header.copy())
    for field, size in TEXT_FIELDS.items():
        out.header[field] = (CANARY + "-" + field)[:size].encode()
    out.header.extensions.append(nib.nifti1.Nifti1Extension("comment", f"{CANARY} patient name, birth date".encode()))
    nib.save(out, str(dst))


def _leaks(folder) -> list[str]:
    """Files under ``folder`` whose bytes (decompressed when gzip) contain the canary (any case)."""
    from dicom_helpers import leaks

    return leaks(folder, (CANARY,))


def test_a_header_and_path_canary_reaches_no_output(tiny_run, tiny_model, tmp_path):
    pid = split_ids(tiny_run / "run")[0]
    folder = tmp_path / f"{CANARY}-Doe-Jane-1961" / pid
    folder.mkdir(parents=True)
    inputs = {}
    for role, src in case_inputs(tiny_run / "cohort", pid).items():
        inputs[role] = folder / src.name
        _with_canary(src, inputs[role])
    assert CANARY.encode() in gzip.decompress(inputs["t1"].read_bytes())  # the canary is really there

    out = tmp_path / "outputs"
    row = {"patient_id": pid, **{r: str(p) for r, p in inputs.items()}, "idh": 1}
    manifest = tmp_path / "manifest.csv"  # an input: it holds the paths
    pd.DataFrame([row]).to_csv(manifest, index=False)
    report = stages.validate(manifest, report=out / "validation.csv")
    assert report.ok == [pid], report.status()
    work = out / "work"
    assert stages.prepare(manifest, work, load_config("tiny")).ids == [pid]
    predict_patient(tiny_model.without([pid]), inputs, None, out / "prediction", draws=5, explainer_epochs=5)
    assert (out / "prediction" / "prediction.json").exists() and (work / "patients" / pid / "done.json").exists()
    assert _leaks(out) == []
    assert all(CANARY not in line for line in report.status(warnings=True).astype(str).to_numpy().ravel())
    assert len(_leaks(folder.parent)) == len(inputs)  # the detector sees it in compressed headers
    shutil.rmtree(folder.parent)


def test_a_dicom_case_canary_reaches_no_output(tiny_run, tiny_model, tmp_path, caplog):
    """``gliotype predict --case`` on a folder of DICOM studies (issue 15): PatientName, IDs, birth
    date, institution... in every image header, a canary in the folder path and in the NIfTI mask's
    header; none of it in the prediction, the report or the log, and the conversions are gone after."""
    import logging

    from dicom_helpers import BIRTH_DATE, SEQUENCE_TAGS, leaks, write_series
    from dicom_helpers import CANARY as DICOM_CANARY

    from gliotype.prediction import case_folder_inputs

    caplog.set_level(logging.DEBUG, logger="gliotype")
    pid = split_ids(tiny_run / "run")[0]
    folder = tmp_path / f"{DICOM_CANARY}-{CANARY}" / pid
    sources = case_inputs(tiny_run / "cohort", pid)
    for number, role in enumerate(("t1", "t1c", "t2", "flair"), start=3):
        img = nib.load(str(sources[role]))
        write_series(folder / f"{DICOM_CANARY}-study" / f"S{number}", np.asarray(img.dataobj), number,
                     affine=img.affine, **SEQUENCE_TAGS[role])
    _with_canary(sources["mask"], folder / "tumor_seg.nii.gz")

    out = tmp_path / "outputs"
    with case_folder_inputs(folder) as (found, inputs):
        assert found == pid and sorted(inputs) == ["flair", "mask", "t1", "t1c", "t2"]
        converted = inputs["t1c"].parent
        predict_patient(tiny_model.without([pid]), inputs, found, out / "prediction", draws=5, explainer_epochs=5)
    assert not converted.exists()
    record = json.loads((out / "prediction" / "prediction.json").read_text())
    assert record["patient_id"] == pid
    assert _leaks(out) == [] and leaks(out, (DICOM_CANARY, "CANARY", BIRTH_DATE)) == []
    for needle in (CANARY, DICOM_CANARY, BIRTH_DATE):
        assert needle.lower() not in caplog.text.lower(), needle
    shutil.rmtree(folder.parent)
