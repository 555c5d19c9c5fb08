"""Data-parallel training: which part of every batch a process trains on, and the collectives
that make the processes together take the step one process takes on the whole batch.

Every process draws the same global batches as one process would (the same sampler, the same
generator reseeded every epoch) and keeps a contiguous slice of each (:func:`shard_of`, sizes
within one of each other; a batch with fewer items than processes is trained whole by every
process). Its network runs on its slice; a batch loss gathers the outputs of all slices
(:func:`gather`, in batch order, with gradients) and computes the loss of the *global* batch,
the same number in every process. That makes the contrastive losses (eq. 1, eqs. 4-7), whose
denominators run over the batch, the global ones, not a mean of per-slice ones. A gathered loss
sends every process ``world`` times its slice's share of the gradient (the gather's backward
sums the identical losses of all processes); :func:`average_gradients` divides the sum over
processes by ``world``: the gradient of one process on the whole batch, within float rounding.

Batch norm normalises with the statistics of the whole batch (:class:`GatheredBatchNorm`, which
also runs on the CPU, where torch's ``SyncBatchNorm`` does not). Random draws of a batch (the
rotations, sequence dropout) are drawn for the global batch and sliced (:func:`current_shard`),
and a dataset with a per-item random stream advances it for the items of other processes
(``skip``), so the draws are those of one process.

Not ``DistributedDataParallel``: its gradient hooks need every forward to go through the
wrapper and every parameter to get a gradient in every step (the BCE head of a batch without a
label gets none); the explicit average here is the same arithmetic in one all-reduce per step,
without DDP's overlap of communication and backward (33 MB of gradients a step for the
paper-size multi-modal network, 254 MB for the 3D ResNet34: docs/scale-out.md weighs them
against the compute).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from gliotype.errors import GliotypeError


@dataclass(frozen=True)
class Shard:
    """This process's part of a global batch of ``total`` items: positions ``start:stop``;
    ``sizes`` (every process's count) is None when each process trains the whole batch."""

    start: int
    stop: int
    total: int
    sizes: tuple[int, ...] | None

    @property
    def within(self) -> tuple[int, int, int]:
        """``(start, stop, total)``: draw ``total`` random values, keep ``start:stop``."""
        return self.start, self.stop, self.total


@dataclass(frozen=True)
class Worker:
    """The process group of a data-parallel training, as one of its processes sees it."""

    rank: int
    world: int
    leader: int  # the process that writes files and hands the result back

    @property
    def is_leader(self) -> bool:
        return self.rank == self.leader


_WORKER: Worker | None = None
_SHARD: Shard | None = None


def worker() -> Worker | None:
    """The data-parallel group this process trains in (None: a single process)."""
    return _WORKER


def set_worker(value: Worker | None) -> None:
    global _WORKER
    _WORKER = value


def current_shard() -> Shard | None:
    """The shard of the step being trained (None outside a data-parallel step)."""
    return _SHARD


def within() -> tuple[int, int, int] | None:
    """``(start, stop, total)`` of the current step, for random draws made per global batch."""
    return _SHARD.within if _SHARD is not None else None


@contextlib.contextmanager
def step(shard: Shard | None):
    """Run a training step on ``shard`` (None: an ordinary step)."""
    global _SHARD
    before, _SHARD = _SHARD, shard
    try:
        yield
    finally:
        _SHARD = before


def shard_of(total: int, rank: int, world: int) -> Shard:
    """Contiguous near-equal slices of ``total`` items, the first ``total % world`` one longer;
    fewer items than processes: every process takes them all."""
    if total < world:
        return Shard(0, total, total, None)
    base, extra = divmod(total, world)
    sizes = tuple(base + (r < extra) for r in range(world))
    start = sum(sizes[:rank])
    return Shard(start, start + sizes[rank], total, sizes)


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: tuple[int, ...], rank: int) -> torch.Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        longest = max(sizes)
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # the sum over processes of the gradient of every slice
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """The rows of every process's slice of the batch, in batch order, with gradients; the
    tensor itself outside a data-parallel step (or when every process has the whole batch).
    ``tensor``'s first dimension is this process's items."""
    shard = _SHARD
    if tensor is None or shard is None or shard.sizes is None:
        return tensor
    if len(tensor) != shard.stop - shard.start:
        raise GliotypeError(f"gather: {len(tensor)} rows for a slice of {shard.stop - shard.start} items")
    return _Gather.apply(tensor, shard.sizes, _WORKER.rank)


