"""Independent networks of one split trained side by side, one process each.

A split trains networks that do not depend on each other: the self-supervised models and, beside
them, the 3D CNN baselines (they need x_I only); then the full model of each cross-fitting fold
and the Table 4 ablations (Table 4 rows of fold A). Every training is
a cached stage, so :func:`train_networks` only has to run them first, ``workers`` at a time, each
in a spawned process with ``threads`` torch threads; the split then runs as before and finds
every network trained (its cache is reused). With the same ``threads`` everywhere, a network
trained here has the same bytes as one trained in the split's own process: ``workers`` changes
where a network trains, never what it is. On 2 idle cores the two folds' multi-modal networks
took 96 s side by side against 123 s one after the other on two threads each, the CNN
baselines 114 s against 131 s (docs/results.md).

A network whose process dies (out of memory) is left to the split, which trains it again in its
own process and reports any error there; an error a training raises stops the run as it would
have without this step, but a diverged loss: the network records it (``diverged.json``) and the
split meets it there, so a diverged Table 4 ablation leaves its row empty instead of stopping the
run (a diverged full model still stops it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from gliotype.config import GliotypeConfig
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map

log = get_logger(__name__)


def train_networks(trainings: Sequence[Callable[[], object]], config: GliotypeConfig, desc: str) -> None:
    """Run ``trainings`` (picklable callables, e.g. ``functools.partial`` of a stage) ``config.workers``
    at a time in spawned processes of ``config.threads`` torch threads; nothing with one worker or
    one training (the caller trains them in order), nor when each training is data-parallel
    (``train.processes`` x ``nodes`` > 1: it has every GPU or core to itself)."""
    trainings = list(trainings)
    workers = min(int(config.workers or 1), len(trainings))
    if workers <= 1 or config.train.processes * config.train.nodes > 1:
        return
    log.info("%s: %d networks, %d at a time", desc, len(trainings), workers)
    parallel_map(_train, trainings, workers, desc=desc, unit="network", start="spawn",
                 initializer=functools.partial(start_worker, config.threads), on_crash=_left_to_the_split)


def start_worker(threads: int) -> None:
    """A training process: log lines as in the parent, ``threads`` torch threads."""
    import torch

    from gliotype.utils.logging import setup_logging

    setup_logging()
    torch.set_num_threads(int(threads))


def _train(training: Callable[[], object]) -> None:
    from gliotype.utils.training import TrainingDiverged

    try:
        training()  # the network is cached on disk; nothing is sent back
    except TrainingDiverged:  # recorded beside the network: the split decides what it stops
        pass


def _left_to_the_split(training) -> None:
    log.warning("a training process died; the network is trained again in the run's own process")


__all__ = ["start_worker", "train_networks"]
