"""Missing sequences (issue 15): one rule (input.rules.present_sequences), the reference grid, the
validator's warnings and table, the CLI option, and the same message in every reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from input_helpers import brain, make_case, save, tumor
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.errors import CaseError
from gliotype.input import (
    REFERENCE_ORDER,
    InputRules,
    check_case,
    present_sequences,
    reference_sequence,
    scan_cohort,
    validate_manifest,
    validation_table,
    write_manifest,
)


def test_present_sequences_counts_blank_cells_as_missing():
    row = {"t1": "a.nii.gz", "t1c": float("nan"), "t2": " ", "flair": "f.nii.gz"}
    assert present_sequences(row, "P", 2) == (("t1", "flair"), ("t1c", "t2"))
    assert present_sequences({s: "x" for s in ("t1", "t1c", "t2", "flair")}, "P") == (
        ("t1", "t1c", "t2", "flair"), ())


@pytest.mark.parametrize("row, allowed, message", [
    ({"t1": "a", "t2": "b", "flair": "c"}, 0,
     "patient P7: no t1c file in the manifest (input.missing_sequences allows 0 missing sequences)"),
    ({"t1": "a", "flair": "c"}, 1,
     "patient P7: no t1c or t2 file in the manifest (input.missing_sequences allows 1 missing sequence)"),
    ({"t1": "a"}, 2,
     "patient P7: no t1c, t2 or flair file in the manifest (input.missing_sequences allows 2 missing sequences)"),
    ({}, 3, "patient P7: no t1, t1c, t2 or flair file in the manifest (input.missing_sequences allows 3 missing "
            "sequences)"),
])
def test_more_missing_than_allowed_is_one_line_naming_patient_and_roles(row, allowed, message):
    with pytest.raises(CaseError) as err:
        present_sequences(row, "P7", allowed)
    assert str(err.value) == message


def test_the_reference_is_the_first_present_of_t1c_t1_flair_t2():
    assert REFERENCE_ORDER == ("t1c", "t1", "flair", "t2")
    assert reference_sequence(("t1", "t1c", "t2", "flair")) == "t1c"
    assert reference_sequence(("t1", "t2", "flair")) == "t1"
    assert reference_sequence(("t2", "flair")) == "flair"
    assert reference_sequence(("t2",)) == "t2"


def test_the_rule_is_carried_by_input_rules_and_hashed_nowhere():
    from gliotype.config import config_hash, load_config

    cfg = load_config("tiny", overrides=["input.missing_sequences=2"])
    assert InputRules.of(cfg).missing_sequences == 2 and InputRules().missing_sequences == 0
    base = load_config("tiny")
    # the paper's sections keying every stage do not see it; the whole config does (a model's identity)
    for sections in (("preprocess",), ("modalities",), ("ssl", "atlas", "preprocess"),
                     ("multimodal", "modalities", "ssl", "atlas", "preprocess")):
        assert config_hash(cfg, *sections) == config_hash(base, *sections)
    with pytest.raises(Exception, match="missing_sequences"):
        load_config("tiny", overrides=["input.missing_sequences=4"])


def _case_without(tmp_path, role, pid="P0"):
    paths = make_case(tmp_path / "data", pid)
    paths[role].unlink()
    return scan_cohort(tmp_path / "data", layout="brats2021")  # auto needs one complete case


def test_a_case_without_flair_is_rejected_by_default_and_kept_when_allowed(tmp_path):
    df = _case_without(tmp_path, "flair")
    assert df.loc[0, "flair"] == ""  # the scanner keeps the patient with an empty role
    rejected = validate_manifest(df)[0]
    assert rejected.status == "rejected"
    assert rejected.reason == ("patient P0: no flair file in the manifest (input.missing_sequences allows 0 "
                               "missing sequences)")
    ok = validate_manifest(df, rules=InputRules(missing_sequences=1))[0]
    assert ok.status == "ok" and ok.info["missing_sequences"] == ["flair"]
    assert ok.info["reference_sequence"] == "t1c"
    assert any(w.startswith("missing flair") for w in ok.warnings)
    table = validation_table([ok])
    assert "P0" in table and "OK" in table and "missing flair" in table


def test_without_t1c_the_grids_are_compared_to_t1(tmp_path):
    """The reference sequence replaces t1c: a sequence on another grid is named against t1."""
    df = _case_without(tmp_path, "t1c")
    report = check_case(df.loc[0].to_dict(), rules=InputRules(missing_sequences=1))
    assert report.info["reference_sequence"] == "t1" and report.info["missing_sequences"] == ["t1c"]
    far = np.eye(4)
    far[:3, 3] = 1000.0  # no overlap with the t1 grid
    save(Path(df.loc[0, "t2"]), brain(), far)
    with pytest.raises(CaseError, match="t2 is on another grid than t1"):
        check_case(df.loc[0].to_dict(), rules=InputRules(missing_sequences=1))
    # the mask inside the image is checked on the reference sequence
    save(Path(df.loc[0, "t2"]), brain())
    save(Path(df.loc[0, "t1"]), (tumor() == 0).astype(np.float32) * 100)  # zero under the tumour
    with pytest.raises(CaseError, match="non-zero t1"):
        check_case(df.loc[0].to_dict(), rules=InputRules(missing_sequences=1))


def test_the_mask_is_always_required(tmp_path):
    df = _case_without(tmp_path, "mask")
    report = validate_manifest(df, rules=InputRules(missing_sequences=3))[0]
    assert report.status == "rejected" and report.reason == "patient P0: no mask file in the manifest"


def test_cli_validate_missing_sequences_option(tmp_path):
    df = _case_without(tmp_path, "t1c")
    make_case(tmp_path / "data", "P1", seed=1)
    df = scan_cohort(tmp_path / "data")  # the complete P1 lets the layout be detected
    manifest = write_manifest(df, tmp_path / "manifest.csv")
    runner = CliRunner()
    res = runner.invoke(app, ["cohort", "validate", str(manifest), "--workers", "1"])
    assert res.exit_code == 0 and "REJECTED" in res.output and "no t1c file" in res.output
    assert "1 of 2 cases usable" in res.output
    res = runner.invoke(app, ["cohort", "validate", str(manifest), "--workers", "1", "--missing-sequences", "1"])
    assert res.exit_code == 0, res.output
    assert "2 of 2 cases usable" in res.output and "missing t1c" in res.output
    res = runner.invoke(app, ["cohort", "validate", str(manifest), "--set", "input.missing_sequences=1"])
    assert "2 of 2 cases usable" in res.output
    res = runner.invoke(app, ["cohort", "validate", str(manifest), "--missing-sequences", "4"])
    assert res.exit_code != 0
