"""The ``gliotype`` command line: argument parsing over the Python API.

Every command parses its arguments, makes one call into the API (:mod:`gliotype.stages`,
:func:`gliotype.experiment.run_experiment`, ...) with explicit paths and prints its summary.
Any error ends in one line on stderr (:class:`OneLineErrors`): exit 2 for a user error, 3 for
an environment error (a full disk, a read-only or forbidden folder, out of memory: the line names
the path and what to do), 1 for a bug, 130 when interrupted; ``--debug`` (passed in the context
object, ``ctx.obj``) shows the traceback instead.

This module holds the root command and the pipeline's commands; :mod:`gliotype.cli.groups`
the ``cohort``, ``config``, ``ssl``, ``atlas`` and ``model`` groups; :mod:`gliotype.cli.options`
what they share.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn, Optional

import typer
from typer.core import TyperGroup

from gliotype import __version__
from gliotype.cli.groups import GROUPS
from gliotype.cli.options import (
    BIDS_DERIVATIVES,
    CONFIG,
    EDGE_ATLAS,
    NO_BIDS_DERIVATIVES,
    NODE_ATLAS,
    PRESET,
    SCHEDULER,
    SET,
    WORKERS,
    _bids_derivatives,
    _config,
    _fail,
)
from gliotype.errors import ENVIRONMENT_EXIT, GliotypeError, environment_problem, one_line
from gliotype.layout import RunDir
from gliotype.utils.logging import setup_logging

USER_ERRORS = (GliotypeError, ValueError, FileNotFoundError)  # one line, exit 2 (environment errors: exit 3)
# raised on purpose (--help, --version, usage errors: ClickException, click's or that of typer's own copy)
CLI_EXITS = (typer.Exit, typer.Abort, next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))


class OneLineErrors(TyperGroup):
    """The root command: an error of any command ends in one line on stderr, exit 2 for a user
    error, 3 for an environment error (:func:`gliotype.errors.environment_problem`) and 1 for a
    bug, unless ``--debug`` (``ctx.obj["debug"]``) lets the traceback through."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except CLI_EXITS:
            raise
        except KeyboardInterrupt:
            _fail("interrupted; rerun the same command to resume", code=130)
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_closed():
                raise  # `gliotype ... | head`: the reader left; click's main exits 1 in silence
            if (ctx.obj or {}).get("debug"):
                if isinstance(exc, EOFError):  # click's main would turn it into a bare "Aborted!"
                    traceback.print_exception(exc, file=sys.stderr)
                    raise typer.Exit(1)
                raise
            env = environment_problem(exc)
            if env is not None:  # the machine, not the input: names the path and what to do
                _fail(str(env), ENVIRONMENT_EXIT)
            text, kind = one_line(exc, limit=sys.maxsize), type(exc).__name__  # the whole first line
            if isinstance(exc, USER_ERRORS):
                _fail(text)  # else a bug, not the user's fault: one line too
            _fail(f"internal error ({kind}{': ' + text if text != kind else ''}); rerun with --debug for details", 1)


