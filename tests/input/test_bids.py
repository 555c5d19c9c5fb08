"""BIDS datasets in (gliotype.input.bids): real small datasets written with nibabel, scanned with pybids.

The role rules, the choice among several runs, the masks of the derivatives folders, the
labels of participants.tsv, sessions, the manifest's optional ``bids`` columns and
``gliotype predict --case`` on a subject folder.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from bids_helpers import (
    add_case,
    add_image,
    dataset,
    description,
    participants,
    pipeline,
    with_sessions,
)
from input_helpers import make_case, tumor
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.errors import CaseError, GliotypeError
from gliotype.input import (
    MANIFEST_COLUMNS,
    detect_layout,
    read_manifest,
    scan_cohort,
    validate_manifest,
    write_manifest,
)
from gliotype.input.bids import locate, parse_prefix
from gliotype.input.bids.roles import Candidate, choose, is_fa, mask_rank, sequence_role
from gliotype.prediction import case_row, check_inputs, inputs_from_case

BIDS_COLUMNS = [*MANIFEST_COLUMNS, "bids", "bids_root"]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _anat(root, sub, name, ses=None):
    return str(root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat" / name)


# --------------------------------------------------------------------------- a dataset without sessions
def test_scan_finds_every_role_labels_and_warns(tmp_path, caplog):
    root = dataset(tmp_path / "ds")
    assert detect_layout(root) == "bids"
    with caplog.at_level(logging.WARNING):
        df = scan_cohort(root)
    assert list(df.columns) == BIDS_COLUMNS
    seg = root / "derivatives" / "tumorseg"
    expected = [
        {"patient_id": "sub-01", "t1": _anat(root, "01", "sub-01_T1w.nii.gz"),
         "t1c": _anat(root, "01", "sub-01_ce-gadolinium_T1w.nii.gz"), "t2": _anat(root, "01", "sub-01_run-2_T2w.nii.gz"),
         "flair": _anat(root, "01", "sub-01_FLAIR.nii.gz"), "mask": _anat(seg, "01", "sub-01_desc-tumor_dseg.nii.gz"),
         "fa": "", "idh": 1.0, "age": 45.0, "site": "A", "bids": "sub-01", "bids_root": str(root)},
        {"patient_id": "sub-02", "t1": _anat(root, "02", "sub-02_T1w.nii.gz"),
         "t1c": _anat(root, "02", "sub-02_ce-Gd_T1w.nii.gz"), "t2": _anat(root, "02", "sub-02_T2w.nii.gz"),
         "flair": "", "mask": _anat(seg, "02", "sub-02_label-tumor_mask.nii.gz"),
         "fa": "", "idh": 0.0, "age": np.nan, "site": "B", "bids": "sub-02", "bids_root": str(root)},
    ]
    pd.testing.assert_frame_equal(df, pd.DataFrame(expected, columns=BIDS_COLUMNS), check_dtype=False)
    assert _warnings(caplog) == [
        "patient sub-01: 2 t2 files (sub-01_run-1_T2w.nii.gz, sub-01_run-2_T2w.nii.gz); kept sub-01_run-2_T2w.nii.gz "
        "(the highest run, then the first name)",
        "patient sub-02: no flair (*_FLAIR) file found",
    ]
    reports = validate_manifest(df)
    assert [r.status for r in reports] == ["ok", "rejected"]
    assert reports[1].reason == ("patient sub-02: no flair file in the manifest (input.missing_sequences allows 0 "
                                 "missing sequences)")


def test_labels_option_wins_over_participants(tmp_path):
    root = dataset(tmp_path / "ds")
    labels = tmp_path / "labels.csv"
    labels.write_text("patient_id,IDH\nsub-01,wildtype\n")
    df = scan_cohort(root, labels=labels)
    assert list(df["idh"]) == [0.0, 0.0]  # sub-01 from --labels, sub-02 from participants.tsv
    assert list(df["site"]) == ["A", "B"] and df.loc[0, "age"] == 45.0


def test_manifest_keeps_the_bids_columns_and_a_brats_manifest_has_none(tmp_path):
    root = dataset(tmp_path / "ds")
    path = write_manifest(scan_cohort(root), tmp_path / "out" / "manifest.csv")
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(text.columns) == BIDS_COLUMNS
    assert list(text["bids"]) == ["sub-01", "sub-02"] and set(text["bids_root"]) == {"../ds"}  # relative, like images
    back = read_manifest(path)
    assert list(back.columns) == BIDS_COLUMNS
    assert list(back["bids"]) == ["sub-01", "sub-02"] and set(back["bids_root"]) == {str(root.resolve())}
    assert back.loc[0, "idh"] == 1.0 and back.loc[1, "flair"] == ""

    make_case(tmp_path / "brats", "P1")
    plain = write_manifest(scan_cohort(tmp_path / "brats"), tmp_path / "brats.csv")
    assert list(pd.read_csv(plain).columns) == list(MANIFEST_COLUMNS)
    assert list(read_manifest(plain).columns) == list(MANIFEST_COLUMNS)


def test_cli_scan_writes_the_manifest(tmp_path):
    root = dataset(tmp_path / "ds")
    out = tmp_path / "manifest.csv"
    result = CliRunner().invoke(app, ["cohort", "scan", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 patients found" in result.output and "IDH: 1 mutant, 1 wild-type" in result.output
    assert list(read_manifest(out)["bids"]) == ["sub-01", "sub-02"]


# --------------------------------------------------------------------------- sessions, FA, subject folders
def test_sessions_are_cases_labelled_by_their_subject(tmp_path):
    root = with_sessions(tmp_path / "ds")
    df = scan_cohort(root)
    assert list(df["patient_id"]) == ["sub-01_ses-post", "sub-01_ses-pre", "sub-02_ses-pre"]
    assert list(df["bids"]) == list(df["patient_id"])
    assert df.loc[1, "t1c"] == _anat(root, "01", "sub-01_ses-pre_ce-gadolinium_T1w.nii.gz", "pre")
    assert df.loc[1, "mask"] == _anat(root / "derivatives" / "tumorseg", "01", "sub-01_ses-pre_desc-tumor_dseg.nii.gz",
                                      "pre")
    assert df.loc[1, "fa"] == str(root / "derivatives" / "dti" / "sub-01" / "ses-pre" / "dwi" /
                                  "sub-01_ses-pre_model-DTI_param-FA_dwimap.nii.gz")
    assert list(df["fa"] != "") == [False, True, False]
    assert df["idh"].tolist()[:2] == [0.0, 0.0] and np.isnan(df.loc[2, "idh"])
    assert [r.status for r in validate_manifest(df)] == ["ok", "ok", "ok"]
    # a subject folder or a session folder selects that subject / session of the dataset
    assert detect_layout(root / "sub-01") == "bids"
    assert list(scan_cohort(root / "sub-01")["patient_id"]) == ["sub-01_ses-post", "sub-01_ses-pre"]
    sub = scan_cohort(root / "sub-01" / "ses-pre")
    assert list(sub["patient_id"]) == ["sub-01_ses-pre"] and sub.loc[0, "idh"] == 0.0 and sub.loc[0, "fa"] != ""


def test_predict_case_in_a_bids_dataset(tmp_path):
    root = with_sessions(tmp_path / "ds")
    pid, inputs = inputs_from_case(root / "sub-01" / "ses-pre")
    assert pid == "sub-01_ses-pre" and sorted(inputs) == ["flair", "mask", "t1", "t1c", "t2"]
    assert inputs["mask"].name == "sub-01_ses-pre_desc-tumor_dseg.nii.gz"
    assert case_row(root, "sub-02_ses-pre")["bids"] == "sub-02_ses-pre"  # the dataset and --patient-id
    with pytest.raises(GliotypeError, match="3 patients found .*--patient-id"):
        inputs_from_case(root)
    dataset(tmp_path / "flat")
    # a case without FLAIR: the model's input.missing_sequences decides (issue 15, missing sequences)
    pid, inputs = inputs_from_case(tmp_path / "flat" / "sub-02")
    assert pid == "sub-02" and "flair" not in inputs and "mask" in inputs
    with pytest.raises(CaseError, match="patient sub-02: no flair file given .input.missing_sequences allows 0"):
        check_inputs(inputs, pid)


# --------------------------------------------------------------------------- masks and other files
def test_only_tumour_masks_in_native_space_from_other_pipelines(tmp_path, caplog):
    root = tmp_path / "ds"
    description(root)
    pipeline(root, "tumorseg")
    add_case(root, "01")
    own = pipeline(root, "gliotype", "gliotype")  # gliotype's own outputs, never read back
    add_image(own, "01", None, "space-MNI152NLin2009aSym_desc-preproc_dseg", tumor())
    add_image(pipeline(root, "renamed", "gliotype"), "01", None, "desc-tumor_dseg", tumor())  # gliotype's, elsewhere
    add_image(pipeline(root, "fmriprep-23.2", "fMRIPrep"), "01", None, "dseg", tumor())  # tissue classes
    add_image(root / "derivatives" / "tumorseg", "01", None, "space-MNI152NLin2009cAsym_desc-tumor_dseg", tumor())
    add_image(root / "derivatives" / "tumorseg", "01", None, "desc-aseg_dseg", tumor())
    with caplog.at_level(logging.WARNING):
        df = scan_cohort(root)
    assert df.loc[0, "mask"].endswith("tumorseg/sub-01/anat/sub-01_desc-tumor_dseg.nii.gz")
    assert _warnings(caplog) == []
    # a plain _dseg of a tumour pipeline is accepted, after a tumour-named one
    add_image(pipeline(root, "nnunet"), "01", None, "dseg", tumor())
    with caplog.at_level(logging.WARNING):
        df = scan_cohort(root)
    assert df.loc[0, "mask"].endswith("sub-01_desc-tumor_dseg.nii.gz")
    assert _warnings(caplog) == ["patient sub-01: 2 mask files (sub-01_desc-tumor_dseg.nii.gz, sub-01_dseg.nii.gz); "
                                 "kept sub-01_desc-tumor_dseg.nii.gz (a tumour-named mask first, then the highest "
                                 "run, then the first name)"]
    (root / "derivatives" / "tumorseg" / "sub-01" / "anat" / "sub-01_desc-tumor_dseg.nii.gz").unlink()
    assert scan_cohort(root).loc[0, "mask"].endswith("nnunet/sub-01/anat/sub-01_dseg.nii.gz")


def test_subject_without_images_and_a_dataset_without_description(tmp_path, caplog):
    root = tmp_path / "ds"
    description(root)
    add_case(root, "01", mask=None)
    add_image(root, "02", None, "dwi", datatype="dwi")  # diffusion only
    participants(root, [{"participant_id": "sub-01", "idh": "1"}, {"participant_id": "sub-02", "idh": "0"}])
    with caplog.at_level(logging.WARNING):
        df = scan_cohort(root)
    assert list(df["patient_id"]) == ["sub-01"] and df.loc[0, "mask"] == "" and df.loc[0, "idh"] == 1.0
    assert _warnings(caplog) == [
        "patient sub-01: no mask (derivatives/*/: *_desc-tumor_dseg, *_label-tumor_mask or *_dseg) file found",
        "patient sub-02: no anatomical image (T1w, T2w, FLAIR) found; left out"]
    (root / "dataset_description.json").unlink()  # not detected, but scanned when asked for
    with pytest.raises(GliotypeError, match="dataset_description.json"):
        detect_layout(root)
    assert list(scan_cohort(root, layout="bids")["patient_id"]) == ["sub-01"]


def test_a_derivative_dataset_or_an_empty_one_is_refused_in_one_line(tmp_path):
    description(tmp_path / "ds")
    deriv = pipeline(tmp_path / "ds", "gliotype", "gliotype")
    add_image(deriv, "01", None, "space-MNI152NLin2009aSym_desc-preproc_T1w")
    with pytest.raises(GliotypeError, match=r"^gliotype is a BIDS derivative dataset .*scan the raw dataset"):
        scan_cohort(deriv)
    with pytest.raises(GliotypeError, match="^BIDS dataset ds: no subject with anatomical images"):
        scan_cohort(tmp_path / "ds")


# --------------------------------------------------------------------------- the rules
ANAT = {"datatype": "anat", "extension": ".nii.gz"}


@pytest.mark.parametrize("entities,role", [
    ({"suffix": "T1w"}, "t1"),
    ({"suffix": "T1w", "ceagent": "gadolinium"}, "t1c"),
    ({"suffix": "T1w", "ceagent": "Gd"}, "t1c"),
    ({"suffix": "T1w", "acquisition": "Gd"}, "t1c"),
    ({"suffix": "T1w", "acquisition": "mprage"}, "t1"),
    ({"suffix": "T2w", "run": 2}, "t2"),
    ({"suffix": "FLAIR"}, "flair"),
    ({"suffix": "FLAIR", "part": "mag"}, "flair"),
    ({"suffix": "FLAIR", "part": "phase"}, None),
    ({"suffix": "T2starw"}, None),
    ({"suffix": "T1w", "extension": ".json"}, None),
    ({"suffix": "T1w", "datatype": "dwi"}, None),
])
def test_sequence_roles(entities, role):
    assert sequence_role({**ANAT, **entities}) == role


@pytest.mark.parametrize("entities,pipeline_names,rank", [
    ({"suffix": "dseg", "desc": "tumor"}, ("any",), 0),
    ({"suffix": "dseg", "desc": "Tumour"}, ("any",), 0),
    ({"suffix": "dseg", "desc": "tumor"}, ("fmriprep",), 0),
    ({"suffix": "mask", "label": "tumor"}, ("any",), 0),
    ({"suffix": "mask", "desc": "brain"}, ("any",), None),
    ({"suffix": "dseg"}, ("nnunet", "nnU-Net"), 1),
    ({"suffix": "dseg"}, ("fmriprep-23.2", "fMRIPrep"), None),
    ({"suffix": "dseg"}, ("anat", "FreeSurfer"), None),
    ({"suffix": "dseg", "desc": "aparcaseg"}, ("any",), None),
    ({"suffix": "dseg", "desc": "tumor", "space": "T1w"}, ("any",), 0),
    ({"suffix": "dseg", "desc": "tumor", "space": "MNI152NLin2009cAsym"}, ("any",), None),
    ({"suffix": "dseg", "desc": "tumor", "extension": ".tsv"}, ("any",), None),
])
def test_mask_names(entities, pipeline_names, rank):
    assert mask_rank({**ANAT, **entities}, pipeline_names) == rank


def test_fa_names_runs_and_prefixes():
    ents = {"extension": ".nii.gz"}
    assert is_fa("sub-01_model-DTI_param-FA_dwimap.nii.gz", ents) and is_fa("sub-01_desc-FA_dwi.nii.gz", ents)
    assert is_fa("sub-01_FA.nii.gz", ents) and not is_fa("sub-01_desc-MD_dwi.nii.gz", ents)
    runs = [Candidate(f"/x/{n}", n, {"run": r}) for n, r in [("a_run-1_T2w", 1), ("a_run-3_T2w", 3), ("a_run-2_T2w", 2)]]
    assert choose(runs)[0].name == "a_run-3_T2w" and [c.name for c in choose(runs)[1]] == ["a_run-2_T2w", "a_run-1_T2w"]
    assert choose([Candidate("/b", "b", {}), Candidate("/a", "a", {})])[0].name == "a"
    assert parse_prefix("sub-01_ses-02") == ("01", "02") and parse_prefix("sub-A1") == ("A1", None)
    with pytest.raises(GliotypeError):
        parse_prefix("../sub-01")


def test_locate(tmp_path):
    root = with_sessions(tmp_path / "ds")
    assert locate(root).subject is None
    assert (locate(root / "sub-01").root, locate(root / "sub-01").subject) == (root, "01")
    assert locate(root / "sub-01" / "ses-pre").session == "pre"
    assert locate(root / "sub-01" / "ses-pre" / "anat") is None and locate(tmp_path) is None
