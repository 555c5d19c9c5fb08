"""The per-patient stages on a real Dask cluster (``distributed.LocalCluster``, two worker
processes of one thread): the same files as the local process pool, a worker killed in the
middle of a stage costs nothing, the local pool's crash and error semantics, and one-line errors
for an unreachable scheduler or a missing ``distributed``."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import distributed
import pandas as pd
import pytest

from gliotype.config import config_hash, load_config
from gliotype.errors import EnvironmentProblem, GliotypeError
from gliotype.input import validate_manifest
from gliotype.modalities.build import build_modalities
from gliotype.preprocessing import preprocess_cohort
from gliotype.synthetic import SynthConfig, generate_cohort
from gliotype.utils.executor import current_engine, use_executor
from gliotype.utils.parallel import parallel_map

SYNTH = dict(patients=2, seed=3, fa_cases=1)
BRATS = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair", "mask": "seg", "fa": "fa"}


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread; a task may see one worker die under it and is run again
    (``allowed-failures`` 1: a second death fails it with ``KilledWorker``)."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as c:
            yield c


@pytest.fixture()
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def manifest(root: Path) -> pd.DataFrame:
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        pid = folder.name
        row = {"patient_id": pid, "idh": 0, "age": 50.0, "site": "s"}
        for role, suffix in BRATS.items():
            path = folder / f"{pid}_{suffix}.nii.gz"
            row[role] = str(path) if path.exists() else None
        rows.append(row)
    return pd.DataFrame(rows)


def contents(folder: Path) -> dict[str, object]:
    """Every file's bytes (sha256), but what holds measured durations: JSON without its
    ``seconds`` fields, CSV without its ``seconds`` column, no per-patient log."""
    def timeless(value):
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if "seconds" not in k}
        return [timeless(v) for v in value] if isinstance(value, list) else value

    out: dict[str, object] = {}
    for p in sorted(folder.rglob("*")):
        name = str(p.relative_to(folder))
        if not p.is_file() or p.name.endswith((".log", ".lock")):
            continue
        if p.suffix == ".json":
            out[name] = timeless(json.loads(p.read_text()))
        elif p.suffix == ".csv":
            out[name] = pd.read_csv(p).drop(columns="seconds", errors="ignore").to_csv(index=False)
        else:
            out[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny cohort through the local pool (two processes): synthesis, validation,
    preprocessing, modalities."""
    root = tmp_path_factory.mktemp("local")
    generate_cohort(root / "data", SynthConfig(**SYNTH, workers=2))
    rows = manifest(root / "data")
    config = load_config("tiny")
    reports = validate_manifest(rows, workers=2)
    preprocess_cohort(rows, root / "work", config, workers=2)
    build_modalities(root / "work", list(rows["patient_id"]), config, workers=2)
    return root, rows, reports


# --------------------------------------------------------------------------- the same files


def test_stages_on_the_cluster_write_the_local_pools_files(reference, cluster, tmp_path):
    root, rows, reports = reference
    config = load_config("tiny", overrides=["executor.engine=dask", f"executor.scheduler={cluster.scheduler_address}"])
    with use_executor(config.executor) as engine:
        assert engine.name == "dask"
        generate_cohort(tmp_path / "data", SynthConfig(**SYNTH, workers=1))  # workers: the cluster decides
        assert validate_manifest(rows, workers=1) == reports
        status = preprocess_cohort(rows, tmp_path / "work", config, workers=1)
        build_modalities(tmp_path / "work", list(rows["patient_id"]), config, workers=1)
    assert current_engine().name == "local"
    ran = set(cluster.scheduler.task_prefixes)  # the tasks the cluster ran, by stage
    assert {"gliotype-synth", "gliotype-validate", "gliotype-preprocessing", "gliotype-modalities"} <= ran, ran
    assert list(status["status"]) == ["done"] * len(rows)
    assert contents(tmp_path / "data") == contents(root / "data")
    work = contents(tmp_path / "work")
    assert any(k.endswith("point_cloud.npz") for k in work) and any(k.endswith("t1c.nii.gz") for k in work)
    assert work == contents(root / "work")


