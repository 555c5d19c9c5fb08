"""preprocess_cohort on a tiny template-space synthetic cohort: outputs, cache, failures."""

import hashlib
import json
import os
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gliotype.atlases import load_template
from gliotype.errors import CaseError
from gliotype.preprocessing import (
    PREPROCESS_VERSION,
    CaseResult,
    PERCENTILES,
    SEQUENCES,
    STANDARD_SCALE,
    cache_key,
    load_preprocessed,
    preprocess_case,
    preprocess_cohort,
)

from pp_helpers import brats_row, config, once, synth

GOOD = ["SYN-0000", "SYN-0001"]
FA = "SYN-0001"  # the FA patient of this cohort (seed 3)


def _broken(root, src, pid, mask_fn=None, drop=None, t1_fn=None):
    """Copy patient ``src`` as ``pid``, with its mask changed by ``mask_fn``, its T1 by ``t1_fn``
    or a file removed."""
    out = root / pid
    out.mkdir()
    for f in (root / src).iterdir():
        shutil.copyfile(f, out / f.name.replace(src, pid))
    if mask_fn is not None:
        seg = nib.load(out / f"{pid}_seg.nii.gz")
        data = mask_fn(np.asarray(seg.dataobj).copy())
        nib.save(nib.Nifti1Image(data.astype(np.uint8), seg.affine), out / f"{pid}_seg.nii.gz")
    if t1_fn is not None:
        t1 = nib.load(out / f"{pid}_t1.nii.gz")
        nib.save(nib.Nifti1Image(t1_fn(np.asarray(t1.dataobj, np.float32).copy()), t1.affine), out / f"{pid}_t1.nii.gz")
    if drop:
        (out / f"{pid}_{drop}.nii.gz").unlink()
    return out


def _outside(seg):
    out = np.zeros_like(seg)
    out[:4, :4, :4] = 1  # a tumour in the air
    return out


def _label7(seg):
    seg[seg == 2] = 7
    return seg


