"""Start the processes of a data-parallel training with torchrun's engine (``elastic_launch``).

:func:`launch` runs ``entry(*args)`` in ``train.processes`` processes on this node (and
``train.processes`` on each of ``train.nodes - 1`` other nodes that run :func:`join`), joined in
one ``torch.distributed`` group (gloo on the CPU, nccl on GPUs), and returns what the leader's
``entry`` returned. The job (the network, its dataset, the batch loss) is one pickle of the caller's objects:
this node's processes get it by spawn, those of another node from the leader
(``broadcast_object_list``; a cluster you trust). A plain pickle, not torch's shared-memory
tensors: each process trains its own copy, and a container's small or sealed ``/dev/shm``
does not matter. The caller's process only waits: one process holds the CPU or GPU per rank.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from gliotype.errors import GliotypeError
from gliotype.utils import distributed
from gliotype.utils.devices import resolve_device
from gliotype.utils.logging import get_logger

log = get_logger(__name__)
RUN_ID = "gliotype-train"


def spans_processes(train) -> bool:
    """Whether ``train`` trains in more than one process (and this process is not one of them)."""
    return train is not None and train.processes * train.nodes > 1 and distributed.worker() is None


def free_port() -> int:
    """A TCP port free on this host now (the rendezvous binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch_config(train, endpoint: str, join_timeout_s: float = 600.0):
    """torchrun's settings: ``train.nodes`` nodes (no elasticity: min = max) of ``train.processes``
    processes, the c10d rendezvous at ``endpoint``, no restart (a failed training raises; the
    next run resumes from the checkpoint)."""
    from torch.distributed.launcher.api import LaunchConfig

    return LaunchConfig(min_nodes=train.nodes, max_nodes=train.nodes, nproc_per_node=train.processes,
                        rdzv_backend="c10d", rdzv_endpoint=endpoint, run_id=RUN_ID, max_restarts=0,
                        monitor_interval=0.1, start_method="spawn",
                        rdzv_configs={"join_timeout": max(1, int(join_timeout_s))})


class _Failed:
    """A :class:`GliotypeError` raised in a training process (the same in all of them: the loss is global)."""

    def __init__(self, message: str):
        self.message = message


def launch(entry: Callable, args: tuple, train, desc: str):
    """``entry(*args)`` in the processes of ``train``; the leader's return value.

    ``entry`` must be a module-level function and ``args`` picklable (spawn)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    if train.nodes > 1 and not train.endpoint:
        raise GliotypeError("train.nodes > 1 needs train.endpoint: host:port of this node, reachable from the others")
    endpoint = train.endpoint or f"127.0.0.1:{free_port()}"
    threads = max(1, torch.get_num_threads() // train.processes)
    log.info("%s: %d process(es) on %d node(s), rendezvous %s", desc, train.processes, train.nodes, endpoint)
    quiet = logging.getLogger("torch.distributed.elastic")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        job = pickle.dumps((entry, args), protocol=pickle.HIGHEST_PROTOCOL)
        results = elastic_launch(_launch_config(train, endpoint), _worker)(job, train, threads)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = failure.message if isinstance(failure.message, str) else str(failure.message)
        raise GliotypeError(f"{desc}: training process {rank} failed: "
                            f"{message.strip().splitlines()[-1] if message.strip() else 'no message'}") from None
    finally:
        quiet.setLevel(level)
    result = next((pickle.loads(r) for r in results.values() if r is not None), None)
    if isinstance(result, _Failed):
        raise GliotypeError(result.message)
    return result


def _worker(job: bytes | None, train, threads: int) -> bytes | None:
    """One training process: join the group, get the job, run it; the leader returns its result
    (pickled: the parent unpickles it, no shared memory)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_run)(job, train, threads)


def _run(job, train, threads):
    device = resolve_device(train)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(threads)
    backend = train.backend if train.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        holders = [None] * world
        dist.all_gather_object(holders, job is not None)
        leader = holders.index(True)  # the lowest rank on the node that started the training
        if not all(holders):
            box = [job]
            dist.broadcast_object_list(box, src=leader)
            job = box[0]
        entry, args = pickle.loads(job)
        if rank != leader:
            os.environ["GLIOTYPE_PROGRESS"] = "0"
        distributed.set_worker(distributed.Worker(rank, world, leader))
        try:
            result = entry(*args)
        except GliotypeError as exc:
            result = _Failed(str(exc))
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL) if rank == leader else None
    finally:
        distributed.set_worker(None)
        dist.destroy_process_group()


def join(train, wait_s: float = 3600.0) -> int:
    """Run on every other node of ``train.nodes``: join each training the driver node starts
    (same ``train.endpoint``), until none starts within ``wait_s`` seconds. Returns how many it joined."""
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import elastic_launch

    if train.nodes < 2 or not train.endpoint:
        raise GliotypeError("gliotype train join needs train.nodes >= 2 and train.endpoint (the driver's host:port)")
    joined, since = 0, time.monotonic()
    threads = max(1, torch.get_num_threads() // train.processes)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)  # each wait ends in a warning
    while (left := wait_s - (time.monotonic() - since)) > 0:
        try:
            elastic_launch(_launch_config(train, train.endpoint, min(left, 600.0)), _worker)(None, train, threads)
        except (RendezvousError, ConnectionError, RuntimeError) as exc:  # none yet, or the last one closing
            log.debug("no training to join yet (%s)", type(exc).__name__)
            time.sleep(2.0)
            continue
        joined, since = joined + 1, time.monotonic()
        log.info("joined training %d", joined)
    return joined


__all__ = ["free_port", "join", "launch", "spans_processes"]
