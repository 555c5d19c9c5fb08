"""BIDS derivatives out (gliotype.input.bids.derivatives): a BIDS case on the template grid, scanned,
really preprocessed (tiny preset) and copied into ``derivatives/gliotype``, which pybids indexes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bids_helpers import add_case, description, pipeline
from typer.testing import CliRunner

from gliotype import __version__, stages
from gliotype.atlases import load_template
from gliotype.cli import app
from gliotype.config import load_config
from gliotype.errors import GliotypeError
from gliotype.input import read_manifest, scan_cohort, write_manifest
from gliotype.input.bids import TEMPLATE_SPACE, BidsOutput, preprocessed_derivatives, write_prediction
from gliotype.layout import WorkDir

PREFIX = "sub-01_ses-1"
ANAT = Path("sub-01") / "ses-1" / "anat"
OUTPUTS = {"t1": f"{PREFIX}_space-{TEMPLATE_SPACE}_desc-preproc_T1w.nii.gz",
           "t1c": f"{PREFIX}_ce-gadolinium_space-{TEMPLATE_SPACE}_desc-preproc_T1w.nii.gz",
           "t2": f"{PREFIX}_space-{TEMPLATE_SPACE}_desc-preproc_T2w.nii.gz",
           "flair": f"{PREFIX}_space-{TEMPLATE_SPACE}_desc-preproc_FLAIR.nii.gz",
           "mask": f"{PREFIX}_space-{TEMPLATE_SPACE}_desc-preproc_dseg.nii.gz",
           "brain_mask": f"{PREFIX}_space-{TEMPLATE_SPACE}_desc-brain_mask.nii.gz"}


def _template_case(root: Path) -> None:
    """One session of one subject on the 2 mm template grid (preprocessing takes about a second)."""
    tpl = load_template(2)
    rng = np.random.default_rng(0)
    images = {role: (tpl.t1 * tpl.brain_mask * (1 + 0.2 * i)
                     + rng.normal(0, 1, tpl.shape) * tpl.brain_mask).astype(np.float32)
              for i, role in enumerate(("t1", "t1c", "t2", "flair"))}
    ijk = np.indices(tpl.shape)
    centre = np.array(tpl.shape)[:, None, None, None] // 2 + np.array([10, 5, 5])[:, None, None, None]
    mask = (((ijk - centre) ** 2).sum(0) < 36).astype(np.uint8) * 2
    description(root)
    pipeline(root, "tumorseg", "manual")
    add_case(root, "01", "1", images=images, mask_data=mask, affine=tpl.affine)


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    """(BIDS root, manifest rows, work folder) after ``stages.preprocess`` with the default derivatives."""
    tmp = tmp_path_factory.mktemp("bids-derivatives")
    root = tmp / "ds"
    _template_case(root)
    manifest = write_manifest(scan_cohort(root), tmp / "manifest.csv")
    rows = read_manifest(manifest)
    status = stages.preprocess(rows, tmp / "work", load_config("tiny"), bids_derivatives=True)
    assert list(status["status"]) == ["done"], status.to_dict("records")
    return root, rows, tmp / "work"


def test_preprocessed_volumes_become_a_bids_derivative_dataset(preprocessed):
    root, _, work = preprocessed
    deriv = root / "derivatives" / "gliotype"
    files = sorted(p.relative_to(deriv).as_posix() for p in deriv.rglob("*") if p.is_file())
    assert files == sorted(["dataset_description.json", *((ANAT / n).as_posix() for n in OUTPUTS.values())])
    assert json.loads((deriv / "dataset_description.json").read_text()) == {
        "Name": "gliotype outputs", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "gliotype", "Version": __version__,
                         "Description": "glioma IDH status from T1, T1c, T2, FLAIR and a tumour mask"}]}
    case = WorkDir(work).case(PREFIX)
    sources = {"t1": case.sequence("t1"), "t1c": case.sequence("t1c"), "t2": case.sequence("t2"),
               "flair": case.sequence("flair"), "mask": case.mask, "brain_mask": case.brain_mask}
    for role, name in OUTPUTS.items():  # copies of what preprocessing wrote, nothing recomputed
        assert (deriv / ANAT / name).read_bytes() == sources[role].read_bytes(), role

    from bids import BIDSLayout

    layout = BIDSLayout(deriv, validate=True, is_derivative=True)
    assert layout.source_pipeline == "gliotype"
    t1w = layout.get(subject="01", session="1", space=TEMPLATE_SPACE, desc="preproc", suffix="T1w",
                     extension=".nii.gz")
    assert sorted(f.get_entities().get("ceagent", "") for f in t1w) == ["", "gadolinium"]
    dseg = layout.get(suffix="dseg", desc="preproc", return_type="filename")
    assert [Path(f).name for f in dseg] == [OUTPUTS["mask"]]
    assert layout.get(suffix="mask", desc="brain", space=TEMPLATE_SPACE, return_type="filename")
    assert {f.get_entities()["datatype"] for f in layout.get(extension=".nii.gz")} == {"anat"}


def test_rerun_is_idempotent_and_the_outputs_are_never_read_as_inputs(preprocessed):
    root, rows, work = preprocessed
    deriv = root / "derivatives" / "gliotype"
    before = {p: p.stat().st_mtime_ns for p in deriv.rglob("*") if p.is_file()}
    assert preprocessed_derivatives(rows, work)["written"] == 0
    status = stages.preprocess(rows, work, load_config("tiny"), bids_derivatives=True)
    assert list(status["status"]) == ["skipped"]
    assert {p: p.stat().st_mtime_ns for p in deriv.rglob("*") if p.is_file()} == before
    rescanned = scan_cohort(root)  # derivatives/gliotype holds a _dseg: never a mask of the input
    assert rescanned.loc[0, "mask"].endswith("tumorseg/sub-01/ses-1/anat/sub-01_ses-1_desc-tumor_dseg.nii.gz")


def test_another_folder_and_another_pipelines_folder(preprocessed, tmp_path):
    root, rows, work = preprocessed
    summary = preprocessed_derivatives(rows, work, tmp_path / "elsewhere")
    assert summary["patients"] == 1 and summary["written"] == len(OUTPUTS)
    assert (tmp_path / "elsewhere" / ANAT / OUTPUTS["t1c"]).is_file()
    with pytest.raises(GliotypeError, match="^BIDS derivatives folder tumorseg holds another dataset .*names manual"):
        stages.preprocess(rows, work, load_config("tiny"), bids_derivatives=root / "derivatives" / "tumorseg")
    assert not (root / "derivatives" / "tumorseg" / ANAT / OUTPUTS["t1"]).exists()
    # a manifest of no BIDS dataset writes nothing
    plain = rows.drop(columns=["bids", "bids_root"])
    assert preprocessed_derivatives(plain, work, tmp_path / "none")["patients"] == 0
    assert not (tmp_path / "none").exists()


def test_prediction_copy_and_names_without_session(tmp_path):
    record = tmp_path / "out" / "prediction.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"patient_id": "sub-02", "idh_mutant_probability": 0.7}))
    out = BidsOutput(tmp_path / "deriv", "sub-02")
    written = write_prediction(out, record)
    assert written.relative_to(tmp_path / "deriv").as_posix() == "sub-02/anat/sub-02_desc-idh_prediction.json"
    assert written.read_bytes() == record.read_bytes()
    assert out.preprocessed("t1c", "Gd").name == f"sub-02_ce-Gd_space-{TEMPLATE_SPACE}_desc-preproc_T1w.nii.gz"
    from bids import BIDSLayout

    layout = BIDSLayout(tmp_path / "deriv", validate=True, is_derivative=True)
    (found,) = layout.get(suffix="prediction", extension=".json")
    assert found.get_entities() == {"subject": "02", "desc": "idh", "suffix": "prediction", "extension": ".json",
                                    "datatype": "anat"}
    with pytest.raises(GliotypeError):
        BidsOutput(tmp_path, "sub-02/../x")


def test_cli_options_are_checked_before_any_work(tmp_path):
    runner = CliRunner()
    files = [a for role in ("t1", "t1c", "t2", "flair", "mask") for a in (f"--{role}", str(tmp_path / role))]
    result = runner.invoke(app, ["predict", "--model", str(tmp_path), "--out", str(tmp_path / "o"), *files,
                                 "--bids-derivatives", str(tmp_path / "d")])
    assert result.exit_code == 2 and "--bids-derivatives needs --case in a BIDS dataset" in result.output
    result = runner.invoke(app, ["preprocess", str(tmp_path / "m.csv"), "--out", str(tmp_path / "w"),
                                 "--bids-derivatives", str(tmp_path / "d"), "--no-bids-derivatives"])
    assert result.exit_code == 2 and "not both" in result.output


def test_a_missing_sequence_is_no_derivative(tmp_path):
    """A session without FLAIR (input.missing_sequences: 1) is preprocessed; its zero FLAIR volume of the
    work folder is not published as a preprocessed FLAIR (issue 15, missing sequences)."""
    root = tmp_path / "ds"
    _template_case(root)
    next((root / ANAT).glob("*_FLAIR.nii.gz")).unlink()
    rows = read_manifest(write_manifest(scan_cohort(root, layout="bids"), tmp_path / "manifest.csv"))
    config = load_config("tiny", overrides=["input.missing_sequences=1"])
    status = stages.preprocess(rows, tmp_path / "work", config, bids_derivatives=True)
    assert list(status["status"]) == ["done"], status.to_dict("records")
    anat = root / "derivatives" / "gliotype" / ANAT
    assert sorted(p.name for p in anat.iterdir()) == sorted(n for r, n in OUTPUTS.items() if r != "flair")
