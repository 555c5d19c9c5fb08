"""Root conftest: puts ``tests/`` on ``sys.path`` so test modules can import shared helpers
(``real_data``), and keeps parallel test workers from oversubscribing the CPU."""

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers x two torch threads each on two cores: OpenMP spin-waits make that far slower
    torch.set_num_threads(1)