def test_cli_validate_on_the_cluster(reference, cluster, tmp_path):
    from typer.testing import CliRunner

    from gliotype.cli import app

    root, rows, _ = reference
    rows.to_csv(tmp_path / "manifest.csv", index=False)
    runner = CliRunner()
    local = runner.invoke(app, ["cohort", "validate", str(tmp_path / "manifest.csv"), "--preset", "tiny",
                                "--workers", "2", "--report", str(tmp_path / "local.csv")])
    dask = runner.invoke(app, ["cohort", "validate", str(tmp_path / "manifest.csv"), "--preset", "tiny",
                               "--scheduler", cluster.scheduler_address, "--report", str(tmp_path / "dask.csv")])
    assert local.exit_code == 0 and dask.exit_code == 0, dask.output
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


# --------------------------------------------------------------------------- a worker killed mid-stage


class KillOnce(distributed.WorkerPlugin):
    """Kills its worker process (SIGKILL, as the OOM killer does) ``delay`` seconds after the first
    task whose key starts with ``prefix`` starts on any worker; ``marker`` records that task."""

    name = "gliotype-test-kill-once"

    def __init__(self, marker: str, prefix: str, delay: float):
        self.marker, self.prefix, self.delay = marker, prefix, delay

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or not str(key).startswith(self.prefix):
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{key} {os.getpid()}".encode())
        os.close(fd)
        threading.Timer(self.delay, os.kill, (os.getpid(), signal.SIGKILL)).start()


def test_a_worker_killed_during_synthesis_changes_no_file(reference, client, tmp_path):
    root, _, _ = reference
    marker = tmp_path / "killed"
    pids = set(client.run(os.getpid).values())
    client.register_plugin(KillOnce(str(marker), "gliotype-synth-", 0.2))
    try:
        with use_executor(client):
            generate_cohort(tmp_path / "data", SynthConfig(**SYNTH, workers=2))
    finally:
        client.unregister_worker_plugin(KillOnce.name)
    key, pid = marker.read_text().split()
    assert int(pid) in pids and int(pid) not in set(client.run(os.getpid).values())  # that worker died
    assert contents(tmp_path / "data") == contents(root / "data")


# --------------------------------------------------------------------------- the local pool's semantics


def _die_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)  # the worker process dies, every time
    return x


def test_an_item_that_kills_every_worker_gets_on_crash(cluster, client, monkeypatch):
    # no rescheduling: each worker death fails the tasks it held at once (2 deaths a map, not 4)
    monkeypatch.setattr(cluster.scheduler, "allowed_failures", 0)
    with use_executor(client):
        assert parallel_map(_die_on_three, [1, 2, 3, 4, 5], 2, on_crash=lambda x: -x) == [1, 2, -3, 4, 5]
        with pytest.raises(distributed.KilledWorker):
            parallel_map(_die_on_three, [3, 1], 2)


def _full_disk_on_zero(args) -> int:
    import errno
    import time

    x, started = args
    with open(started, "a") as fh:
        fh.write(f"{x}\n")
    if x == 0:
        raise EnvironmentProblem("no space left on device writing /out/0; free space", code=errno.ENOSPC)
    time.sleep(0.3)
    return x


def test_an_item_that_raises_stops_the_map(client, tmp_path):
    import time

    started = tmp_path / "started"
    with use_executor(client), pytest.raises(EnvironmentProblem, match="^no space left on device writing /out/0"):
        parallel_map(_full_disk_on_zero, [(x, str(started)) for x in range(16)], 2)
    time.sleep(1.0)  # what was already running ends; nothing else starts
    ran = started.read_text().split()
    assert "0" in ran and len(ran) <= 6, ran


