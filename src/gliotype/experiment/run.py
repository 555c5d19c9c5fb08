"""``gliotype run``: every stage of the method, cached and resumable (paper sections 3-5).

Stages (each a :mod:`gliotype.stages` function): cohort (scan, validate) -> preprocessing
-> modalities, once; then for each draw of the split protocol (section 4.1,
:func:`gliotype.experiment.split.run_split`): splits -> self-supervised brain networks ->
multi-modal encoders on half A (+ the Table 4 ablations) -> population graphs on half B +
test (Table 2) -> baselines (Table 3) -> evaluation and report. Each stage reuses finished
outputs; rerunning the same command after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from gliotype import stages
from gliotype.config import GliotypeConfig, save_config
from gliotype.experiment.ablations import table4_rows
from gliotype.experiment.ceilings import ceiling_lines
from gliotype.experiment.repeats import repeats_markdown, summarise_repeats, write_repeats
from gliotype.experiment.split import run_split
from gliotype.experiment.tables import TABLE_COLUMNS, to_markdown
from gliotype.experiment.timing import Timer
from gliotype.layout import RunDir
from gliotype.utils.io import atomic_write
from gliotype.utils.logging import get_logger

log = get_logger(__name__)


def run_experiment(
    out: str | Path | RunDir,
    config: GliotypeConfig,
    data: str | Path | None = None,
    manifest: str | Path | None = None,
    ablations: bool | list[str] = True,
    baselines: bool = True,
    repeats: int | None = None,
    audit: bool = True,
) -> dict:
    """Run the whole method and write ``results/`` and ``model/`` under ``out``; returns the tables.

    ``ablations``: every Table 4 row (True), none but the full model (False), or the named
    rows (and the full model). With ``repeats`` K > 1 (default ``split.repeats``) the
    split protocol is redrawn with seeds ``split.seed + k``; repeat 0 writes ``out/results``, the others
    ``out/repeats/split-seed-S/results``, and ``out/results/repeats_table{2,3,4}.csv``
    give each model's mean and standard deviation over the repeats. Preprocessing,
    modalities and the self-supervised models are shared (the FA set does not change).
    """
    from gliotype.utils.executor import use_executor
    from gliotype.utils.lock import folder_lock
    from gliotype.utils.training import torch_threads

    run = RunDir.of(out)
    table4_rows(ablations)  # an unknown row name fails before any work
    # a second `gliotype run` on this folder is refused; the per-patient stages run on config.executor
    with folder_lock(run.lock, "run folder"), torch_threads(config.threads), use_executor(config.executor):
        return _run_experiment(run, config, data, manifest, ablations, baselines, repeats, audit)


def _run_experiment(run: RunDir, config: GliotypeConfig, data, manifest, ablations, baselines, repeats,
                    audit) -> dict:
    from gliotype.input import has_fa
    from gliotype.synthetic.truth import read_truth

    run.root.mkdir(parents=True, exist_ok=True)
    work = run.work
    save_config(config, run.config)
    timer = Timer()
    workers = config.workers
    repeats = int(repeats or config.split.repeats)
    data = Path(data) if data else None

    with timer("cohort"):
        rows = stages.cohort(data, Path(manifest) if manifest else None, run, workers, config)
    ok = stages.prepare(rows, work, config, workers, timer=timer).ids
    cohort = rows[rows["patient_id"].astype(str).isin(ok)].copy()
    cohort["patient_id"] = cohort["patient_id"].astype(str)
    cohort["has_fa"] = has_fa(cohort)
    truth = read_truth(data)  # a synthetic cohort's answer key (None for a real cohort)

    runs = []
    for k in range(repeats):
        cfg = config.model_copy(deep=True)
        cfg.split.seed = config.split.seed + k
        run_out = run if k == 0 else run.repeat(cfg.split.seed)
        if repeats > 1:
            log.info("repeat %d of %d (split seed %d)", k + 1, repeats, cfg.split.seed)
        runs.append(run_split(run_out, work, cohort, ok, cfg, truth, ablations, baselines, timer, export=k == 0,
                              audit=audit))
    result = runs[0]
    if repeats > 1:
        result["repeats"], result["summary"]["repeats"] = write_repeats(
            run, runs, [config.split.seed + k for k in range(repeats)])
    result["summary"]["seconds"] = timer.seconds
    atomic_write(run.results.summary, json.dumps(result["summary"], indent=2, default=float))
    return result


def run_summary(result: dict, out: str | Path | RunDir) -> str:
    """What ``gliotype run`` prints: Table 3 (and its mean +- SD over repeats), the ceilings, the report."""
    parts = ["\nTable 3. Comparison with baselines (test set)\n", to_markdown(result["tables"]["table3"])]
    if "repeats" in result:
        parts += ["\nTable 3 over repeated splits\n", repeats_markdown(result["repeats"]["table3"])]
    parts += ["\n" + ceiling_lines(result["summary"]), f"\nreport: {RunDir.of(out).results.report}"]
    return "\n".join(parts)


__all__ = ["TABLE_COLUMNS", "run_experiment", "run_summary", "summarise_repeats", "table4_rows", "to_markdown"]
