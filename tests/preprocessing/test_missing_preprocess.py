"""Preprocessing a case that lacks a sequence (issue 15, ``input.missing_sequences``): the reference
grid and the registration's moving image fall back, the missing sequence is an all-zero volume on
the template grid, ``qc.json`` and ``done.json`` name it; the other sequences are what they are in
the complete case; a case with more missing than allowed fails in one line."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gliotype.atlases import load_template
from gliotype.preprocessing import SEQUENCES, load_preprocessed, preprocess_case, preprocess_cohort
from pp_helpers import brats_row, config, once, synth

PID = "SYN-0000"


def _allowing(n, **preprocess):
    cfg = config(**preprocess)
    return cfg.model_copy(update={"input": cfg.input.model_copy(update={"missing_sequences": n})})


def _build_native(folder):
    root = synth(folder / "data", patients=1, fa_cases=0, space="native", seed=5)
    row = brats_row(root / PID)
    row["t1c"] = None  # most often the missing one
    table = preprocess_cohort(pd.DataFrame([row]), folder / "work", _allowing(1, registration="Affine"))
    return {"row": row, "table": table.to_dict("records")}


@pytest.fixture(scope="module")
def native_without_t1c(tmp_path_factory):
    folder, res = once(tmp_path_factory, "native-without-t1c", _build_native)
    return res["row"], folder / "work", pd.DataFrame(res["table"])


def test_a_native_case_without_t1c_is_registered_from_t1(native_without_t1c):
    row, work, table = native_without_t1c
    assert table["status"].tolist() == ["done"], table["reason"].tolist()
    qc = json.loads((work / "patients" / PID / "preprocessed" / "qc.json").read_text())
    assert qc["missing_sequences"] == ["t1c"] and qc["reference_sequence"] == "t1"
    assert qc["moving"] == "t1"  # preprocess.moving is t1c: the fallback is the reference sequence
    assert qc["registration"] == "Affine" and qc["brain_dice"] >= 0.9 and np.isfinite(qc["similarity_mattes_mi"])
    assert set(qc["coregistration"]) == {"t2", "flair"}  # onto the t1 grid; no t1c
    done = json.loads((work / "patients" / PID / "done.json").read_text())
    assert done["missing_sequences"] == ["t1c"] and "t1c" not in done["inputs"]
    tpl = load_template(2)
    case = load_preprocessed(work, PID)
    assert case["missing_sequences"] == ("t1c",)
    seqs = dict(zip(SEQUENCES, case["sequences"]))
    assert not np.any(seqs["t1c"])  # written, on the template grid, all zero
    img = nib.load(work / "patients" / PID / "preprocessed" / "t1c.nii.gz")
    assert img.shape == tpl.shape and np.allclose(img.affine, tpl.affine, atol=1e-4)
    for s in ("t1", "t2", "flair"):
        assert seqs[s][case["brain"]].std() > 1


def _build_template(folder):
    root = synth(folder / "data", patients=1, fa_cases=0, seed=3)
    row = brats_row(root / PID)
    out = {}
    for name, drop, cfg in (("complete", None, config(normalization="zscore_gm")),
                            ("no-flair", "flair", _allowing(1, normalization="zscore_gm")),
                            ("no-t1c", "t1c", _allowing(1, normalization="zscore_gm"))):
        r = dict(row, patient_id=f"{name}")
        if drop:
            r[drop] = ""
        res = preprocess_case(r, folder / "work", cfg)
        out[name] = [res.status, res.reason]
    return out


@pytest.fixture(scope="module")
def on_template(tmp_path_factory):
    folder, res = once(tmp_path_factory, "template-missing", _build_template)
    return folder / "work", res


def test_a_missing_sequence_changes_no_other_output(on_template):
    """On the template grid (no registration), a case without flair or without t1c gives the complete
    case's other volumes bit for bit (each sequence is normalised on its own; the brain mask of a
    skull-stripped input is the reference sequence's non-zero voxels, the same brain here), and the
    grey-matter normalisation leaves the missing volume at zero."""
    work, res = on_template
    assert all(status == "done" for status, _ in res.values()), res
    full = load_preprocessed(work, "complete")
    assert full["missing_sequences"] == ()
    for name, missing in (("no-flair", "flair"), ("no-t1c", "t1c")):
        case = load_preprocessed(work, name)
        assert case["missing_sequences"] == (missing,)
        for i, s in enumerate(SEQUENCES):
            if s == missing:
                assert not np.any(case["sequences"][i])
            else:
                assert np.array_equal(case["sequences"][i], full["sequences"][i]), (name, s)
        assert np.array_equal(case["mask"], full["mask"])
        qc = json.loads((work / "patients" / name / "preprocessed" / "qc.json").read_text())
        assert qc["moving"] == ("t1" if missing == "t1c" else "t1c")


def test_more_missing_than_allowed_fails_in_one_line_naming_the_role(tmp_path):
    row = {"patient_id": "P1", "t1": "a.nii.gz", "t1c": "", "t2": "b.nii.gz", "flair": None, "mask": "m.nii.gz"}
    r = preprocess_case(row, tmp_path, _allowing(1))
    assert r.status == "failed"
    assert r.reason == "no t1c or flair file in the manifest (input.missing_sequences allows 1 missing sequence)"
    r = preprocess_case(dict(row, t1c="c.nii.gz", flair="d.nii.gz"), tmp_path, _allowing(0))
    assert r.status == "failed" and "t1 file not found" in r.reason  # all given: on to the files


def test_the_cohort_stages_keep_a_patient_without_a_sequence(on_template, tmp_path):
    """``gliotype run`` / ``preprocess``: with the rule allowing it, the validator keeps a patient whose
    manifest cell is empty (a warning in its row), and preprocessing and the modalities process it;
    its modalities record says which sequence is missing (the one owner later stages ask)."""
    from gliotype import stages
    from gliotype.input import write_manifest
    from gliotype.modalities.build import missing_sequences

    data = on_template[0].parent / "data"
    row = brats_row(data / PID)
    rows = pd.DataFrame([dict(row, patient_id="FULL"), dict(row, patient_id="NOFLAIR", flair="")])
    manifest = write_manifest(rows, tmp_path / "manifest.csv")
    usable = stages.cohort(None, manifest, tmp_path / "run", 1, config())
    assert usable["patient_id"].tolist() == ["FULL"]
    status = pd.read_csv(tmp_path / "run" / "validation.csv")
    assert "no flair file in the manifest" in status.set_index("patient_id").loc["NOFLAIR", "reason"]
    cfg = _allowing(1)
    usable = stages.cohort(None, manifest, tmp_path / "run", 1, cfg)
    assert usable["patient_id"].tolist() == ["FULL", "NOFLAIR"]
    checked = stages.validate(manifest, config=cfg)
    assert "missing flair" in checked.summary()
    prepared = stages.prepare(usable, tmp_path / "work", cfg)
    assert prepared.ids == ["FULL", "NOFLAIR"], prepared.summary()
    assert missing_sequences(tmp_path / "work", "NOFLAIR") == ("flair",)
    assert missing_sequences(tmp_path / "work", "FULL") == ()
