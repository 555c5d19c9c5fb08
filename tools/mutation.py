"""Mutation testing of the modules where a wrong number is silent (``make mutation``).

For each module below, mutmut (https://mutmut.readthedocs.io) makes small changes to the
code (an operator, a constant, an argument) and runs that module's tests against each
change; a mutant the tests do not notice "survives". The score is killed / mutants.
Runs in a scratch copy of the tree (``--rev REV``: of a git commit instead of the
working tree), never touching the checkout; not part of ``make test``.

    python tools/mutation.py                      # every module, this working tree
    python tools/mutation.py --rev 98d5c1a        # the same modules at another commit
    python tools/mutation.py --only losses --out mutation.md
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (files to mutate, the tests that guard them)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "losses": (["src/gliotype/losses/contrastive.py"], ["tests/losses"]),
    "population graph": (["src/gliotype/population_graph/graph.py", "src/gliotype/population_graph/gnn.py",
                          "src/gliotype/population_graph/train.py"], ["tests/population_graph"]),
    "metrics and threshold": (["src/gliotype/evaluation/metrics.py"], ["tests/evaluation/test_metrics.py"]),
    "splits": (["src/gliotype/evaluation/splits.py"], ["tests/evaluation/test_splits.py"]),
    "normalisation": (["src/gliotype/preprocessing/normalize.py"], ["tests/preprocessing/test_normalize.py"]),
    "point cloud": (["src/gliotype/modalities/point_cloud.py"], ["tests/modalities/test_point_cloud.py"]),
}
KILLED = {"killed"}
COUNTED = {"killed", "survived", "timeout", "suspicious", "no tests"}


def copy_tree(rev: str | None, dest: Path) -> None:
    """``src``, ``tests`` and ``pyproject.toml`` of the working tree (or of commit ``rev``) into ``dest``."""
    if rev:
        data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src", "tests",
                               "pyproject.toml"], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
        return
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("src", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def run_module(tree: Path, files: list[str], tests: list[str], children: int) -> dict:
    """mutmut on ``files`` with ``tests`` in a fresh copy of ``tree``; counts per status and the survivors."""
    missing = [p for p in files + tests if not (tree / p).exists()]
    if missing:
        return {"error": f"not in this tree: {', '.join(missing)}"}
    work = Path(tempfile.mkdtemp(prefix="mutmut-", dir=tree))
    for name in ("src", "tests", "pyproject.toml"):
        (shutil.copytree if (tree / name).is_dir() else shutil.copy)(tree / name, work / name)
    def listed(values: list[str]) -> str:  # mutmut reads a list as one value per line
        return "".join(f"\n    {v}" for v in values)

    (work / "setup.cfg").write_text(
        "[mutmut]\nsource_paths = src\n"
        f"only_mutate ={listed(files)}\n"
        f"pytest_add_cli_args_test_selection ={listed(tests)}\n"
        f"pytest_add_cli_args ={listed(['-p', 'no:cacheprovider', '-q', '-x'])}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "GLIOTYPE_PROGRESS": "0"}
    mutmut = [sys.executable, "-m", "mutmut"]
    t0 = time.perf_counter()
    run = subprocess.run(mutmut + ["run", "--max-children", str(children)], cwd=work, env=env,
                         capture_output=True, text=True)
    if run.returncode != 0:
        return {"error": (run.stderr.strip().splitlines() or ["mutmut failed"])[-1][:200]}
    res = subprocess.run(mutmut + ["results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True,
                         check=True)
    status = dict(re.findall(r"^\s*(\S+): (.+?)\s*$", res.stdout, flags=re.M))
    counts = Counter(status.values())
    survivors = []
    for key, st in status.items():
        if st == "survived":
            diff = subprocess.run(mutmut + ["show", key], cwd=work, env=env, capture_output=True, text=True).stdout
            survivors.append((key, [ln for ln in diff.splitlines() if ln[:2] in ("- ", "+ ")]))
    shutil.rmtree(work, ignore_errors=True)
    return {"counts": dict(counts), "survivors": survivors, "seconds": round(time.perf_counter() - t0, 1)}


def score_line(name: str, r: dict) -> str:
    if "error" in r:
        return f"| {name} | - | - | - | {r['error']} |"
    c = r["counts"]
    total = sum(v for k, v in c.items() if k in COUNTED)
    killed = sum(v for k, v in c.items() if k in KILLED)
    other = ", ".join(f"{v} {k}" for k, v in sorted(c.items()) if k not in ("killed", "survived"))
    return f"| {name} | {total} | {killed} | {100 * killed / max(total, 1):.0f}% | {c.get('survived', 0)} survived" \
           f"{'; ' + other if other else ''} |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", help="a git commit to test instead of the working tree")
    ap.add_argument("--only", nargs="*", help=f"module names: {', '.join(MODULES)}")
    ap.add_argument("--children", type=int, default=2, help="parallel mutants")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = ap.parse_args(argv)
    chosen = {k: v for k, v in MODULES.items() if not args.only or any(o in k for o in args.only)}
    tree = Path(tempfile.mkdtemp(prefix="gliotype-mutation-"))
    try:
        copy_tree(args.rev, tree)
        results = {}
        for name, (files, tests) in chosen.items():
            print(f"mutating {name} ...", file=sys.stderr, flush=True)
            results[name] = run_module(tree, files, tests, args.children)
            print(score_line(name, results[name]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    lines = [f"# Mutation scores ({'commit ' + args.rev if args.rev else 'working tree'})", "",
             "| module | mutants | killed | score | not killed |", "|---|---|---|---|---|"]
    lines += [score_line(n, r) for n, r in results.items()]
    lines += ["", "## Surviving mutants", ""]
    for name, r in results.items():
        for key, diff in r.get("survivors", []):
            lines.append(f"- {name}: `{key.split('.')[-1]}`: " + " / ".join(f"`{d}`" for d in diff[:2]))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
