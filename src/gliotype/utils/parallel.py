"""One parallel map for every per-patient stage (synthesis, validation, preprocessing,
modalities, descriptors, Table 2 rows).

``parallel_map(fn, items, workers)`` returns ``[fn(x) for x in items]`` in order. With
``workers > 1`` the items run in a process pool; a worker process that dies (out of
memory, a crash in native code) costs only its item: every item the broken pool did not
finish is run again alone, in a one-worker pool of its own, and an item that kills that
worker too gets ``on_crash(item)`` as its result (without ``on_crash`` the error is
raised). An error ``fn`` raises ends the map at once: the items not started are cancelled
(a per-patient stage raises only what every next item would hit too, e.g. a full disk:
:func:`gliotype.errors.stop_on_environment`). One progress bar follows the items.

That is the ``local`` engine. Inside :func:`gliotype.utils.executor.use_executor` on a Dask
scheduler (``--scheduler ADDRESS``, or the config's ``executor`` section) the same call runs
every item as a task of the cluster instead (:mod:`gliotype.utils.dask_map`: same results, same
order, the same crash and error semantics as far as Dask allows); ``workers`` and ``start``
are then the cluster's business and not used.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from gliotype.utils.executor import current_engine
from gliotype.utils.progress import progress

T = TypeVar("T")
R = TypeVar("R")

#: Start methods: ``fork`` (Linux default: no re-import, no start-up cost) or ``spawn``
#: (a fresh interpreter: needed after the parent ran OpenMP threads, e.g. torch training).
START_METHODS = ("fork", "spawn")


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int = 1, *, desc: str = "patients",
                 unit: str = "patient", start: str = "fork", initializer: Callable[[], None] | None = None,
                 on_crash: Callable[[T], R] | None = None, retries: int = 1) -> list[R]:
    """``[fn(x) for x in items]``, in ``workers`` processes when ``workers > 1`` (order kept), or
    as tasks of the current Dask cluster (:func:`gliotype.utils.executor.use_executor`).

    Args:
        fn: a picklable (module-level) function of one item.
        workers: processes; 1 (or a single item) runs in this process, without a pool.
        desc: the progress bar's label; ``unit``: what an item is (its log lines count them).
        start: ``fork`` or ``spawn`` (falls back to ``spawn`` where fork does not exist).
        initializer: run once in every worker process before its first item.
        on_crash: the result of an item whose own worker process died ``retries`` times
            when run alone.
    """
    items = list(items)
    engine = current_engine()
    if engine.client is not None and items:
        from gliotype.utils.dask_map import dask_map

        return dask_map(engine.client, fn, items, desc=desc, unit=unit, initializer=initializer, on_crash=on_crash,
                        retries=retries)
    workers = max(1, min(int(workers or 1), len(items)))
    if workers == 1:
        return [fn(x) for x in progress(items, desc, total=len(items), unit=unit)]
    if start not in START_METHODS:
        raise ValueError(f"start must be one of {START_METHODS}, got {start!r}")
    ctx = mp.get_context(start if start in mp.get_all_start_methods() else "spawn")
    results: dict[int, R] = {}
    crashed: list[int] = []
    bar = progress(range(len(items)), desc, total=len(items), unit=unit)
    ticks = iter(bar)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer) as pool:
            futures = {pool.submit(fn, items[i]): i for i in range(len(items))}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except BrokenProcessPool:  # this item's worker, or another one of the pool, died
                        crashed.append(i)
                        continue
                    next(ticks, None)
            except BaseException:  # an item raised (a full disk stops a stage): start no other item
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        for i in sorted(crashed):  # each alone, so an item that kills its worker costs only itself
            results[i] = _alone(fn, items[i], ctx, initializer, retries, on_crash)
            next(ticks, None)
    finally:
        if hasattr(bar, "close"):
            bar.close()
    return [results[i] for i in range(len(items))]


def _alone(fn, item, ctx, initializer, retries: int, on_crash):
    """``fn(item)`` in a one-worker pool of its own, up to ``retries`` times; then ``on_crash(item)``."""
    for attempt in range(max(1, retries)):
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=initializer) as pool:
            try:
                return pool.submit(fn, item).result()
            except BrokenProcessPool:
                if attempt + 1 < max(1, retries):
                    continue
                if on_crash is None:
                    raise
                return on_crash(item)


__all__ = ["START_METHODS", "parallel_map"]
