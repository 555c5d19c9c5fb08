"""The preprocessing helper process: its protocol, and one native-space patient preprocessed with it
gives the bytes of the preprocessing without it, and the same one-line reason for a bad sequence."""

import json
import multiprocessing as mp
import os
import signal
import threading
import time

import nibabel as nib
import numpy as np
import pytest

from gliotype.preprocessing import load_preprocessed, preprocess_case
from gliotype.preprocessing.helper import CaseHelper, Kept, case_helper
from pp_helpers import brats_row, config, once, synth

PID = "SYN-0000"


# ----------------------------------------------------------------------------- the protocol


def _scaled(x, k):
    return np.asarray(x) * k


def _fails(message):
    raise ValueError(message)


def _sleep_then(value, seconds):
    time.sleep(seconds)
    return value


class _Unpicklable(Exception):
    def __init__(self, a, b):  # pickle calls cls(*args) with one argument: it cannot come back as is
        super().__init__(f"{a}/{b}")
        self.lock = threading.Lock()  # nor with its state (tblib, installed by pytest-xdist, pickles that)


def _raises_unpicklable():
    raise _Unpicklable("x", "y")


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_jobs_answer_in_order_keep_values_and_raise_their_errors(start_method):
    start = np.arange(6.0)
    with case_helper(1, {"x": start}, start_method) as helper:
        kept = helper.submit(_scaled, Kept("x"), 2.0, keep="y")
        wrong = helper.submit(_fails, "no such sequence")
        doubled = helper.submit(_scaled, Kept("y"), 1.0)
        odd = helper.submit(_raises_unpicklable)
        assert helper.result(doubled).tolist() == (start * 2).tolist()  # read past the others: kept for later
        assert helper.result(kept) is None  # a kept result stays in the helper
        with pytest.raises(ValueError, match="no such sequence"):
            helper.result(wrong)
        with pytest.raises(RuntimeError, match="_Unpicklable: x/y"):
            helper.result(odd)


def test_large_arguments_and_answers_cross_without_a_deadlock():
    """The parent sends a large job while the helper sends a large answer: the helper reads jobs in a
    thread, so neither waits for the other (one pipe for both ways deadlocked)."""
    big = np.ones((64, 64, 64, 8), np.float32)  # 8 MB each way, far above a pipe's buffer
    helper, answers = CaseHelper(1), []

    def exchange():
        jobs = [helper.submit(_scaled, big, k) for k in (2.0, 3.0, 4.0)]
        answers.extend(float(helper.result(j)[0, 0, 0, 0]) for j in jobs)

    talk = threading.Thread(target=exchange, daemon=True)
    talk.start()
    talk.join(60)
    stuck = talk.is_alive()
    if stuck:  # deadlocked: end it so the test fails instead of hanging
        os.kill(helper._process.pid, signal.SIGKILL)
    helper.close()
    assert not stuck and answers == [2.0, 3.0, 4.0]


def test_a_dead_helper_is_an_error_not_a_hang():
    helper = CaseHelper(1)
    try:
        job = helper.submit(_sleep_then, 1, 30)
        os.kill(helper._process.pid, signal.SIGKILL)
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="helper process ended"):
            helper.result(job)
        assert time.perf_counter() - t0 < 10
    finally:
        helper.close()
    assert not helper._process.is_alive()


def _parent_of_a_helper(conn):
    helper = CaseHelper(1)
    helper.submit(_sleep_then, 1, 0.1)
    conn.send(helper._process.pid)
    time.sleep(120)


def _ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie has ended
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_a_helper_does_not_outlive_its_parent():
    """The parent killed (e.g. gliotype predict's child stopped by a failed block): the helper sees its
    pipe close and ends, instead of waiting for jobs forever."""
    ctx = mp.get_context("fork")
    ours, theirs = ctx.Pipe()
    parent = ctx.Process(target=_parent_of_a_helper, args=(theirs,))
    parent.start()
    pid = ours.recv()
    os.kill(parent.pid, signal.SIGKILL)
    parent.join()
    deadline = time.monotonic() + 20
    while not _ended(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    ended = _ended(pid)
    if not ended:
        os.kill(pid, signal.SIGKILL)
    assert ended


# ----------------------------------------------------------------------------- one patient


def _native(folder):
    root = synth(folder / "data", patients=1, fa_cases=0, space="native", seed=9)
    return {"row": brats_row(root / PID)}


@pytest.fixture(scope="module")
def native_row(tmp_path_factory):
    return once(tmp_path_factory, "helper-native-patient", _native)[1]["row"]


def _volumes(work):
    case = load_preprocessed(work, PID)
    return {k: np.asarray(v).tobytes() for k, v in case.items() if isinstance(v, np.ndarray)}


def _qc(work):
    qc = json.loads((work / "patients" / PID / "preprocessed" / "qc.json").read_text())
    return {k: v for k, v in qc.items() if k not in ("seconds", "steps_seconds")}


def test_with_the_helper_the_same_bytes(native_row, tmp_path):
    alone = preprocess_case(native_row, tmp_path / "alone", config())
    helped = preprocess_case(native_row, tmp_path / "helped", config(), helper=True)
    assert alone.status == helped.status == "done", (alone.reason, helped.reason)
    assert helped.info["qc"]["registration"] == "SyN"  # really registered: the helper had work
    a, b = _volumes(tmp_path / "alone"), _volumes(tmp_path / "helped")
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)
    assert _qc(tmp_path / "alone") == _qc(tmp_path / "helped")
    folders = [w / "patients" / PID / "preprocessed" / "transforms" for w in (tmp_path / "alone", tmp_path / "helped")]
    assert (folders[0] / "affine.mat").read_bytes() == (folders[1] / "affine.mat").read_bytes()
    warps = [np.asarray(nib.load(f / "warp.nii.gz").dataobj).tobytes() for f in folders]
    assert warps[0] == warps[1]


def test_a_sequence_the_helper_cannot_normalise_fails_the_case_as_without_it(native_row, tmp_path):
    t2 = nib.load(native_row["t2"])
    brain = np.asarray(nib.load(native_row["t1c"]).dataobj) != 0
    flat = tmp_path / f"{PID}_t2.nii.gz"
    nib.save(nib.Nifti1Image(np.where(brain, 100.0, 0.0).astype(np.float32), t2.affine), flat)
    row = {**native_row, "t2": str(flat)}
    alone = preprocess_case(row, tmp_path / "alone", config())
    helped = preprocess_case(row, tmp_path / "helped", config(), helper=True)
    assert alone.status == helped.status == "failed"
    assert helped.reason == alone.reason and "t2: the image is constant inside the brain" in helped.reason


def test_the_child_of_gliotype_predict_preprocesses_with_its_helper(native_row, tmp_path):
    """`gliotype predict`'s child (prediction.ahead) starts the helper: it must be allowed children (not
    a daemon) and leave the patient preprocessed, as the API would."""
    from gliotype.layout import WorkDir
    from gliotype.prediction import prediction_row, preprocessing_ahead

    row = prediction_row(PID, {r: native_row[r] for r in ("t1", "t1c", "t2", "flair", "mask")})
    with preprocessing_ahead(row, tmp_path / "ahead", config()):
        pass
    assert WorkDir.of(tmp_path / "ahead").case(PID).done.exists()
    alone = preprocess_case(row, tmp_path / "alone", config())
    assert alone.status == "done"
    a, b = _volumes(tmp_path / "alone"), _volumes(tmp_path / "ahead")
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)
