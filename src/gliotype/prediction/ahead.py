"""Child processes started before this one loads the model: the patient's preprocessing, the explainer.

``gliotype predict`` spends its first seconds importing the network libraries and loading the
model's networks (about 4 s on 2 cores), and most of the rest preprocessing the patient (SyN
on the two ITK threads it is reproducible with, design.md point 57): the two overlap.
:func:`preprocessing_ahead` runs the preprocessing of the patient (the same
:func:`~gliotype.preprocessing.preprocess_case`, with the model's configuration from
:func:`~gliotype.prediction.open_model`) in a child process during its ``with`` block, and waits
for it on leaving. The child only fills the work folder: :func:`~gliotype.prediction.predict_patient`
given that folder finds the patient preprocessed under the same cache key (the inputs' sha256,
the ``preprocess`` section, the version; :mod:`gliotype.preprocessing.cache`) and goes on, so the
prediction and its bytes are those of a prediction without it. A child that failed (a bad case),
died or computed under another key leaves nothing the prediction reuses: the prediction
preprocesses the patient itself and reports its own one-line error. When the block raises (a
model that does not load), the child is stopped.

:func:`explainer_ahead` starts a second child, just as early, that loads the model's multi-modal
network while the patient is preprocessed (once told, :meth:`ExplainerAhead.load`: once the
parent's own networks are loaded, so the two loads do not compete with each other) and
then computes the patient's GNNExplainer edges (Fig. 8) in its own process while the parent computes
Grad-CAM and Fig. 7. In a thread of the parent, beside Grad-CAM, the explainer's Python steps
waited for the interpreter lock (12 s instead of 8 s alone, docs/prediction.md "Speed"). The child
reads the same network files and the same work folder and runs the same
:func:`~gliotype.prediction.explain.case_edges` on one torch thread, so the edges and their bytes
are those of the parent's own; a child that failed or died leaves the parent to compute them itself.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from gliotype.utils.logging import get_logger

log = get_logger(__name__)


def _preprocess(row: dict, work: str, config) -> None:
    from gliotype.preprocessing import preprocess_case

    preprocess_case(row, work, config, helper=True)  # the other core idles once the networks are loaded


def _context():
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


@contextmanager
def preprocessing_ahead(row: Mapping, work: str | Path, config) -> Iterator[None]:
    """Preprocess ``row`` (:func:`~gliotype.prediction.prediction_row`) into the work folder ``work``
    with ``config`` in a child process while the block runs; wait for it on leaving the block.

    The child starts with ``fork`` where it exists (this process must not have started threads or
    OpenMP yet: call it before importing torch), else ``spawn``.
    """
    # not a daemon: it starts a helper process (preprocessing.helper); the block joins or ends it
    child = _context().Process(target=_preprocess, args=(dict(row), str(work), config),
                               name="gliotype-preprocess-ahead", daemon=False)
    child.start()
    try:
        yield
    except BaseException:
        child.terminate()
        child.join()
        raise
    child.join()
    if child.exitcode != 0:  # the prediction preprocesses the patient again and reports the problem itself
        log.debug("patient %s: the preprocessing ahead ended with exit code %s", row.get("patient_id"),
                  child.exitcode)


def _load_network(opened):
    """The multi-modal network of ``opened`` and ``None``, or ``None`` and why it did not load."""
    try:
        from gliotype.multimodal.stage import load_multimodal

        return load_multimodal(opened.layout.multimodal, opened.config), None
    except Exception as exc:  # the parent loads the same files and reports its own error
        return None, f"the network did not load ({type(exc).__name__})"


def _explainer(conn, opened) -> None:
    """The child of :func:`explainer_ahead`: load the multi-modal network when told (``"load"``) or
    at the first request, then answer one request ``(work folder, patient ID, epochs, seed)`` after
    another until the pipe closes. An answer is ``("done", case_edges(...))`` or ``("failed", reason)``."""
    net, failed = None, None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent has gone
            return
        if job is None:
            return
        if net is None and failed is None:
            net, failed = _load_network(opened)
        if job == "load":
            continue
        if net is None:
            conn.send(("failed", failed))
            continue
        try:
            from gliotype.prediction.explain import case_edges

            answer = ("done", case_edges(net, *job))
        except Exception as exc:  # the parent computes the edges itself and meets the same problem there
            answer = ("failed", f"{type(exc).__name__}")
        conn.send(answer)


class PendingEdges:
    """The answer of :meth:`ExplainerAhead.submit`: :meth:`result` waits for it."""

    def __init__(self, conn, patient_id: str):
        self._conn, self._pid = conn, patient_id

    def result(self):
        """``case_edges``' answer from the child, or ``None`` when the child failed or died (the
        caller computes the edges itself)."""
        if self._conn is None:
            return None
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            status, value = "failed", "the child ended"
        finally:
            self._conn = None
        if status == "done":
            return value
        log.debug("patient %s: the explainer ahead failed (%s); explained here", self._pid, value)
        return None


class ExplainerAhead:
    """The child process of :func:`explainer_ahead`."""

    def __init__(self, opened):
        # torch's thread pools do not survive a fork: a process that imported it starts a fresh one
        ctx = mp.get_context("spawn") if "torch" in sys.modules else _context()
        self._conn, theirs = ctx.Pipe()
        self._child = ctx.Process(target=_explainer, args=(theirs, opened), name="gliotype-explainer-ahead",
                                  daemon=True)
        self._child.start()
        theirs.close()

    def load(self) -> None:
        """Let the child load its network now (else at the first request): ``gliotype predict`` says
        so once its own networks are loaded, so that the child takes the core this process leaves
        idle until the patient is preprocessed, never one the registration needs."""
        self._send("load")

    def _send(self, message) -> bool:
        try:
            self._conn.send(message)
            return True
        except (OSError, ValueError):  # the child has gone: the caller explains the patient itself
            return False

    def submit(self, workdir: str | Path, patient_id: str, epochs: int, seed: int) -> PendingEdges:
        """Ask the child for :func:`~gliotype.prediction.explain.case_edges` of ``patient_id``, whose
        brain network is in the work folder ``workdir``; one request at a time."""
        sent = self._send((str(workdir), str(patient_id), int(epochs), int(seed)))
        return PendingEdges(self._conn if sent else None, str(patient_id))

    def close(self) -> None:
        """Stop the child (it reads files only: nothing is left half written)."""
        self._conn.close()
        if self._child.is_alive():
            self._child.terminate()
        self._child.join()


@contextmanager
def explainer_ahead(opened) -> Iterator[ExplainerAhead]:
    """A child process that loads the multi-modal network of ``opened``
    (:func:`~gliotype.prediction.open_model`) when told (:meth:`ExplainerAhead.load`) and explains a
    patient's brain network when asked (:meth:`ExplainerAhead.submit`;
    :func:`~gliotype.prediction.predict_patient`'s ``explainer``); stopped on leaving the block. Forked like :func:`preprocessing_ahead` when this
    process has not imported torch yet (``gliotype predict``), else spawned (a new interpreter)."""
    helper = ExplainerAhead(opened)
    try:
        yield helper
    finally:
        helper.close()


__all__ = ["ExplainerAhead", "PendingEdges", "explainer_ahead", "preprocessing_ahead"]
