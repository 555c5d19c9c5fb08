"""ANTsPy in this process: its import, ITK's thread count and ANTs' random seed.

A registration is reproducible for a fixed ITK thread count when no linear stage uses Mattes
mutual information, and with a seed ANTs does not read as "the clock" (docs/design.md points 21,
57). Measured on two threads: a rigid or affine stage on Mattes (or the joint-histogram mutual
information) gives other bytes in every run (ANTsPy issue #297; its derivative with respect to a
global transform's parameters is likely summed in the order the threads finish), while the Mattes
value alone, the dense Mattes of the SyN stage (one displacement per voxel), the global
correlation of an affine stage, the resampling and the denoising are the same bytes run after
run on a fixed count (each count its own bytes). So:

- the template registration (:func:`~gliotype.preprocessing.register.register_to_template`)
  runs its affine stage on global correlation, as ANTs' own reproducible mode does, on
  :data:`DEFAULT_ITK_THREADS` (2) threads of ITK's :data:`ITK_THREADER`: the registration of the
  real case 10.4 -> 6.0 s alone;
- the rigid co-registration between sequences (different contrasts: Mattes) runs on one ITK
  thread, in this process when ITK runs on one here, else in a helper process
  (:func:`~gliotype.preprocessing.register.one_itk_thread`).

Both are set here and nowhere else:

- :func:`use_itk_threads` sets the thread count (``itk_threads`` of
  :func:`~gliotype.preprocessing.preprocess_case` and
  :func:`~gliotype.preprocessing.preprocess_cohort`, default :data:`DEFAULT_ITK_THREADS`).
  ITK reads it once per process, from ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, when ANTs
  is first imported; ANTsPy has no other way to set it (0.6: no thread argument or
  setter). So this writes that variable for ITK, and a later call with another count
  only warns: cohorts run one worker process per patient, each with its own count. The count
  is the same on every machine (not its cores): the bytes depend on it.
- :func:`ants_module` is the one import of ``ants`` in gliotype: the first one in a process
  starts ITK with the count of :func:`use_itk_threads` (:data:`DEFAULT_ITK_THREADS` when it
  was not called); :func:`itk_threads_here` tells that count. An
  ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` or ``ITK_GLOBAL_DEFAULT_THREADER`` set by the user is
  not an input: pass ``itk_threads`` instead (the threader is :data:`ITK_THREADER`).
- :func:`seed_ants` seeds ANTs' random metric sampling.
"""

from __future__ import annotations

import os
import sys

from gliotype.utils.logging import get_logger

log = get_logger("preprocessing")

#: ITK threads per process unless told otherwise (the same bytes on every machine for a fixed count).
DEFAULT_ITK_THREADS = 2
#: The environment variable ITK reads its default thread count from (once per process).
ITK_THREADS_VARIABLE = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"
#: How ITK splits a filter's work over its threads: ``Platform`` (one fixed share per thread, threads
#: started per call) rather than ITK's default ``Pool``: on 2 threads the real case's registration
#: 6.6 -> 6.0 s and 11.6 -> 10.5 CPU seconds; either is the same bytes run after run, each its own.
ITK_THREADER = "Platform"
#: The environment variable ITK reads its threader from (once per process).
ITK_THREADER_VARIABLE = "ITK_GLOBAL_DEFAULT_THREADER"

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
    os.environ[ITK_THREADER_VARIABLE] = ITK_THREADER
    if _started is not None and _started != threads:
        have = f"{_started} thread(s)" if _started else "its own default number of threads"
        log.warning("ITK already runs on %s in this process (it reads the count once); "
                    "itk_threads=%d applies to new processes only", have, threads)


def ants_module():
    """The ``ants`` module; its first import in a process starts ITK with the :func:`use_itk_threads` count."""
    global _started
    if _started is None:
        if "ants" not in sys.modules:  # ITK reads its thread count and threader now
            os.environ[ITK_THREADS_VARIABLE] = str(_requested or DEFAULT_ITK_THREADS)
            os.environ[ITK_THREADER_VARIABLE] = ITK_THREADER
        try:
            _started = int(os.environ.get(ITK_THREADS_VARIABLE, ""))
        except ValueError:  # ants imported elsewhere first, with ITK's own default
            _started = 0
    import ants

    return ants


def itk_threads_here() -> int:
    """The ITK threads of this process: the count ITK started with, or will start with at the first
    :func:`ants_module` (0: ANTs was imported elsewhere first, with a count not known here)."""
    if _started is not None:
        return _started
    return _requested or DEFAULT_ITK_THREADS


def seed_ants(seed: int) -> None:
    """Seed ANTs' random metric sampling (antspyx passes ``ants.config._random_seed`` as
    ``--random-seed``). ANTs takes seed 0 to mean "the system clock", so ``seed + 1`` is
    passed: config seed 0 is reproducible too."""
    ants = ants_module()
    try:
        ants.config._random_seed = int(seed) + 1
    except AttributeError:  # older antspyx: no seed hook
        pass


__all__ = ["DEFAULT_ITK_THREADS", "ITK_THREADER", "ITK_THREADER_VARIABLE", "ITK_THREADS_VARIABLE", "ants_module",
           "itk_threads_here", "seed_ants", "use_itk_threads"]
