"""Run every ``benchmarks/bench_*.py`` with its defaults and write ``benchmarks/results.md`` (``make bench``).

    python benchmarks/run_all.py [--out benchmarks/results.md] [--only predict population_graph]

Each benchmark's output goes into the file as it printed it, with its wall time and exit
code, under a header naming the date, the machine (CPU model, cores, memory, load before the
run, and the speed of one of its cores, :func:`core_speed`), the Python, torch and gliotype
versions and the git commit, so a regression shows as a changed figure in
``git diff benchmarks/results.md``. Two machines of one CPU name can differ by 2x (the same
"AMD EPYC, 2 cores" ran ``make demo`` in 684 s and 1,290 s on the same commit, docs/results.md):
compare figures across machines through the core speed. The file is rewritten after every
benchmark (a run stopped half way keeps what it measured). Benchmarks check the speed and
memory goals of the issues; they are not tests and do not run in CI.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


#: One core's float32 speed, in a fresh process on one torch thread: a 2048^2 matrix product and f_I's
#: first convolution (the ``cpu`` preset's 8 -> 16 channels, 3^3, batch 10 on the 40^3 crop,
#: channels-last), the operations most of a demo's computation is made of. Best of 5.
_SPEED_PROBE = """
import time, torch
torch.set_num_threads(1)
def best(f):
    f(); out = []
    for _ in range(5):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
    return min(out)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
gemm = 2 * 2048 ** 3 / best(lambda: a @ b) / 1e9
conv = torch.nn.Conv3d(8, 16, 3, padding=1).to(memory_format=torch.channels_last_3d)
x = torch.randn(10, 8, 40, 40, 40).to(memory_format=torch.channels_last_3d)
with torch.no_grad():
    c = 10 * 40 ** 3 * 16 * 8 * 27 * 2 / best(lambda: conv(x)) / 1e9
print(f"{gemm:.0f} {c:.0f}")
"""


def core_speed() -> str:
    """What one core computes (the probe above) and its widest vector instructions (/proc/cpuinfo),
    e.g. ``76 GFLOP/s matrix product, 89 GFLOP/s convolution; widest vectors AVX2``."""
    out = subprocess.run([sys.executable, "-c", _SPEED_PROBE], capture_output=True, text=True).stdout.split()
    flags = ""
    try:
        flags = next((x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")), "")
    except OSError:
        pass
    vector = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "unknown"
    speed = (f"{out[0]} GFLOP/s matrix product, {out[1]} GFLOP/s convolution" if len(out) == 2
             else "not measured")
    return f"{speed}; widest vectors {vector}"


def machine() -> list[str]:
    """What the figures depend on: date, CPU, cores, memory, load, versions, commit."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024**2:.0f} GB"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    versions = subprocess.run([sys.executable, "-c", "import torch, gliotype; print(torch.__version__, "
                               "gliotype.__version__)"], capture_output=True, text=True).stdout.split()
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return [f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            f"- machine: {cpu}, {os.cpu_count()} cores, {mem} memory; load average before the run (1/5/15 min): "
            f"{load}",
            f"- one core (float32, one torch thread, best of 5): {core_speed()}",
            f"- Python {platform.python_version()}, torch {versions[0] if versions else '?'}, gliotype "
            f"{versions[1] if len(versions) > 1 else '?'}, commit {commit}"]


def write(out: Path, header: list[str], sections: list[str]) -> None:
    text = "\n".join(["# Benchmarks (`make bench`)", "",
                      "Written by `benchmarks/run_all.py`; every figure below is the output of the script named.",
                      "", *header, "", *sections])
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text.rstrip() + "\n")
    tmp.replace(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--only", nargs="*", help="benchmark names without bench_ (default: all)")
    args = ap.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    header, sections, failed = machine(), [], []
    env = {**os.environ, "GLIOTYPE_PROGRESS": "0"}
    for script in scripts:
        print(f"== {script.name}", flush=True)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        print(res.stdout, end="", flush=True)
        if res.returncode:
            failed.append(script.name)
            print(res.stderr[-2000:], end="", file=sys.stderr)
        sections += [f"## {script.stem}", "", f"{seconds:.1f} s, exit {res.returncode}", "", "```",
                     (res.stdout.rstrip() or "(no output)"), "```", ""]
        write(args.out, header, sections)
        print(f"   ({seconds:.1f} s, exit {res.returncode})", flush=True)
    print(f"written to {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
