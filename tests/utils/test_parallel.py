"""The one parallel map: order, real worker processes, a crashed worker costs only its item."""

from __future__ import annotations

import os

import pytest

from gliotype.utils.parallel import parallel_map


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _die_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)  # a worker killed from inside (as the OOM killer would)
    return x


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_order_kept_and_runs_in_other_processes(start):
    out = parallel_map(_square_and_pid, list(range(7)), workers=2, start=start)
    assert [v for v, _ in out] == [x * x for x in range(7)]
    assert os.getpid() not in {pid for _, pid in out}


def test_one_worker_runs_here():
    out = parallel_map(_square_and_pid, [2, 3], workers=1)
    assert out == [(4, os.getpid()), (9, os.getpid())]


def test_a_crashing_item_costs_only_its_result():
    out = parallel_map(_die_on_three, [1, 2, 3, 4, 5], workers=2, on_crash=lambda x: -x)
    assert out == [1, 2, -3, 4, 5]


def test_a_crash_without_fallback_is_raised():
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        parallel_map(_die_on_three, [3, 1], workers=2)


def test_unknown_start_method():
    with pytest.raises(ValueError, match="start"):
        parallel_map(_square_and_pid, [1, 2], workers=2, start="forkserver-ish")


def test_items_sharing_a_pool_with_a_crash_are_not_marked_crashed():
    items = [3, *range(10, 22), 3]
    out = parallel_map(_die_on_three, items, workers=2, on_crash=lambda x: -x)
    assert out == [-3, *range(10, 22), -3]


def _full_disk_on_zero(args) -> int:
    """Item 0 meets a full disk at once; every other item takes a while and notes that it started."""
    import errno
    import time

    from gliotype.errors import EnvironmentProblem

    x, started = args
    with open(started, "a") as fh:
        fh.write(f"{x}\n")
    if x == 0:
        raise EnvironmentProblem("no space left on device writing /out/0; free space", code=errno.ENOSPC)
    time.sleep(0.3)
    return x


def test_an_item_that_raises_stops_the_map_without_starting_the_rest(tmp_path):
    """A per-patient stage raises only what every next patient would hit too (a full disk): the
    items not yet started are cancelled, not run to fail the same way."""
    from gliotype.errors import EnvironmentProblem

    started = tmp_path / "started"
    with pytest.raises(EnvironmentProblem, match="^no space left on device writing /out/0"):
        parallel_map(_full_disk_on_zero, [(x, str(started)) for x in range(16)], workers=2)
    ran = started.read_text().split()
    assert "0" in ran and len(ran) <= 6, ran  # the running ones and the few already handed to a worker