class _AllReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def average_gradients(params) -> None:
    """Every parameter's gradient replaced by the mean over processes (one all-reduce); a
    parameter without a gradient in some process counts zero there, and stays without one only
    when no process gave it one (as a single process would leave it)."""
    group = _WORKER
    params = [p for p in params if p.requires_grad]
    if group is None or group.world == 1 or not params:
        return
    device = params[0].device
    parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=device) for p in params]
    flags = torch.tensor([float(p.grad is not None) for p in params], device=device)
    flat = torch.cat([*[x.to(torch.float32) for x in parts], flags])
    dist.all_reduce(flat)
    counts = flat[-len(params):]
    offset = 0
    for p, present in zip(params, counts.tolist()):
        n = p.numel()
        if present:
            p.grad = (flat[offset : offset + n] / group.world).view_as(p).to(p.dtype)
        offset += n


def broadcast_float(value: float | None) -> float:
    """The leader's ``value`` in every process."""
    group = _WORKER
    if group is None or group.world == 1:
        return float(value)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([float("nan") if value is None else float(value)], dtype=torch.float64, device=device)
    dist.broadcast(t, src=group.leader)
    return float(t.item())


def barrier() -> None:
    if _WORKER is not None and _WORKER.world > 1:
        dist.barrier()


class GatheredBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the whole global batch in a data-parallel step (sums all-reduced, with
    gradients), plain batch norm otherwise. Same parameters and buffers as ``nn.BatchNorm*d``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shard = _SHARD
        if not self.training or shard is None or shard.sizes is None:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        dist.all_reduce(count)
        n = float(count.item())
        xf = x.float()  # statistics in float32 under autocast too, as torch's batch norm keeps them
        mean = _AllReduce.apply(xf.sum(dims)) / n
        centred = xf - mean.view(shape)
        var = _AllReduce.apply((centred * centred).sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(var.detach() * n / max(n - 1, 1), alpha=momentum)
        return y.to(x.dtype)


def gather_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm1d/2d/3d`` replaced by a :class:`GatheredBatchNorm` that
    holds the same parameter and buffer objects (an optimiser built on them still applies)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GatheredBatchNorm):
            new = GatheredBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new._parameters, new._buffers = child._parameters, child._buffers
            new.training = child.training
            setattr(module, name, new)
        else:
            gather_batchnorm(child)
    return module


class _RankBatches(Sampler):
    """The global batches of ``batches``, each as ``(index, own, shard)`` triples of this process."""

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for batch in self.batches:
            batch = list(batch)
            shard = shard_of(len(batch), self.rank, self.world)
            yield [(i, shard.start <= k < shard.stop, shard) for k, i in enumerate(batch)]

    def __len__(self) -> int:
        return len(self.batches)


class _OwnItems(Dataset):
    """Loads this process's items; another process's item only advances the dataset's per-item
    random stream (its ``skip(index)``, e.g. :class:`~gliotype.multimodal.augment.SequenceDropout`)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, own, shard = key
        if own:
            return self.dataset[index], shard
        skip = getattr(self.dataset, "skip", None)
        if skip is not None:
            skip(index)
        return None, shard


class _ShardCollate:
    """``collate`` of this process's items, with the step's :class:`Shard`."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, pairs):
        return self.collate([item for item, _ in pairs if item is not None]), pairs[0][1]


def shard_loader(loader: DataLoader, group: Worker) -> DataLoader:
    """A loader over this process's slices of ``loader``'s batches, yielding ``(batch, shard)``.

    It keeps ``loader``'s batch sampler and generator (``fit`` reseeds them every epoch), so the
    global batches and their order are those of one process."""
    if not isinstance(loader, DataLoader) or loader.batch_sampler is None:
        raise GliotypeError("data-parallel training needs a torch DataLoader with batches (train.processes > 1)")
    return DataLoader(_OwnItems(loader.dataset), batch_sampler=_RankBatches(loader.batch_sampler, group.rank, group.world),
                      collate_fn=_ShardCollate(loader.collate_fn), generator=loader.generator,
                      num_workers=loader.num_workers)


__all__ = ["GatheredBatchNorm", "Shard", "Worker", "average_gradients", "barrier", "broadcast_float", "current_shard",
           "gather", "gather_batchnorm", "set_worker", "shard_loader", "shard_of", "step", "within", "worker"]