def _init_marker() -> None:
    with open("inits", "a") as fh:  # relative: the caller's working folder
        fh.write(f"{os.getpid()}\n")
    os.environ["GLIOTYPE_TEST_INITIALIZED"] = "yes"


def _initialized(x: int) -> tuple[int, str, int]:
    Path(f"item-{x}").write_text("")  # relative too
    return x, os.environ.get("GLIOTYPE_TEST_INITIALIZED", ""), os.getpid()


def test_initializer_once_per_worker_and_the_callers_folder(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with use_executor(client):
        out = parallel_map(_initialized, list(range(8)), 2, initializer=_init_marker)
    assert [x for x, _, _ in out] == list(range(8)) and {flag for _, flag, _ in out} == {"yes"}
    assert all((tmp_path / f"item-{x}").exists() for x in range(8))
    inits = (tmp_path / "inits").read_text().split()
    assert sorted(inits) == sorted(set(inits)) and set(inits) == {str(pid) for _, _, pid in out}
    assert os.getpid() not in {pid for _, _, pid in out}


def _slow(x: int) -> int:
    import time

    time.sleep(0.5)
    return x


def test_the_plain_recipe_and_a_scheduler_that_goes_away(tmp_path):
    """`dask scheduler` and `dask worker` as separate processes (docs/scale-out.md); the scheduler
    killed during a stage ends it in one line."""
    import subprocess
    import time

    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this module too: the tasks' function
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", address.rsplit(":", 1)[1], "--dashboard-address", ":0"], **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
                               "--nthreads", "1"], **quiet)
    try:
        with use_executor(address) as engine:  # waits for the scheduler to come up (connect_timeout_s)
            engine.client.wait_for_workers(2, timeout=30)
            assert parallel_map(_slow, [3, 1, 2], 1) == [3, 1, 2]
            threading.Timer(1.0, scheduler.kill).start()
            t0 = time.perf_counter()
            with pytest.raises(GliotypeError, match=r"^the Dask cluster cancelled task gliotype-patients-\w+-\d+ "
                                                    r"\(did the scheduler stop\?\): rerun the same command"):
                parallel_map(_slow, list(range(40)), 1)
            assert time.perf_counter() - t0 < 15
    finally:
        for p in (worker, scheduler):
            p.terminate()  # the worker closes its worker processes
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# --------------------------------------------------------------------------- config and errors


def test_the_executor_is_in_no_cache_key():
    local = load_config("tiny")
    dask = load_config("tiny", overrides=["executor.engine=dask", "executor.scheduler=tcp://10.0.0.5:8786"])
    assert config_hash(local) == config_hash(dask)
    for sections in (("preprocess",), ("modalities", "preprocess"), ("atlas",)):
        assert config_hash(local, *sections) == config_hash(dask, *sections)
    with pytest.raises(GliotypeError, match="executor: .*needs the scheduler's address"):
        load_config("tiny", overrides=["executor.engine=dask"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from gliotype.cli import app

    address = f"tcp://127.0.0.1:{_free_port()}"
    (tmp_path / "manifest.csv").write_text("patient_id,t1,t1c,t2,flair,mask\n")
    res = CliRunner().invoke(app, ["cohort", "validate", str(tmp_path / "manifest.csv"), "--scheduler", address,
                                   "--set", "executor.connect_timeout_s=1"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines == [f"error: cannot reach the Dask scheduler at {address} within 1 s: is `dask scheduler` "
                     "running there, and the address and port right?"], res.output
    with pytest.raises(GliotypeError, match="^Dask scheduler address 'no-port'"):
        with use_executor("no-port"):
            pass


def test_without_distributed_the_dask_engine_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(GliotypeError, match=r"^the dask engine needs the distributed package: pip install"):
        with use_executor("tcp://127.0.0.1:8786"):
            pass
    assert parallel_map(abs, [-1, -2], 1) == [1, 2]  # the local engine does not need it
