"""The patient's preprocessing started in a child process while this one loads the model.

``gliotype predict`` spends its first seconds importing the network libraries and loading the
model's networks (about 4 s on 2 cores), and most of the rest preprocessing the patient (SyN
on the one ITK thread that keeps registrations reproducible, design.md point 21), one core
each. :func:`preprocessing_ahead` runs the preprocessing of the patient (the same
:func:`~gliotype.preprocessing.preprocess_case`, with the model's configuration from
:func:`~gliotype.prediction.open_model`) in a child process during its ``with`` block, and waits
for it on leaving. The child only fills the work folder: :func:`~gliotype.prediction.predict_patient`
given that folder finds the patient preprocessed under the same cache key (the inputs' sha256,
the ``preprocess`` section, the version; :mod:`gliotype.preprocessing.cache`) and goes on, so the
prediction and its bytes are those of a prediction without it. A child that failed (a bad case),
died or computed under another key leaves nothing the prediction reuses: the prediction
preprocesses the patient itself and reports its own one-line error. When the block raises (a
model that does not load), the child is stopped.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from gliotype.utils.logging import get_logger

log = get_logger(__name__)


def _preprocess(row: dict, work: str, config) -> None:
    from gliotype.preprocessing import preprocess_case

    preprocess_case(row, work, config)


@contextmanager
def preprocessing_ahead(row: Mapping, work: str | Path, config) -> Iterator[None]:
    """Preprocess ``row`` (:func:`~gliotype.prediction.prediction_row`) into the work folder ``work``
    with ``config`` in a child process while the block runs; wait for it on leaving the block.

    The child starts with ``fork`` where it exists (this process must not have started threads or
    OpenMP yet: call it before importing torch), else ``spawn``.
    """
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    child = ctx.Process(target=_preprocess, args=(dict(row), str(work), config), name="gliotype-preprocess-ahead",
                        daemon=True)
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


__all__ = ["preprocessing_ahead"]
