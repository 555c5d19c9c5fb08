"""The Dask engine of :func:`gliotype.utils.parallel.parallel_map`: every item one task on a cluster.

Each item is a task with a key of its own (``gliotype-<desc>-<token>-<i>``, never reused, so
a retried task reruns only that item); the results come back in the items' order and one
progress bar follows them. The crash semantics are the local pool's, as far as Dask allows:

- a task whose worker process dies (out of memory, a crash in native code, a lost node) is
  rescheduled by Dask on another worker, up to the scheduler's ``allowed-failures`` (default 3);
  after that it fails with ``KilledWorker``. Dask counts a death against every task the dead
  worker held, so each such item is run once more alone (no other task of the map in flight),
  like the local pool's one-worker retry, and only an item that kills its worker alone too
  gets ``on_crash(item)`` (without ``on_crash`` the ``KilledWorker`` is raised);
- an error ``fn`` raises ends the map at once: every task not finished is cancelled.

A task is safe to retry because every per-patient stage writes its files atomically and keys
its cache on its inputs. Every task runs ``initializer`` once per worker process (the first
task of the map there) and in the caller's working folder when the worker has it, so relative
paths mean on the worker what they mean to the caller (the workers must see the same files at
the same paths: a shared work folder).
"""

from __future__ import annotations

import os
import pickle
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from gliotype.errors import GliotypeError
from gliotype.utils.progress import progress

#: The initializers already run in this (worker) process, by their pickled bytes.
_INITIALIZED: set[bytes] = set()


class _Task:
    """``fn(item)`` on a worker, after ``initializer`` (once per process) in the caller's folder.

    One object for every task of a map, so Dask serialises ``fn`` (its config, its paths) once."""

    def __init__(self, fn: Callable, initializer: Callable[[], None] | None, cwd: str):
        self.fn, self.initializer, self.cwd = fn, initializer, cwd
        try:
            self.init_key = pickle.dumps(initializer) if initializer is not None else None
        except Exception:  # not picklable by value: run it before every task (initializers are idempotent)
            self.init_key = None

    def __call__(self, item):
        if os.getcwd() != self.cwd and os.path.isdir(self.cwd):
            os.chdir(self.cwd)
        if self.initializer is not None and (self.init_key is None or self.init_key not in _INITIALIZED):
            self.initializer()
            if self.init_key is not None:
                _INITIALIZED.add(self.init_key)
        return self.fn(item)


def dask_map(client, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "patients", unit: str = "patient",
             initializer: Callable[[], None] | None = None, on_crash: Callable[[Any], Any] | None = None,
             retries: int = 1) -> list:
    """``[fn(x) for x in items]`` as tasks of the Dask ``client`` (see the module docstring)."""
    from distributed import KilledWorker

    items = list(items)
    task = _Task(fn, initializer, os.getcwd())
    # gliotype-<desc>-<token>: the dashboard groups the tasks by "gliotype-<desc>" (letters only)
    prefix = f"gliotype-{re.sub(r'[^A-Za-z]+', '-', desc).strip('-') or 'map'}-{uuid.uuid4().hex[:8]}"
    results: dict[int, Any] = {}
    crashed: list[int] = []
    bar = progress(range(len(items)), desc, total=len(items), unit=unit)
    ticks = iter(bar)
    try:
        futures = client.map(task, items, key=[f"{prefix}-{i}" for i in range(len(items))], pure=False)
        _collect(client, futures, results, crashed, ticks, KilledWorker)
        for i in sorted(crashed):  # each alone, so an item that kills its worker costs only itself
            for attempt in range(max(1, retries)):
                future = client.submit(task, items[i], key=f"{prefix}-alone{attempt}-{i}", pure=False)
                try:
                    results[i] = future.result()
                    break
                except KilledWorker:
                    if attempt + 1 < max(1, retries):
                        continue
                    if on_crash is None:
                        raise
                    results[i] = on_crash(items[i])
                finally:
                    future.release()
            next(ticks, None)
    finally:
        if hasattr(bar, "close"):
            bar.close()
    return [results[i] for i in range(len(items))]


def _collect(client, futures, results: dict, crashed: list, ticks, killed: type) -> None:
    """Gather ``futures`` as they finish into ``results`` (by position); the ones whose workers
    died too often into ``crashed``; an error of ``fn`` cancels the rest and is raised."""
    from distributed import as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    pending = set(index)
    try:
        for future, result in as_completed(futures, loop=client.loop, with_results=True, raise_errors=False):
            i = index[future.key]
            pending.discard(future.key)
            if future.status == "error":
                _, exc, tb = result
                if isinstance(exc, killed):
                    crashed.append(i)
                    continue
                raise exc.with_traceback(tb)
            if future.status != "finished":  # cancelled: the scheduler went away or someone cancelled it
                raise GliotypeError(f"the Dask cluster {future.status} task {future.key} (did the scheduler stop?): "
                                    "rerun the same command to resume; finished patients are cached")
            results[i] = result
            future.release()  # gathered: a worker lost later need not recompute it
            next(ticks, None)
    except BaseException:  # an item raised (a full disk stops a stage): start no other item
        client.cancel([f for f in futures if f.key in pending])
        raise

__all__ = ["dask_map"]
