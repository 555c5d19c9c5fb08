"""Small helpers of the prediction package."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np


def jsonable(value):
    """``value`` with numpy scalars and arrays as Python types and NaN / inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (restored after).

    Many tiny operations (GNNExplainer's 200 steps on one brain network, the GNN on a
    population graph) run far faster on one thread: with two, every small matrix product
    pays the thread hand-over, which is 10-100 times the product itself on a busy machine.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
