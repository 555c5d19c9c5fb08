"""The applicability flags (issue 16), on the shared tiny model: the export's training ranges
(``applicability.json``, compared with numbers computed here from the training patients' own files),
a training patient inside on every check, an intensity-rescaled sequence not flagged, a swapped
sequence and a larger tumour flagged with their reasons, the flags of modified records, and a model
folder exported before the file, which still predicts and says ``unknown``."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from pred_helpers import case_inputs, split_ids
from scipy import ndimage

from gliotype.bundle import write_manifest
from gliotype.config import load_config
from gliotype.errors import GliotypeError
from gliotype.layout import ModelDir, WorkDir
from gliotype.preprocessing.cache import PREPROCESS_VERSION
from gliotype.prediction import ModelError, load_model, predict_patient
from gliotype.prediction.applicability import (
    MEASURES,
    UNKNOWN,
    case_measures,
    flag_values,
    measure_reference,
)

SEQUENCES = ("t1", "t1c", "t2", "flair")
KW = dict(draws=3, explain=False)


def _reference(model) -> dict:
    return json.loads(ModelDir.of(model.folder).applicability.read_text())


def _stored_training(model):
    """u_T, u_B and IDs of the labelled (classifier-training) nodes, from nodes.npz."""
    with np.load(model.folder / "population_graph" / "nodes.npz", allow_pickle=False) as z:
        keep = z["labelled"].astype(bool)
        return z["u_t"][keep].astype(np.float64), z["u_b"][keep].astype(np.float64), \
            [str(p) for p in z["patient_id"][keep]]


def _training_values(run) -> dict[str, list[float]]:
    """Each measure of every classifier-training patient, read here from its qc.json and volumes."""
    work = WorkDir.of(run / "work")
    values: dict[str, list[float]] = {}
    for pid in split_ids(run, "B"):
        case = work.case(pid)
        qc = json.loads(case.qc.read_text())
        tumour = np.asarray(nib.load(case.mask).dataobj) > 0
        row = {"brain_dice": qc["brain_dice"], "similarity_mattes_mi": qc["similarity_mattes_mi"],
               "tumour_volume_ml": qc["tumor_native_mm3"] / 1000}
        for s in SEQUENCES:
            row[f"tumour_intensity_{s}"] = float(np.median(np.asarray(nib.load(case.sequence(s)).dataobj)[tumour]))
        for k, v in row.items():
            values.setdefault(k, []).append(v)
    return values


def _loo_nearest(model) -> np.ndarray:
    u_t, u_b, _ = _stored_training(model)
    x = np.concatenate([u_t, u_b], 1)
    sd = x.std(0)
    z = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    d = np.sqrt(((z[:, None] - z[None]) ** 2).mean(-1))
    np.fill_diagonal(d, np.inf)
    return d.min(1)


def _check(block: dict, key: str) -> dict:
    return next(c for c in block["checks"] if c["measure"] == key)


def _write_like(src, data, dst):
    img = nib.load(src)
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), img.affine), dst)
    return dst


# --------------------------------------------------------------------------- export


def test_export_writes_the_training_ranges_of_the_classifier_training_patients(tiny_run, tiny_model):
    run, ref = tiny_run / "run", _reference(tiny_model)
    b = split_ids(run, "B")
    assert ref["patients"] == len(b) and sorted(_stored_training(tiny_model)[2]) == sorted(b)
    assert ref["percentiles"] == [1.0, 99.0] == list(tiny_model.config.prediction.applicability_percentiles)
    assert "applicability.json" in json.loads((tiny_model.folder / "manifest.json").read_text())["files"]
    expected = {**_training_values(run), "embedding_distance": list(_loo_nearest(tiny_model))}
    assert set(expected) == {m.key for m in MEASURES} == set(ref["measures"])
    for key, vals in expected.items():
        got = ref["measures"][key]
        assert got["n"] == len(b), key
        assert got["min"] == pytest.approx(min(vals), abs=1e-5) and got["max"] == pytest.approx(max(vals), abs=1e-5)
        # 4 patients: the 1st-99th percentile band ends on training values, so it is their min-max
        assert (got["low"], got["high"]) == (got["min"], got["max"]), key
    assert ref["training_outside"] == {"patients": 0, "share": 0.0}
    assert tiny_model.applicability is not None and len(tiny_model.applicability.training) == len(b)


def test_a_narrower_band_ends_on_training_values_and_flags_training_patients(tiny_run, tiny_model):
    run = tiny_run / "run"
    u_t, u_b, ids = _stored_training(tiny_model)
    ref = measure_reference(run / "work", ids, u_t, u_b, percentiles=(40, 60))
    values = _training_values(run)
    vol = np.asarray(values["tumour_volume_ml"])
    got = ref["measures"]["tumour_volume_ml"]
    assert got["low"] == pytest.approx(np.percentile(vol, 40, method="lower"))
    assert got["high"] == pytest.approx(np.percentile(vol, 60, method="higher"))
    assert got["min"] < got["low"] < got["high"] < got["max"]
    assert ref["training_outside"]["patients"] > 0  # the extreme training patients are outside a narrow band


def test_the_band_is_a_config_option_checked_on_load():
    assert load_config("tiny", overrides=["prediction.applicability_percentiles=[5, 95]"]) \
        .prediction.applicability_percentiles == (5.0, 95.0)
    for bad in ("[50, 10]", "[-1, 99]", "[1, 101]"):
        with pytest.raises(GliotypeError, match="applicability_percentiles"):
            load_config("tiny", overrides=[f"prediction.applicability_percentiles={bad}"])


# --------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def cases(tiny_run, tiny_model, tmp_path_factory):
    """A classifier-training patient predicted as given, with its FLAIR x 10, and with its T1 given as FLAIR
    and its mask dilated to more than twice the largest training tumour."""
    tmp = tmp_path_factory.mktemp("applicability")
    pid = split_ids(tiny_run / "run", "B")[0]
    inputs = case_inputs(tiny_run / "cohort", pid)
    scaled = {**inputs, "flair": _write_like(inputs["flair"], 10 * np.asarray(nib.load(inputs["flair"]).dataobj),
                                             tmp / "scaled_flair.nii.gz")}
    mask = nib.load(inputs["mask"])
    labels = np.asarray(mask.dataobj)
    voxel_ml = float(np.prod(mask.header.get_zooms()[:3])) / 1000
    target = 2 * _reference(tiny_model)["measures"]["tumour_volume_ml"]["max"]
    grown = labels > 0
    while grown.sum() * voxel_ml <= target:
        grown = ndimage.binary_dilation(grown)
    big = np.where(grown & (labels == 0), 2, labels)
    unusual = {**inputs, "flair": inputs["t1"], "mask": _write_like(inputs["mask"], big, tmp / "big_mask.nii.gz")}
    return {"pid": pid, "inputs": inputs,
            **{name: predict_patient(tiny_model, files, pid, tmp / name, **KW)
               for name, files in (("given", inputs), ("scaled", scaled), ("unusual", unusual))}}


def test_a_training_patient_is_inside_on_every_check_measured_as_at_export(tiny_run, cases):
    pred = cases["given"]
    app = json.loads((pred.out_dir / "prediction.json").read_text())["applicability"]
    assert app["in_domain"] is True and app["reasons"] == []
    assert [c["flag"] for c in app["checks"]] == ["inside"] * len(MEASURES)
    assert app["summary"] == f"inside the training range on all {len(MEASURES)} checks"
    # the same measurement as the export's: the patient's values are its training values
    at_export = case_measures(WorkDir.of(tiny_run / "run" / "work").case(cases["pid"]))
    for key, value in at_export.items():
        assert _check(app, key)["value"] == pytest.approx(value, abs=1e-4), key
    assert _check(app, "embedding_distance")["value"] < 1e-3  # its own stored node
    report = (pred.out_dir / "report.html").read_text()
    assert f"inside the training range on all {len(MEASURES)} checks" in report
    assert "class='applicability'" not in report
    text = (pred.out_dir / "prediction.json").read_text()
    cohort = tiny_run / "cohort"
    for leak in (str(cohort), *(p.name for p in cases["inputs"].values())):  # no input path or file name
        assert leak not in text and leak not in report


def test_a_rescaled_sequence_is_not_flagged(cases):
    """Intensity normalisation removes a global scale: the model reads the same image, nothing to flag."""
    app = cases["scaled"].record["applicability"]
    assert app["in_domain"] is True
    assert _check(app, "tumour_intensity_flair")["value"] == pytest.approx(
        _check(cases["given"].record["applicability"], "tumour_intensity_flair")["value"], abs=1e-3)


def test_a_swapped_sequence_and_a_larger_tumour_are_flagged_not_refused(tiny_model, cases):
    pred = cases["unusual"]
    assert 0.0 <= pred.probability <= 1.0  # predicted
    app = json.loads((pred.out_dir / "prediction.json").read_text())["applicability"]
    ref = _reference(tiny_model)["measures"]
    assert app["in_domain"] is False
    vol = _check(app, "tumour_volume_ml")
    assert (vol["flag"], vol["side"]) == ("outside", "above") and vol["value"] > 2 * ref["tumour_volume_ml"]["max"]
    assert vol["reason"] == (f"tumour volume {vol['value']:.1f} mL is above every training patient's "
                             f"(max {ref['tumour_volume_ml']['max']:.1f} mL)")
    flair = _check(app, "tumour_intensity_flair")
    assert (flair["flag"], flair["side"]) == ("outside", "below")  # T1 is darker in the tumour than FLAIR
    assert "standardised T2-FLAIR" in flair["reason"] and "is below every training patient's (min" in flair["reason"]
    assert vol["reason"] in app["reasons"] and flair["reason"] in app["reasons"]
    assert _check(app, "tumour_intensity_t1")["flag"] != "unknown"
    report = (pred.out_dir / "report.html").read_text()
    at = report.index("class='applicability'")
    assert report.index('class="summary"') < at < report.index("<h2>")  # next to the prediction
    box = report[at:report.index("</div>", at)]
    assert "This patient is unlike the training cohort" in box and "less reliable" in box
    assert f"tumour volume {vol['value']:.1f} mL is above every training patient" in box


# --------------------------------------------------------------------------- the flags of modified records


@pytest.fixture(scope="module")
def training_record(tiny_run, tiny_model):
    pid = split_ids(tiny_run / "run", "B")[0]
    u_t, u_b, ids = _stored_training(tiny_model)
    i = ids.index(pid)
    values = {**case_measures(WorkDir.of(tiny_run / "run" / "work").case(pid)),
              "embedding_distance": tiny_model.applicability.nearest_distance(u_t[i:i + 1], u_b[i:i + 1])}
    return values, u_t[i:i + 1], u_b[i:i + 1]


def test_each_flag_has_its_side_and_reason(tiny_model, training_record):
    ref = _reference(tiny_model)
    m = ref["measures"]
    values = training_record[0]
    assert flag_values(ref, values)["in_domain"] is True
    cases = {
        "tumour_volume_ml": (m["tumour_volume_ml"]["max"] * 10, "outside", "above"),
        "tumour_intensity_t2": (m["tumour_intensity_t2"]["min"] - 20, "outside", "below"),
        # one-sided: a better registration than every training patient's is no concern
        "brain_dice": (m["brain_dice"]["max"] + 0.01, "inside", None),
        "similarity_mattes_mi": (m["similarity_mattes_mi"]["min"] - 0.1, "inside", None),
    }
    for key, (value, flag, side) in cases.items():
        out = flag_values(ref, {**values, key: value})
        c = _check(out, key)
        assert (c["flag"], c["side"]) == (flag, side), key
        assert out["in_domain"] is (flag == "inside")
        assert out["reasons"] == ([c["reason"]] if flag == "outside" else [])
    low = flag_values(ref, {**values, "brain_dice": m["brain_dice"]["min"] - 0.1})
    assert _check(low, "brain_dice")["reason"] == (f"registration: brain mask Dice with the template "
                                                   f"{m['brain_dice']['min'] - 0.1:.4f} is below every training "
                                                   f"patient's (min {m['brain_dice']['min']:.4f})")
    worse = flag_values(ref, {**values, "similarity_mattes_mi": m["similarity_mattes_mi"]["max"] + 0.1})
    assert _check(worse, "similarity_mattes_mi")["side"] == "above"
    assert worse["summary"] == f"outside the training range on 1 of {len(MEASURES)} checks"


def test_a_measure_defined_otherwise_since_the_models_preprocessing_is_not_checked(tiny_model, training_record):
    """A model exported before the QC's Mattes MI read every voxel (its reference records no preprocessing
    version, or an older one) has no training range for today's definition: "unknown" with the reason; the
    other checks go on."""
    ref = _reference(tiny_model)
    assert ref["preprocess_version"] == PREPROCESS_VERSION
    values = {**training_record[0], "similarity_mattes_mi": ref["measures"]["similarity_mattes_mi"]["max"] + 1.0}
    assert _check(flag_values(ref, values), "similarity_mattes_mi")["flag"] == "outside"
    for older in ({k: v for k, v in ref.items() if k != "preprocess_version"}, {**ref, "preprocess_version": 2}):
        out = flag_values(older, values)
        c = _check(out, "similarity_mattes_mi")
        assert (c["flag"], c["value"]) == ("unknown", values["similarity_mattes_mi"])
        assert c["note"].startswith("the model's training range was measured by preprocessing v2, this patient by "
                                    f"v{PREPROCESS_VERSION}")
        assert _check(out, "brain_dice")["flag"] == "inside" and out["in_domain"] is True
        assert out["summary"] == f"inside the training range on all {len(MEASURES) - 1} checks (1 not checked)"


def test_a_value_between_the_band_and_the_extreme_names_the_percentile(tiny_run, tiny_model):
    u_t, u_b, ids = _stored_training(tiny_model)
    ref = measure_reference(tiny_run / "run" / "work", ids, u_t, u_b, percentiles=(40, 60))
    v = ref["measures"]["tumour_volume_ml"]
    between = (v["high"] + v["max"]) / 2
    c = _check(flag_values(ref, {"tumour_volume_ml": between}), "tumour_volume_ml")
    assert c["flag"] == "outside" and c["range"] == [v["low"], v["high"]]
    assert c["reason"] == (f"tumour volume {between:.1f} mL is above the 60th percentile of the training patients "
                           f"({v['high']:.1f} mL; max {v['max']:.1f} mL)")


def test_a_feature_vector_far_from_every_training_patient_is_flagged(tiny_model, training_record):
    ref = tiny_model.applicability
    _, u_t, u_b = training_record
    far = ref.nearest_distance(u_t + 50 * np.asarray(ref.data["embedding"]["std"][: u_t.shape[1]]), u_b)
    limit = ref.data["measures"]["embedding_distance"]["max"]
    assert far > limit
    c = _check(flag_values(ref.data, {**training_record[0], "embedding_distance": far}), "embedding_distance")
    assert (c["flag"], c["side"]) == ("outside", "above")
    assert c["reason"].endswith(": far from every training patient") and f"(max {limit:.2f})" in c["reason"]


def test_what_cannot_be_measured_is_unknown_not_outside(tiny_model, training_record):
    ref = _reference(tiny_model)
    out = flag_values(ref, {**training_record[0], "tumour_intensity_t1c": None})  # a missing sequence
    c = _check(out, "tumour_intensity_t1c")
    assert c["flag"] == "unknown" and "missing" in c["note"]
    assert out["in_domain"] is True
    assert out["summary"] == f"inside the training range on all {len(MEASURES) - 1} checks (1 not checked)"
    none = flag_values(None, training_record[0])
    assert none["in_domain"] is None and none["summary"] == UNKNOWN and none["checks"] == []


# --------------------------------------------------------------------------- older model folders


def test_a_model_exported_before_the_reference_still_predicts_and_says_unknown(tiny_run, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_run / "run" / "model", model)
    layout = ModelDir.of(model)
    config_hash = json.loads(layout.manifest.read_text())["config_hash"]
    listed = layout.applicability.read_text()
    layout.applicability.unlink()
    write_manifest(model, config_hash)
    older = load_model(model)
    assert older.applicability is None
    pid = split_ids(tiny_run / "run", "B")[0]
    pred = predict_patient(older, case_inputs(tiny_run / "cohort", pid), pid, tmp_path / "out", **KW)
    app = json.loads((pred.out_dir / "prediction.json").read_text())["applicability"]
    assert app["in_domain"] is None and app["summary"].startswith("unknown: the model has no applicability reference")
    assert "Applicability: unknown: the model has no applicability reference" in (pred.out_dir / "report.html").read_text()
    layout.applicability.write_text(listed)  # present but not in the manifest: added after the export
    with pytest.raises(ModelError, match="applicability.json is not listed in manifest.json"):
        load_model(model)