def _nan_in_the_brain(t1):
    t1[tuple(np.argwhere(t1 > 0)[len(np.argwhere(t1 > 0)) // 2])] = np.nan  # one voxel in the brain
    return t1


def _build(folder):
    root = synth(folder / "data", patients=2, fa_cases=1, seed=3)
    _broken(root, "SYN-0000", "BAD-empty", lambda s: np.zeros_like(s))
    _broken(root, "SYN-0000", "BAD-nan", t1_fn=_nan_in_the_brain)
    _broken(root, "SYN-0000", "BAD-outside", _outside)
    _broken(root, "SYN-0001", "BAD-label", _label7)
    _broken(root, "SYN-0001", "BAD-missing", drop="t2")
    rows = [brats_row(p) for p in sorted(root.iterdir()) if p.is_dir()]
    missing = next(r for r in rows if r["patient_id"] == "BAD-missing")
    missing["t2"] = str(root / "BAD-missing" / "BAD-missing_t2.nii.gz")  # listed but absent
    first = preprocess_cohort(pd.DataFrame(rows), folder / "work", config(), workers=2)
    return {"rows": rows, "first": first.to_dict("records")}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """The cohort and the table of its first run, once per test run."""
    folder, res = once(tmp_path_factory, "mni-cohort", _build)
    rows = res["rows"]
    assert [r["patient_id"] for r in rows if r["fa"] and r["patient_id"] in GOOD] == [FA]
    return folder / "data", rows, folder / "work", pd.DataFrame(res["first"])


def _status(table):
    return dict(zip(table["patient_id"], zip(table["status"], table["reason"])))


def test_good_cases_done_bad_cases_failed_with_reasons(cohort):
    _, rows, work, first = cohort
    assert list(first.columns) == ["patient_id", "status", "reason", "seconds"]
    assert list(first["patient_id"]) == [r["patient_id"] for r in rows]
    st = _status(first)
    for pid in GOOD:
        assert st[pid] == ("done", "")
    assert st["BAD-empty"][0] == "failed" and "mask is empty" in st["BAD-empty"][1]
    assert st["BAD-outside"][0] == "failed" and "outside the brain" in st["BAD-outside"][1]
    assert st["BAD-label"][0] == "failed" and "unknown label values 7" in st["BAD-label"][1]
    assert st["BAD-missing"][0] == "failed" and "t2 file not found" in st["BAD-missing"][1]
    # the validator's rule and message (gliotype.input.check_finite): never repaired silently
    assert st["BAD-nan"] == ("failed", "BAD-nan_t1.nii.gz: t1 has 1 NaN or infinite voxels "
                                       "(preprocess.nonfinite=zero would set them to 0)")
    for pid, (_, reason) in st.items():
        assert "\n" not in reason and "Traceback" not in reason and "/" not in reason
        if pid.startswith("BAD"):
            assert not (work / "patients" / pid / "done.json").exists()
    assert (work / "preprocessing.csv").exists()
    # the failure is recorded for the user to inspect
    qc = json.loads((work / "patients" / "BAD-outside" / "preprocessed" / "qc.json").read_text())
    assert qc["passed"] is False and qc["tumor_inside_brain"] == 0.0


def test_outputs_on_the_template_grid(cohort):
    _, _, work, _ = cohort
    tpl = load_template(2)
    for pid in GOOD:
        out = work / "patients" / pid / "preprocessed"
        for name in [f"{s}.nii.gz" for s in SEQUENCES] + ["mask.nii.gz", "brain_mask.nii.gz"]:
            img = nib.load(out / name)
            assert img.shape == tpl.shape and np.allclose(img.affine, tpl.affine, atol=1e-4), name
        assert (out / "fa.nii.gz").exists() == (pid == FA)
        assert (out / "preprocess.log").read_text().strip()
        meta = json.loads((out / "transforms" / "transforms.json").read_text())
        assert meta["type"].startswith("identity") and all((out / "transforms" / f).exists() for f in meta["forward"])
        qc = json.loads((out / "qc.json").read_text())
        assert qc["passed"] and qc["brain_dice"] >= 0.9 and qc["tumor_volume_ratio"] == 1.0
        assert np.isfinite(qc["similarity_mattes_mi"]) and qc["skull_stripped"]["detected"] is True
        done = json.loads((work / "patients" / pid / "done.json").read_text())
        assert len(done["key"]) == 64 and set(done["inputs"]) >= {"t1", "t1c", "t2", "flair", "mask"}


def test_load_preprocessed(cohort):
    root, _, work, _ = cohort
    tpl = load_template(2)
    case = load_preprocessed(work, FA)
    assert case["sequences"].shape == (4, *tpl.shape) and case["sequences"].dtype == np.float32
    assert case["mask"].dtype == np.uint8 and case["brain"].dtype == bool
    assert case["fa"] is not None and case["fa"].shape == tpl.shape and 0 <= case["fa"].min() <= case["fa"].max() <= 1
    assert np.allclose(case["affine"], tpl.affine)
    # already on the template grid: the mask is the input mask, labels untouched
    seg = np.asarray(nib.load(root / FA / f"{FA}_seg.nii.gz").dataobj)
    assert np.array_equal(case["mask"], seg)
    # histogram standardisation: healthy-brain landmarks on the standard scale
    healthy = case["brain"] & (case["mask"] == 0)
    for seq in case["sequences"]:
        assert np.allclose(np.percentile(seq[healthy], PERCENTILES), STANDARD_SCALE, atol=1.5)
        assert np.all(seq[~case["brain"]] == 0)
    assert load_preprocessed(work, "SYN-0000")["fa"] is None
    with pytest.raises(CaseError, match="not preprocessed"):
        load_preprocessed(work, "BAD-empty")


def test_rerun_skips_and_changed_input_is_redone(cohort):
    root, rows, work, _ = cohort
    done0 = (work / "patients" / "SYN-0000" / "done.json").read_text()
    again = _status(preprocess_cohort(pd.DataFrame(rows), work, config(), workers=1))
    assert again["SYN-0000"][0] == again["SYN-0001"][0] == "skipped"
    assert again["BAD-empty"][0] == "failed"  # failures are retried, and fail again
    # change one input file of SYN-0001: only that patient is redone
    t2 = root / "SYN-0001" / "SYN-0001_t2.nii.gz"
    img = nib.load(t2)
    data = np.asarray(img.dataobj).copy()
    data[data > 0] += 1
    nib.save(nib.Nifti1Image(data, img.affine), t2)
    good = pd.DataFrame([r for r in rows if r["patient_id"] in GOOD])
    third = _status(preprocess_cohort(good, work, config()))
    assert third == {"SYN-0000": ("skipped", ""), "SYN-0001": ("done", "")}
    assert (work / "patients" / "SYN-0000" / "done.json").read_text() == done0


def test_cache_key_covers_config_and_inputs():
    hashes = {"t1": "a", "t1c": "b"}
    base = cache_key(hashes, config())
    assert cache_key(dict(hashes), config()) == base
    assert cache_key(hashes, config(normalization="zscore")) != base
    assert cache_key({**hashes, "t1": "c"}, config()) != base
    # the ITK thread count changes registrations: another count than the default (2) is another key
    assert cache_key(hashes, config(), itk_threads=2) == base
    assert cache_key(hashes, config(), itk_threads=1) != base
    assert cache_key(hashes, config(), itk_threads=4) not in (base, cache_key(hashes, config(), itk_threads=1))
    # preprocess.nonfinite: zero changes outputs, so it changes the key; the default (reject) keeps
    # the key of the section as it was before the option existed (a finished case's outputs are the same)
    assert cache_key(hashes, config(nonfinite="zero")) != base
    older = config().preprocess.model_dump(mode="json")
    del older["nonfinite"]
    text = json.dumps({"version": PREPROCESS_VERSION, "inputs": hashes, "preprocess": older}, sort_keys=True)
    assert base == hashlib.sha256(text.encode()).hexdigest()


def test_nonfinite_zero_repairs_with_a_warning_and_a_qc_record(cohort, tmp_path, caplog):
    root, rows, _, _ = cohort
    row = next(r for r in rows if r["patient_id"] == "BAD-nan")
    with caplog.at_level("WARNING", logger="gliotype.preprocessing"):
        res = preprocess_case(row, tmp_path, config(nonfinite="zero"))
    assert res.status == "done", res.reason
    note = "t1: 1 NaN or infinite voxels set to 0 (preprocess.nonfinite=zero)"
    assert f"patient BAD-nan: {note}" in caplog.messages
    out = tmp_path / "patients" / "BAD-nan" / "preprocessed"
    assert json.loads((out / "qc.json").read_text())["nonfinite"] == {"rule": "zero", "set_to_zero": {"t1": 1}}
    assert f"WARNING {note}" in (out / "preprocess.log").read_text()
    assert np.all(np.isfinite(load_preprocessed(tmp_path, "BAD-nan")["sequences"]))
    # the default rule is recorded too, and changes the key: the repaired outputs are not reused
    assert preprocess_case(row, tmp_path, config()).status == "failed"
    good = next(r for r in rows if r["patient_id"] == "SYN-0000")
    assert preprocess_case(good, tmp_path, config()).info["qc"]["nonfinite"] == {"rule": "reject", "set_to_zero": {}}


def test_the_voxel_limit_of_the_config_reaches_preprocessing(cohort, tmp_path):
    _, rows, _, _ = cohort
    cfg = config()
    cfg = cfg.model_copy(update={"input": cfg.input.model_copy(update={"max_voxels": 1000})})
    res = preprocess_case(next(r for r in rows if r["patient_id"] == "SYN-0000"), tmp_path, cfg)
    assert res.status == "failed" and res.reason.startswith("SYN-0000_t1.nii.gz: t1 image header declares ")
    assert res.reason.endswith("over the limit of 1,000 (input.max_voxels)")


def test_config_change_redoes_a_case(cohort, tmp_path):
    _, rows, _, _ = cohort
    row = next(r for r in rows if r["patient_id"] == "SYN-0001")
    first = preprocess_case(row, tmp_path, config())
    assert first.status == "done" and first.info["qc"]["brain_dice"] > 0.9
    assert preprocess_case(pd.Series(row), tmp_path, config()).status == "skipped"
    z = preprocess_case(row, tmp_path, config(normalization="zscore"))
    assert z.status == "done"
    seqs = load_preprocessed(tmp_path, "SYN-0001")["sequences"]
    brain = load_preprocessed(tmp_path, "SYN-0001")["brain"]
    assert abs(float(seqs[0][brain].mean())) < 0.5  # z-scores now


def test_bad_rows_never_raise(tmp_path):
    assert preprocess_case({"patient_id": "../x"}, tmp_path, config()).status == "failed"
    r = preprocess_case({"patient_id": "P1", "t1": None}, tmp_path, config())
    assert r.status == "failed" and r.reason == ("no t1, t1c, t2 or flair file in the manifest "
                                                "(input.missing_sequences allows 0 missing sequences)")
    dup = pd.DataFrame([{"patient_id": "P1"}, {"patient_id": "P1"}])
    table = preprocess_cohort(dup, tmp_path, config())
    assert list(table["status"]) == ["failed", "failed"] and "duplicate" in table["reason"][1]


def _fake_case(row, workdir, config, itk_threads=1):
    """``preprocess_case`` whose worker process dies for DIES-* (as the OOM killer would end it)
    and raises for RAISES."""
    pid = row["patient_id"]
    if pid.startswith("DIES"):
        os._exit(1)
    if pid == "RAISES":
        raise RuntimeError("boom\nsecond line")
    return CaseResult(pid, "done", "", {"seconds": 0.0})


def test_a_raising_case_or_a_dead_worker_is_a_failed_case(tmp_path, monkeypatch):
    from gliotype.preprocessing import cohort as cohort_module

    monkeypatch.setattr(cohort_module, "preprocess_case", _fake_case)
    rows = pd.DataFrame([{"patient_id": p} for p in ("A", "RAISES", "B")])
    table = preprocess_cohort(rows, tmp_path / "work", config(), workers=2)
    assert table["patient_id"].tolist() == ["A", "RAISES", "B"]
    assert _status(table) == {"A": ("done", ""), "B": ("done", ""), "RAISES": ("failed", "unexpected error: boom")}
    # a case whose worker dies twice (first run and retry) is failed, the run goes on
    rows = pd.DataFrame([{"patient_id": p} for p in ("DIES-1", "DIES-2")])
    table = preprocess_cohort(rows, tmp_path / "work", config(), workers=2)
    assert set(_status(table).values()) == {("failed", "the worker process crashed (out of memory?)")}