def _stdout_closed() -> bool:
    """True when standard output is a pipe whose reader has gone (poll reports an error on its end)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test runner's stream), no poll
        return False


app = typer.Typer(name="gliotype", cls=OneLineErrors, no_args_is_help=True, add_completion=False,
                  help="Predict glioma IDH genotype from multi-sequence MRI (Wei et al., IEEE TMI 2023).",
                  pretty_exceptions_enable=False)
for _name, _group in GROUPS.items():
    app.add_typer(_group, name=_name)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gliotype {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True),
) -> None:
    """gliotype: multi-modal glioma genotype prediction."""
    ctx.obj = {"debug": debug}
    setup_logging(log_level)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the cohort to (BraTS 2021 layout)."),
    patients: int = typer.Option(150, "--patients", help="Number of patients."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same arguments, byte-identical files."),
    prevalence: float = typer.Option(0.26, "--prevalence", help="Fraction of IDH-mutant patients."),
    signal: str = typer.Option("image=1,shape=1,location=1,network=1", "--signal",
                               help="Strength of each IDH signal: image, shape, location, network (0 removes it)."),
    sites: int = typer.Option(3, "--sites", help="Number of acquisition sites (intensity, bias, noise)."),
    fa_cases: int = typer.Option(20, "--fa-cases", help="Patients with an FA map (the self-supervised set)."),
    space: str = typer.Option("mni", "--space", help="mni (template grid) or native (own grid per patient)."),
    resolution: int = typer.Option(2, "--resolution", help="Voxel size in mm on the template grid: 1 or 2."),
    workers: int = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cohort made with other arguments."),
) -> None:
    """Generate a synthetic glioma cohort on the real ICBM152 template (see docs/synthetic.md)."""
    from gliotype.synthetic import SynthConfig, generate_cohort, parse_signal
    from gliotype.utils.executor import use_executor

    config = SynthConfig(patients=patients, seed=seed, prevalence=prevalence, signal=parse_signal(signal), sites=sites,
                         fa_cases=fa_cases, space=space, resolution=resolution, workers=workers)
    with use_executor(scheduler):
        s = generate_cohort(out, config, overwrite=overwrite)
    typer.echo(f"synthetic cohort: {s['patients']} patients ({s['idh_mutant']} IDH-mutant, {s['idh_wildtype']} "
               f"wild-type), {s['fa_cases']} with FA, {s['sites']} sites, in {s['seconds']:.1f} s\n"
               f"Bayes-optimal AUC of this cohort: {s['bayes_auc']:.3f}\nwritten to {out}")


@app.command()
def preprocess(
    manifest: Path = typer.Argument(..., help="Manifest CSV (from `gliotype cohort scan`)."),
    out: Path = typer.Option(..., "--out", help="Work folder."),
    workers: int = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    skull_stripped: Optional[str] = typer.Option(None, "--skull-stripped", help="auto, yes or no."),
    node_atlas: Optional[Path] = NODE_ATLAS,
    edge_atlas: Optional[Path] = EDGE_ATLAS,
    bids_derivatives: Optional[Path] = BIDS_DERIVATIVES,
    no_bids_derivatives: bool = NO_BIDS_DERIVATIVES,
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Register, normalise and build the three modalities of every patient (sections 3.2, 4.2);
    patients scanned from BIDS also get their preprocessed images in a BIDS derivative dataset."""
    from gliotype import stages
    from gliotype.utils.executor import use_executor

    derivatives = _bids_derivatives(bids_derivatives, no_bids_derivatives)
    cfg = _config(preset, config, set_, node_atlas, edge_atlas, skull_stripped, scheduler=scheduler)
    with use_executor(cfg.executor):  # an unreachable scheduler fails here, before any work
        prepared = stages.prepare(manifest, out, cfg, workers, bids_derivatives=derivatives)
    typer.echo(prepared.summary())
    if not prepared.ids:
        _fail("no patient could be preprocessed")


