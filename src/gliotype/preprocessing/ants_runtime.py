"""ANTsPy in this process: its import, ITK's thread count and ANTs' random seed.

Registrations are reproducible only with one ITK thread (ANTs' Mattes mutual information
differs across thread counts, ANTsPy issue #297) and a seed ANTs does not read as "the
clock". Both are set here and nowhere else:

- :func:`use_itk_threads` sets the thread count (``itk_threads`` of
  :func:`~gliotype.preprocessing.preprocess_case` and
  :func:`~gliotype.preprocessing.preprocess_cohort`, default :data:`DEFAULT_ITK_THREADS`).
  ITK reads it once per process, from ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, when ANTs
  is first imported; ANTsPy has no other way to set it (0.6: no thread argument or
  setter). So this writes that variable for ITK, and a later call with another count
  only warns: cohorts run one worker process per patient, each with its own count.
- :func:`ants_module` is the one import of ``ants`` in gliotype: the first one in a process
  starts ITK with the count of :func:`use_itk_threads` (:data:`DEFAULT_ITK_THREADS` when it
  was not called). An ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` set by the user is not an
  input: pass ``itk_threads`` instead.
- :func:`seed_ants` seeds ANTs' random metric sampling.
"""

from __future__ import annotations

import os
import sys

from gliotype.utils.logging import get_logger

log = get_logger("preprocessing")

#: ITK threads per process unless told otherwise: 1, the reproducible count.
DEFAULT_ITK_THREADS = 1
#: The environment variable ITK reads its default thread count from (once per process).
ITK_THREADS_VARIABLE = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"

_requested: int | None = None  # set by use_itk_threads
_started: int | None = None  # the count ITK started with here (None: not yet; 0: ants imported elsewhere, unknown)


def use_itk_threads(threads: int = DEFAULT_ITK_THREADS) -> None:
    """Run ITK (ANTs) on ``threads`` threads in this process.

    Takes effect when called before ANTs is first used in the process (the cohort workers
    and :func:`~gliotype.preprocessing.preprocess_case` call it first); once ITK runs with
    another count it cannot change, and a warning says so.
    """
    global _requested
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"itk_threads must be at least 1, got {threads}")
    _requested = threads
    os.environ[ITK_THREADS_VARIABLE] = str(threads)
    if _started is not None and _started != threads:
        have = f"{_started} thread(s)" if _started else "its own default number of threads"
        log.warning("ITK already runs on %s in this process (it reads the count once); "
                    "itk_threads=%d applies to new processes only", have, threads)


def ants_module():
    """The ``ants`` module; its first import in a process starts ITK with the :func:`use_itk_threads` count."""
    global _started
    if _started is None:
        if "ants" not in sys.modules:  # ITK reads its thread count now
            os.environ[ITK_THREADS_VARIABLE] = str(_requested or DEFAULT_ITK_THREADS)
        try:
            _started = int(os.environ.get(ITK_THREADS_VARIABLE, ""))
        except ValueError:  # ants imported elsewhere first, with ITK's own default
            _started = 0
    import ants

    return ants


def seed_ants(seed: int) -> None:
    """Seed ANTs' random metric sampling (antspyx passes ``ants.config._random_seed`` as
    ``--random-seed``). ANTs takes seed 0 to mean "the system clock", so ``seed + 1`` is
    passed: config seed 0 is reproducible too."""
    ants = ants_module()
    try:
        ants.config._random_seed = int(seed) + 1
    except AttributeError:  # older antspyx: no seed hook
        pass


__all__ = ["DEFAULT_ITK_THREADS", "ITK_THREADS_VARIABLE", "ants_module", "seed_ants", "use_itk_threads"]
