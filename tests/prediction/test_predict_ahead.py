"""``gliotype predict`` preprocesses the patient in a child process while it loads the networks
(issue 17, gliotype.prediction.ahead): the same prediction, the child's failure left to the
prediction's own one-line error, and the light modules that start it import no network library."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from pred_helpers import case_inputs, split_ids
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.errors import CaseError
from gliotype.layout import WorkDir
from gliotype.prediction import explainer_ahead, open_model, predict_patient, prediction_row, preprocessing_ahead
from gliotype.prediction.explain import case_edges


def _record(out):
    record = json.loads((out / "prediction.json").read_text())
    return record, record.pop("seconds")


def test_preprocessed_ahead_the_prediction_is_the_same(tiny_run, tiny_model, tmp_path):
    """The child fills the work folder; the prediction finds the patient preprocessed under the same
    key (its qc.json read back for the input checks) and gives the record of a prediction without it."""
    pid = split_ids(tiny_run / "run")[0]
    inputs = case_inputs(tiny_run / "cohort", pid)
    model = tiny_model.without([pid])
    work = tmp_path / "work"
    with preprocessing_ahead(prediction_row(None, inputs), work, model.config):
        pass  # gliotype predict loads the networks here
    case = WorkDir.of(work).case(pid)
    assert case.done.exists() and json.loads(case.qc.read_text())["passed"]
    ahead = predict_patient(model, inputs, None, tmp_path / "ahead", draws=20, explain=False, workdir=work)
    plain = predict_patient(model, inputs, None, tmp_path / "plain", draws=20, explain=False)
    (a, sa), (b, sb) = _record(tmp_path / "ahead"), _record(tmp_path / "plain")
    assert a == b and ahead.probability == plain.probability
    assert a["input_checks"] == b["input_checks"]  # the preprocessing's QC, from the child's qc.json
    assert sa["preprocessing_ahead"] > 0 and "preprocessing_ahead" not in sb
    assert sa["preprocessing"] < sb["preprocessing"]
    assert work.exists()  # the caller's folder: the caller removes it


def test_a_failed_child_leaves_the_error_to_the_prediction(tiny_run, tiny_model, tmp_path):
    """An empty mask fails in the child; nothing is reused and the prediction gives its own one line."""
    pid = split_ids(tiny_run / "run")[0]
    inputs = case_inputs(tiny_run / "cohort", pid)
    ref = nib.load(inputs["mask"])
    empty = tmp_path / "empty_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(ref.shape, np.uint8), ref.affine), empty)
    inputs = {**inputs, "mask": empty}
    work = tmp_path / "work"
    with preprocessing_ahead(prediction_row("P1", inputs), work, tiny_model.config):
        pass
    assert not WorkDir.of(work).case("P1").done.exists()
    with pytest.raises(CaseError) as err:
        predict_patient(tiny_model, inputs, "P1", tmp_path / "out", draws=0, workdir=work)
    msg = str(err.value)
    assert "\n" not in msg and "P1" in msg and "empty_seg.nii.gz" in msg and str(tmp_path) not in msg
    assert not (tmp_path / "out").exists()


def test_the_child_does_not_outlive_a_failed_block(tiny_run, tiny_model, tmp_path):
    """A block that raises (a model that does not load) stops the child at once: it is not waited for
    (the patient is left unpreprocessed) and no process is left behind."""
    pid = split_ids(tiny_run / "run")[0]
    with pytest.raises(RuntimeError, match="the model did not load"):
        with preprocessing_ahead(prediction_row(None, case_inputs(tiny_run / "cohort", pid)), tmp_path / "w",
                                 tiny_model.config):
            raise RuntimeError("the model did not load")
    assert not [c for c in mp.active_children() if c.name == "gliotype-preprocess-ahead"]
    assert not WorkDir.of(tmp_path / "w").case(pid).done.exists()  # stopped, not waited for


def test_the_command_preprocesses_ahead(tiny_run, tiny_model, tmp_path):
    """`gliotype predict` runs the child beside the model's loading and predicts what the API predicts."""
    pid = split_ids(tiny_run / "run")[0]
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["predict", "--model", str(tiny_run / "run" / "model"), "--case",
                                   str(tiny_run / "cohort" / pid), "--out", str(out), "--no-explain", "--draws", "0"])
    assert res.exit_code == 0, res.output
    record, seconds = _record(out)
    assert seconds["preprocessing_ahead"] > 0
    api = predict_patient(tiny_model, case_inputs(tiny_run / "cohort", pid), pid, tmp_path / "api", draws=0,
                          explain=False)
    assert record["idh_mutant_probability"] == round(api.probability, 6)


