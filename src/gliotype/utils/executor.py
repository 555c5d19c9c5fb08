"""Where :func:`gliotype.utils.parallel.parallel_map` runs its items: the one place that decides.

Two engines: ``local`` (the default: ``workers`` processes of this machine) and ``dask`` (the
workers of a Dask cluster, reached through its scheduler's address; :mod:`gliotype.utils.dask_map`).
The engine is a context: inside ``with use_executor(spec):`` every parallel map runs on ``spec``,
which is a config's ``executor`` section (:class:`~gliotype.config.schema.ExecutorConfig`), a
scheduler address (``"tcp://host:8786"``), a connected ``distributed.Client`` or None.

A local spec (or None) leaves the current engine alone, so a config at its default never undoes
an outer ``--scheduler``; a Dask spec connects once, and the maps and the nested contexts on the
same address inside reuse that connection. The CLI (``--scheduler ADDRESS`` or the config's
``executor`` section) and the API functions that take a config (:mod:`gliotype.stages`,
:func:`gliotype.experiment.run_experiment`) enter it; the per-patient stages only call
``parallel_map``. The engine changes where the work runs, never what it produces: the
``executor`` section is in no cache key (:data:`gliotype.config.loader.LOCATION_OPTIONS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from gliotype.errors import GliotypeError, one_line
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: Seconds to wait for a scheduler given as a bare address (a config says its own).
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Engine:
    """The engine of the parallel maps: ``client`` None is the local process pool."""

    client: Any = None  # a connected distributed.Client
    address: str | None = None  # as the user gave it

    @property
    def name(self) -> str:
        return "local" if self.client is None else "dask"


_CURRENT: ContextVar[Engine] = ContextVar("gliotype_engine", default=Engine())


def current_engine() -> Engine:
    """The engine the next :func:`~gliotype.utils.parallel.parallel_map` runs on."""
    return _CURRENT.get()


@contextmanager
def use_executor(spec: Any = None) -> Iterator[Engine]:
    """Run the parallel maps inside on ``spec``'s engine (see the module docstring); yields the engine."""
    current = _CURRENT.get()
    if spec is None or getattr(spec, "engine", None) == "local":
        yield current
        return
    if hasattr(spec, "submit"):  # a Client the caller connected (and closes)
        token = _CURRENT.set(Engine(spec, getattr(spec.scheduler, "address", None)))
        try:
            yield _CURRENT.get()
        finally:
            _CURRENT.reset(token)
        return
    if isinstance(spec, str):
        address, timeout = spec, CONNECT_TIMEOUT_S
    else:
        address, timeout = spec.scheduler, spec.connect_timeout_s
    if current.client is not None and current.address == address:
        yield current
        return
    client = connect(address, timeout)
    token = _CURRENT.set(Engine(client, address))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)
        _close(client)


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S):
    """A ``distributed.Client`` on the scheduler at ``address``, its workers checked; one-line
    :class:`~gliotype.errors.GliotypeError` when ``distributed`` is missing, the address is not
    one, the scheduler cannot be reached within ``timeout`` seconds or a worker runs another gliotype."""
    try:
        from distributed import Client
    except ImportError:
        raise GliotypeError("the dask engine needs the distributed package: pip install 'distributed>=2024.1' "
                            "(or drop --scheduler / executor.engine: dask to use local processes)") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError):  # refused, unknown host, nothing answering within the timeout
        raise GliotypeError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s: is `dask scheduler` "
                            "running there, and the address and port right?") from None
    except (ValueError, TypeError) as exc:  # not an address
        raise GliotypeError(f"Dask scheduler address {address!r}: {one_line(exc)}") from None
    try:
        _check_workers(client, address)
    except BaseException:
        client.close()
        raise
    return client


def _close(client) -> None:
    """Close ``client``; when its scheduler has gone away, distributed logs the cancelled reconnection
    with a traceback: not this command's error, so not shown."""
    import logging

    quiet = [logging.getLogger(name) for name in ("distributed.client", "distributed.comm")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    try:
        client.close()
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def _gliotype_version() -> str:
    """Run on every worker: the gliotype it imports."""
    from gliotype import __version__

    return __version__


def _check_workers(client, address: str) -> None:
    """The workers connected now import this gliotype; a warning when there is none yet, or when a
    worker runs several threads (the per-patient stages expect one item per process)."""
    from gliotype import __version__

    workers = client.scheduler_info().get("workers", {})
    if not workers:
        log.warning("the Dask scheduler at %s has no worker yet: the tasks wait until one connects", address)
        return
    threaded = {w: d.get("nthreads", 1) for w, d in workers.items() if d.get("nthreads", 1) > 1}
    if threaded:
        worker, n = next(iter(threaded.items()))
        log.warning("%d Dask worker(s) run several threads (%s: %d): start them with `dask worker --nthreads 1 "
                    "--nworkers N` (one patient per process, as the local pool)", len(threaded), worker, n)
    try:
        versions = client.run(_gliotype_version)
    except Exception as exc:
        raise GliotypeError(f"the Dask workers of {address} cannot run gliotype ({type(exc).__name__}: "
                            f"{one_line(exc, 120)}): install gliotype {__version__} on every worker") from None
    for worker, version in versions.items():
        if version != __version__:
            raise GliotypeError(f"Dask worker {worker} runs gliotype {version}, this machine {__version__}: "
                                "install the same version on every worker")


__all__ = ["CONNECT_TIMEOUT_S", "Engine", "connect", "current_engine", "use_executor"]
