"""Run every ``benchmarks/bench_*.py`` with its defaults and write ``benchmarks/results.md`` (``make bench``).

    python benchmarks/run_all.py [--out benchmarks/results.md] [--only predict population_graph]

Each benchmark's output goes into the file as it printed it, with its wall time and exit
code, under a header naming the date, the machine (CPU model, cores, memory, load before the
run), the Python, torch and gliotype versions and the git commit, so a regression shows as a
changed figure in ``git diff benchmarks/results.md``. The file is rewritten after every
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