def test_the_command_explains_the_edges_in_its_child(tiny_run, tiny_model, tmp_path):
    """`gliotype predict` with the explanations: GNNExplainer runs in the explainer's child, and the
    edges, the figures' numbers and the prediction are those of the API's own, byte for byte."""
    pid = split_ids(tiny_run / "run")[0]
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["predict", "--model", str(tiny_run / "run" / "model"), "--case",
                                   str(tiny_run / "cohort" / pid), "--out", str(out), "--draws", "5"])
    assert res.exit_code == 0, res.output
    predict_patient(tiny_model, case_inputs(tiny_run / "cohort", pid), pid, tmp_path / "api", draws=5)
    (a, _), (b, _) = _record(out), _record(tmp_path / "api")
    a["interpretation"].pop("seconds"), b["interpretation"].pop("seconds")
    assert a == b and a["interpretation"]["edges"] > 0
    assert (out / "edges.csv").read_bytes() == (tmp_path / "api" / "edges.csv").read_bytes()
    assert not [c for c in mp.active_children() if c.name == "gliotype-explainer-ahead"]


@pytest.fixture(scope="module")
def explained(tiny_run, tiny_model, tmp_path_factory):
    """A patient predicted (without explanations) into a kept work folder, and its edges computed here."""
    pid = split_ids(tiny_run / "run")[0]
    work = tmp_path_factory.mktemp("explained") / "work"
    predict_patient(tiny_model, case_inputs(tiny_run / "cohort", pid), pid, work.parent / "out", draws=0,
                    explain=False, workdir=work)
    return pid, work, case_edges(tiny_model.multimodal, work, pid, epochs=30, seed=3)


def test_the_explainer_child_gives_the_edges_of_this_process(tiny_run, explained):
    pid, work, (probs, _) = explained
    with explainer_ahead(open_model(tiny_run / "run" / "model")) as child:
        got = child.submit(work, pid, 30, 3).result()
        again = child.submit(work, pid, 30, 4).result()  # one request after another, the seed honoured
    assert got is not None and again is not None
    assert got[0].tobytes() == probs.tobytes() and got[1] > 0
    assert again[0].tobytes() != probs.tobytes()
    assert not [c for c in mp.active_children() if c.name == "gliotype-explainer-ahead"]


def test_a_child_that_died_or_failed_leaves_the_edges_to_the_prediction(tiny_run, tiny_model, explained, tmp_path):
    """A killed child and one whose network does not load answer None; predict_patient then computes
    the edges itself, the same ones."""
    import os
    import shutil
    import signal

    pid, work, (probs, _) = explained
    with explainer_ahead(open_model(tiny_run / "run" / "model")) as child:
        os.kill(child._child.pid, signal.SIGKILL)
        child._child.join()
        assert child.submit(work, pid, 30, 3).result() is None
        out = predict_patient(tiny_model, case_inputs(tiny_run / "cohort", pid), pid, tmp_path / "out", draws=0,
                              explainer=child, explainer_epochs=30, seed=3, workdir=work)
    table = pd.read_csv(tmp_path / "out" / "edges.csv")
    assert np.allclose(table["probability"].to_numpy(), probs, rtol=0, atol=1e-6)  # edges.csv: 6 decimals
    assert out.record["interpretation"]["important_edges"] == int((probs > 0.5).sum())

    broken = tmp_path / "model"
    shutil.copytree(tiny_run / "run" / "model", broken)
    opened = open_model(broken)  # verified first, then a weight file damaged: the child cannot load it
    for f in (broken / "multimodal").rglob("*.safetensors"):
        f.write_bytes(b"not weights")
    with explainer_ahead(opened) as child:
        assert child.submit(work, pid, 30, 3).result() is None


def test_what_starts_the_child_imports_no_network_library(tiny_run):
    """The CLI's light modules and opening the model load no torch: the child forks from a process
    that has started no OpenMP, and the networks load while it runs."""
    code = ("import sys, gliotype.cli\n"
            "from gliotype.prediction import open_model, preprocessing_ahead, prediction_config, prediction_row\n"
            "from gliotype.prediction.inputs import case_folder_row, row_inputs\n"
            "from gliotype.input.bids import bids_output\n"
            f"config = open_model({str(tiny_run / 'run' / 'model')!r}).config\n"
            "heavy = sorted(m for m in ('torch', 'torch_geometric', 'monai', 'matplotlib', 'ants') if m in sys.modules)\n"
            "print(config.preset, heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tiny []"


def test_open_model_reads_the_config_load_model_uses(tiny_run, tiny_model):
    opened = open_model(tiny_run / "run" / "model")
    assert opened.config == tiny_model.config and opened.manifest == tiny_model.manifest
    assert opened.signed_by is None