@app.command()
def run(
    out: Path = typer.Option(..., "--out", help="Run folder (results/, model/, work/)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Cohort folder (any layout the scanner knows)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Or a manifest CSV."),
    no_ablations: bool = typer.Option(False, "--no-ablations", help="Skip the Table 4 ablations."),
    ablation: Optional[list[str]] = typer.Option(None, "--ablation",
                                                 help="Only this Table 4 row, e.g. 'fB + MLP' (repeatable)."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Skip the 3D CNN baselines."),
    no_audit: bool = typer.Option(False, "--no-audit", help="Skip the information audit (gliotype audit)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1,
                                          help="Redraw the split K times (seeds split.seed + k); mean and SD."),
    scheduler: Optional[str] = SCHEDULER,
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Run every stage of the method and print Table 3 (cached and resumable)."""
    from gliotype.experiment import run_experiment, run_summary

    from gliotype.utils.executor import use_executor

    rows = False if no_ablations else (list(ablation) if ablation else True)
    cfg = _config(preset, config, set_, scheduler=scheduler)
    with use_executor(cfg.executor):  # an unreachable scheduler fails here, before any work
        res = run_experiment(out, cfg, data=data, manifest=manifest, ablations=rows, baselines=not no_baselines,
                             repeats=repeats, audit=not no_audit)
    typer.echo(run_summary(res, out))


@app.command()
def audit(
    rundir: Path = typer.Argument(..., help="Run folder written by `gliotype run`."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="A synthetic cohort or its truth file: probe latents."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the audit files (default RUNDIR/results)."),
    workers: int = typer.Option(1, "--workers", help="Parallel processes for the tumour descriptors."),
    scheduler: Optional[str] = SCHEDULER,
    folds: int = typer.Option(5, "--folds", min=2, help="Folds of each probe's cross-validation."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repeats of each probe's cross-validation."),
) -> None:
    """Information audit: IDH probe AUC of every feature group on training patients, Table 1 homophily,
    the observable ceiling (docs/audit.md)."""
    from gliotype.audit import audit_run
    from gliotype.utils.executor import use_executor

    with use_executor(scheduler):
        res = audit_run(rundir, truth=truth, out=out, workers=workers, folds=folds, repeats=repeats, report=True)
    typer.echo(res.summary())


@app.command()
def inspect(
    workdir: Path = typer.Argument(..., help="Work folder written by `gliotype preprocess`."),
    patient: str = typer.Argument(..., help="Patient ID."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG (default WORKDIR/patients/ID/inspect.png)."),
) -> None:
    """PNG to check one patient: registration, tumor mask, atlas overlay, point cloud."""
    from gliotype.modalities.inspect import render_inspection

    typer.echo(str(render_inspection(workdir, patient, out)))


@app.command()
def predict(
    model: Path = typer.Option(..., "--model", help="Trained model folder (RUNDIR/model from `gliotype run`)."),
    out: Path = typer.Option(..., "--out", help="Output folder (written only when the prediction succeeds)."),
    t1: Optional[Path] = typer.Option(None, "--t1", help="Pre-contrast T1."),
    t1c: Optional[Path] = typer.Option(None, "--t1c", help="Post-contrast T1."),
    t2: Optional[Path] = typer.Option(None, "--t2", help="T2."),
    flair: Optional[Path] = typer.Option(None, "--flair", help="T2-FLAIR."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Tumor mask (BraTS labels)."),
    case: Optional[Path] = typer.Option(None, "--case", help="Or one patient's folder in any known layout "
                                                             "(DICOM studies; BIDS: a subject or session folder, or "
                                                             "the dataset with --patient-id sub-01)."),
    patient_id: Optional[str] = typer.Option(None, "--patient-id", help="ID in the outputs (default: from the names)."),
    draws: int = typer.Option(100, "--draws", help="Re-predictions for the uncertainty interval (0: none)."),
    no_explain: bool = typer.Option(False, "--no-explain", help="Skip Grad-CAM, GNNExplainer and the figures."),
    allow_missing: Optional[int] = typer.Option(
        None, "--allow-missing", min=0, max=3,
        help="Sequences the patient may lack (default: the model's input.missing_sequences)."),
    require_signature: Optional[Path] = typer.Option(
        None, "--require-signature", metavar="PUBLIC_KEY",
        help="The author's public key (PEM): refuse a model folder not signed with it or changed since."),
    bids_derivatives: Optional[Path] = BIDS_DERIVATIVES,
    no_bids_derivatives: bool = NO_BIDS_DERIVATIVES,
    segmenter: Optional[Path] = typer.Option(
        None, "--segmenter", metavar="PATH",
        help="A tumour-segmentation model folder (MONAI bundle or nnU-Net v2): segments a case given without a "
             "mask; a given mask wins (docs/real-data.md, 'No tumour mask')."),
) -> None:
    """Predict the IDH status of one patient: prediction.json, report.html, Figs. 7-8, Grad-CAM maps."""
    global _QUICK_EXIT
    _QUICK_EXIT = True  # main() ends the process without its teardown (_exit_now)
    import tempfile
    from contextlib import nullcontext

    from gliotype.input.bids import bids_output
    # the light modules only: the patient's preprocessing starts before torch is imported
    from gliotype.prediction.ahead import explainer_ahead, preprocessing_ahead
    from gliotype.input import InputRules
    from gliotype.prediction.inputs import (
        case_folder_row,
        check_inputs,
        prediction_config,
        prediction_row,
        row_inputs,
        row_paths,
    )
    from gliotype.prediction.opened import open_model

    files = {"t1": t1, "t1c": t1c, "t2": t2, "flair": flair, "mask": mask}
    missing = [f"--{k}" for k, v in files.items() if v is None and not (k == "mask" and segmenter is not None)]
    if case is not None and any(v is not None for v in files.values()):
        _fail("give either --case or the five files --t1 --t1c --t2 --flair --mask, not both")
    if case is None and ("--mask" in missing or len(missing) >= 4):  # a missing sequence: the model's rule decides
        _fail(f"missing {', '.join(missing)} (or give --case DIR)")
    files = {k: v for k, v in files.items() if v is not None}
    derivatives = _bids_derivatives(bids_derivatives, no_bids_derivatives)
    if case is None and bids_derivatives is not None:
        _fail("--bids-derivatives needs --case in a BIDS dataset")
    opened = open_model(model, public_key=require_signature)  # a refused model stops before the patient's files
    seg = None
    if segmenter is not None:
        from gliotype.segmentation import load_segmenter

        seg = load_segmenter(segmenter)  # a bad segmenter folder stops before the patient's files too
    optional = ("mask",) if seg is not None else ()
    # a DICOM case is converted into a temporary folder that lives as long as the prediction
    with (case_folder_row(case, patient_id, optional) if case is not None else nullcontext({}) as row,
          tempfile.TemporaryDirectory(prefix="gliotype-predict-") as work):
        pid, inputs = row_inputs(row, optional) if case is not None else (patient_id, files)
        pid = patient_id or pid
        bids = bids_output(row, derivatives)
        if bids is None and bids_derivatives is not None:
            _fail(f"--bids-derivatives: --case {case.name} is not in a BIDS dataset")
        # the patient is preprocessed in a child process while this one loads the networks, and another
        # child loads the network GNNExplainer needs (a segmenter makes the mask first, with torch
        # already imported: then no child, the steps one after the other in the prediction)
        config = prediction_config(opened.config, allow_missing)
        checked = None
        with explainer_ahead(opened) if seg is None and not no_explain else nullcontext() as explainer:
            ahead = prediction_row(pid, inputs) if seg is None else None
            with preprocessing_ahead(ahead, work, config) if ahead is not None else nullcontext():
                if ahead is not None:  # beside the preprocessing, not after it; a bad input stops here
                    checked = check_inputs(row_paths(ahead), ahead["patient_id"], InputRules.of(config))
                from gliotype.prediction import load_model, predict_patient, warm_up

                trained = load_model(opened)
                warm_up()
                if explainer is not None:  # on the core this process leaves idle until the patient is ready
                    explainer.load()
            res = predict_patient(trained, inputs, pid, out, draws=draws, explain=not no_explain, bids=bids,
                                  segmenter=seg, allow_missing=allow_missing, workdir=work, explainer=explainer,
                                  checked=checked)
    (lo, hi), threshold = res.interval, res.record["threshold"]
    without = res.record.get("missing_sequences") or []
    note = f"\npredicted without {', '.join(without)} (see the report)" if without else ""
    typer.echo(f"patient {res.patient_id}: P(IDH mutant) = {res.probability:.3f} (95% subsampling interval "
               f"{lo:.3f}-{hi:.3f}) -> {res.decision} at threshold {threshold:.3f}{note}\nreport: {out / 'report.html'}"
               + (f"\nBIDS derivative: {bids.prediction}" if bids is not None else ""))


@app.command()
def explain(
    rundir: Path = typer.Argument(..., help="Run folder written by `gliotype run`."),
    more: Optional[list[str]] = typer.Argument(None, metavar="[ID]...", help="More patient IDs after --patients."),
    patients: Optional[list[str]] = typer.Option(None, "--patients", help="Patient IDs: --patients A B C."),
    all_: bool = typer.Option(False, "--all", help="Every patient of the run."),
    epochs: int = typer.Option(200, "--epochs", help="GNNExplainer epochs."),
    seed: int = typer.Option(0, "--seed", help="GNNExplainer seed."),
) -> None:
    """Figs. 7-8 and Grad-CAM maps per patient, density of important edges by IDH group (RUNDIR/explain/)."""
    from gliotype.prediction import explain_run

    ids = [i for item in [*(patients or []), *(more or [])] for i in item.split(",") if i.strip()]
    if more and not patients:
        _fail(f"unexpected argument {more[0]}: give patient IDs after --patients")
    if all_ == bool(ids):
        _fail("give --patients ID [ID ...] or --all")
    res = explain_run(rundir, None if all_ else [i.strip() for i in ids], epochs=epochs, seed=seed)
    lines = [f"explained {res['patients']} patients: {RunDir(rundir).explain.root}"]
    lines += [f"  {g['group']}: {g['n']} patients, mean density of important edges {g['mean_density']:.3f}"
              for g in res.get("groups", []) if g["n"]]
    if res.get("p_value") is not None:
        lines.append(f"  Mann-Whitney U = {res['mann_whitney_u']:.1f}, two-sided p = {res['p_value']:.3g}")
    typer.echo("\n".join(lines))


# set by a command whose process holds nothing left to tear down once it has answered (`predict`)
_QUICK_EXIT = False


def main() -> None:
    """The console entry (``gliotype``, ``python -m gliotype``): the app, then the exit.

    After ``gliotype predict`` the process leaves through :func:`_exit_now`: the interpreter's
    own teardown of torch, PyG, MONAI, matplotlib and scikit-learn costs 1-4 s on 2 cores
    (docs/prediction.md, "Speed") and holds nothing the prediction needs.
    """
    try:
        app(prog_name="gliotype")
    except SystemExit as done:
        if not _QUICK_EXIT:
            raise
        _exit_now(done.code)


def _exit_now(code) -> NoReturn:
    """End the process with ``code`` (that of :class:`SystemExit`) without tearing down its modules:
    the ``atexit`` handlers run, the log handlers and standard streams are flushed, then ``os._exit``.
    Only for a process whose files are all written and closed (every output is an atomic rename)."""
    import atexit
    import logging

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, exit 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
