"""The ``gliotype`` command line: a thin layer over the Python API.

Every command parses its arguments, calls one API function with explicit paths and
prints a short summary. User errors end in one line on stderr (exit code 2), never a
traceback; ``--debug`` shows the traceback for bug reports.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer

from gliotype import __version__
from gliotype.errors import GliotypeError
from gliotype.layout import RunDir
from gliotype.utils.logging import get_logger, setup_logging

app = typer.Typer(
    name="gliotype",
    help="Predict glioma IDH genotype from multi-sequence MRI (Wei et al., IEEE TMI 2023).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cohort_app = typer.Typer(help="Find and check the patients of a cohort.", no_args_is_help=True)
config_app = typer.Typer(help="Show the resolved configuration of a preset.", no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")
app.add_typer(config_app, name="config")

log = get_logger("cli")
_STATE = {"debug": False}


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func):
    """Turn user-facing errors into one line on stderr (exit 2)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except (GliotypeError, ValueError, FileNotFoundError, PermissionError) as exc:
            if _STATE["debug"]:
                raise
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except KeyboardInterrupt:
            _fail("interrupted; rerun the same command to resume", code=130)
        except Exception as exc:  # a bug, not the user's fault: still one line unless --debug
            if _STATE["debug"]:
                raise
            text = str(exc).splitlines()[0] if str(exc) else ""
            _fail(f"internal error ({type(exc).__name__}: {text}); rerun with --debug for details", code=1)

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gliotype {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True),
) -> None:
    """gliotype: multi-modal glioma genotype prediction."""
    _STATE["debug"] = debug
    setup_logging(log_level)


# --------------------------------------------------------------------------- synth
@app.command()
@user_errors
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the cohort to (BraTS 2021 layout)."),
    patients: int = typer.Option(150, "--patients", help="Number of patients."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same arguments, byte-identical files."),
    prevalence: float = typer.Option(0.26, "--prevalence", help="Fraction of IDH-mutant patients."),
    signal: str = typer.Option(
        "image=1,shape=1,location=1,network=1",
        "--signal",
        help="Strength of each IDH signal: image, shape, location, network (0 removes it).",
    ),
    sites: int = typer.Option(3, "--sites", help="Number of acquisition sites (intensity, bias, noise)."),
    fa_cases: int = typer.Option(20, "--fa-cases", help="Patients with an FA map (the self-supervised set)."),
    space: str = typer.Option("mni", "--space", help="mni (template grid) or native (own grid per patient)."),
    resolution: int = typer.Option(2, "--resolution", help="Voxel size in mm on the template grid: 1 or 2."),
    workers: int = typer.Option(2, "--workers", help="Parallel processes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cohort made with other arguments."),
) -> None:
    """Generate a synthetic glioma cohort on the real ICBM152 template (see docs/synthetic.md)."""
    from gliotype.synthetic import SynthConfig, generate_cohort, parse_signal

    config = SynthConfig(
        patients=patients,
        seed=seed,
        prevalence=prevalence,
        signal=parse_signal(signal),
        sites=sites,
        fa_cases=fa_cases,
        space=space,
        resolution=resolution,
        workers=workers,
    )
    summary = generate_cohort(out, config, overwrite=overwrite)
    typer.echo(
        f"synthetic cohort: {summary['patients']} patients "
        f"({summary['idh_mutant']} IDH-mutant, {summary['idh_wildtype']} wild-type), "
        f"{summary['fa_cases']} with FA, {summary['sites']} sites, in {summary['seconds']:.1f} s"
    )
    typer.echo(f"Bayes-optimal AUC of this cohort: {summary['bayes_auc']:.3f}")
    typer.echo(f"written to {out}")


# --------------------------------------------------------------------------- cohort
@cohort_app.command("scan")
@user_errors
def cohort_scan(
    root: Path = typer.Argument(..., help="Folder holding one sub-folder per patient (or images)."),
    out: Path = typer.Option(..., "--out", help="Manifest CSV to write."),
    layout: str = typer.Option("auto", "--layout", help="auto, brats2021, brats2023, ucsf-pdgm or csv."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV of IDH labels (flexible columns)."),
) -> None:
    """Find every patient's T1, T1c, T2, FLAIR, mask (and FA) and write a manifest."""
    from gliotype.input import scan_cohort, write_manifest

    manifest = scan_cohort(root, layout=layout, labels=labels)
    write_manifest(manifest, out)
    typer.echo(f"{len(manifest)} patients found, manifest written to {out}")
    _print_cohort_summary(manifest)


@cohort_app.command("validate")
@user_errors
def cohort_validate(
    manifest: Path = typer.Argument(..., help="Manifest CSV written by `gliotype cohort scan`."),
    workers: int = typer.Option(2, "--workers", help="Parallel processes."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the table as CSV."),
) -> None:
    """Check every case; print one table; exit non-zero only when no case is usable."""
    from gliotype.input import read_manifest, validate_manifest, validation_table

    df = read_manifest(manifest)
    reports = validate_manifest(df, workers=workers)
    typer.echo(validation_table(reports))
    if report is not None:
        import pandas as pd

        from gliotype.utils.io import write_csv_atomic

        rows = [
            {"patient_id": r.patient_id, "status": r.status, "reason": r.reason, "warnings": "; ".join(r.warnings)}
            for r in reports
        ]
        write_csv_atomic(pd.DataFrame(rows), report)
    ok = [r.patient_id for r in reports if r.status == "ok"]
    _print_cohort_summary(df[df["patient_id"].isin(ok)])
    if not ok:
        _fail("no usable case in the manifest")


def _print_cohort_summary(df) -> None:
    from gliotype.input import cohort_summary

    typer.echo(cohort_summary(df))


# --------------------------------------------------------------------------- stages
def _config(preset: str, config: Optional[Path], set_: list[str]):
    from gliotype.config import load_config

    return load_config(preset, config, set_)


PRESET = typer.Option("cpu", "--preset", help="paper, cpu or tiny.")
CONFIG = typer.Option(None, "--config", help="A YAML file over the preset.")
SET = typer.Option([], "--set", help="Override one value: key.path=value (repeatable).")


@app.command()
@user_errors
def preprocess(
    manifest: Path = typer.Argument(..., help="Manifest CSV (from `gliotype cohort scan`)."),
    out: Path = typer.Option(..., "--out", help="Work folder."),
    workers: int = typer.Option(2, "--workers", help="Parallel processes."),
    skull_stripped: Optional[str] = typer.Option(None, "--skull-stripped", help="auto, yes or no."),
    node_atlas: Optional[Path] = typer.Option(None, "--node-atlas", help="Your region labels (NIfTI)."),
    edge_atlas: Optional[Path] = typer.Option(None, "--edge-atlas", help="Your tracts: 4D NIfTI or folder."),
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Register, normalise and build the three modalities of every patient (sections 3.2, 4.2)."""
    from gliotype.input import read_manifest
    from gliotype.modalities.build import build_modalities
    from gliotype.preprocessing import preprocess_cohort

    extra = list(set_)
    if skull_stripped:
        extra.append(f"preprocess.skull_stripped={skull_stripped}")
    if node_atlas:
        extra.append(f"atlas.node_atlas={node_atlas.resolve()}")
    if edge_atlas:
        extra.append(f"atlas.edge_atlas={edge_atlas.resolve()}")
    cfg = _config(preset, config, extra)
    status = preprocess_cohort(read_manifest(manifest), out, cfg, workers=workers)
    ok = status.loc[status["status"].isin(["done", "skipped"]), "patient_id"].astype(str).tolist()
    built = build_modalities(out, ok, cfg, workers=workers)
    for table_, what in ((status, "preprocessing"), (built, "modalities")):
        counts = table_["status"].value_counts().to_dict()
        typer.echo(f"{what}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        for r in table_[table_["status"] == "failed"].itertuples():
            typer.echo(f"  patient {r.patient_id}: {r.reason}")
    if built["status"].isin(["done", "skipped"]).sum() == 0:
        _fail("no patient could be preprocessed")


ssl_app = typer.Typer(help="Self-supervised brain-network construction (section 3.2, eq. 1).", no_args_is_help=True)
app.add_typer(ssl_app, name="ssl")


@ssl_app.command("train")
@user_errors
def ssl_train(
    workdir: Path = typer.Argument(..., help="Work folder written by `gliotype preprocess`."),
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Train the node autoencoder and the edge model on the patients with FA (resumable)."""
    from gliotype.self_supervised import train_self_supervised

    r = train_self_supervised(workdir, _config(preset, config, set_))
    typer.echo(f"trained on {len(r['train_patients'])} FA patients, evaluated on {len(r['heldout_patients'])} held out")
    typer.echo(f"node reconstruction MSE {r['node_reconstruction_mse']:.3f} (predicting the mean: "
               f"{r['node_mean_baseline_mse']:.3f})")
    if r["edge_retrieval_top1"] is None:  # no held-out batch could be formed (e.g. one patient, same_tract)
        typer.echo("edge retrieval: no held-out batch")
    else:
        typer.echo(f"edge retrieval top-1 {r['edge_retrieval_top1']:.3f} (chance {r['edge_retrieval_chance']:.3f})")


@ssl_app.command("encode")
@user_errors
def ssl_encode(workdir: Path = typer.Argument(..., help="Work folder with trained models.")) -> None:
    """Write every patient's brain network x_B = {v_N, v_E}."""
    from gliotype.self_supervised import encode_brain_networks

    table_ = encode_brain_networks(workdir)
    typer.echo(", ".join(f"{v} {k}" for k, v in table_["status"].value_counts().items()))


@app.command()
@user_errors
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
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Run every stage of the method and print Table 3 (cached and resumable)."""
    from gliotype.experiment import run_experiment
    from gliotype.experiment.run import ceiling_lines, repeats_markdown
    from gliotype.experiment.tables import to_markdown

    rows = False if no_ablations else (list(ablation) if ablation else True)
    res = run_experiment(out, _config(preset, config, set_), data=data, manifest=manifest, ablations=rows,
                         baselines=not no_baselines, repeats=repeats, audit=not no_audit)
    typer.echo("\nTable 3. Comparison with baselines (test set)\n")
    typer.echo(to_markdown(res["tables"]["table3"]))
    if "repeats" in res:
        typer.echo("\nTable 3 over repeated splits\n")
        typer.echo(repeats_markdown(res["repeats"]["table3"]))
    typer.echo("\n" + ceiling_lines(res["summary"]))
    typer.echo(f"\nreport: {RunDir(out).results.report}")


@app.command()
@user_errors
def audit(
    rundir: Path = typer.Argument(..., help="Run folder written by `gliotype run`."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="A synthetic cohort's truth.csv: also correlate "
                                                                "each group with the generator's latents."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the audit files (default RUNDIR/results)."),
    workers: int = typer.Option(1, "--workers", help="Parallel processes for the tumour descriptors."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds of each probe's cross-validation."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repeats of each probe's cross-validation."),
) -> None:
    """Information audit: IDH probe AUC of every feature group on training patients, Table 1 homophily,
    the observable ceiling (docs/audit.md)."""
    from gliotype.audit import audit_run
    from gliotype.experiment.report import add_audit_section

    res = audit_run(rundir, truth=truth, out=out, workers=workers, folds=folds, repeats=repeats)
    typer.echo(res.to_markdown())
    results = RunDir(rundir).results
    if results.report.exists():
        add_audit_section(results.report, res)
        typer.echo(f"report: {results.report}")
    typer.echo(f"audit files: {out if out is not None else results.root}")


atlas_app = typer.Typer(help="The brain-network atlases: AAL regions (nodes) and tracts (edges).", no_args_is_help=True)
app.add_typer(atlas_app, name="atlas")


@atlas_app.command("show")
@user_errors
def atlas_show(
    out: Path = typer.Option(Path("atlases.png"), "--out", help="PNG to write."),
    node_atlas: Optional[Path] = typer.Option(None, "--node-atlas", help="Your region labels (NIfTI)."),
    edge_atlas: Optional[Path] = typer.Option(None, "--edge-atlas", help="Your tracts: 4D NIfTI or folder."),
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Render both atlases on the ICBM152 template (builds and caches the tract atlas once)."""
    from gliotype.atlases import load_node_atlas, load_tract_atlas, render_atlases

    cfg = _config(preset, config, set_).atlas
    nodes = load_node_atlas(str(node_atlas) if node_atlas else cfg.node_atlas, n_regions=cfg.n_regions)
    tracts = load_tract_atlas(str(edge_atlas) if edge_atlas else cfg.edge_atlas, node_atlas=nodes,
                              n_tracts=cfg.n_tracts)
    render_atlases(out, node_atlas=nodes, tract_atlas=tracts)
    typer.echo(f"{len(nodes.regions)} regions, {len(tracts.pairs)} tracts: {out}")


@app.command()
@user_errors
def inspect(
    workdir: Path = typer.Argument(..., help="Work folder written by `gliotype preprocess`."),
    patient: str = typer.Argument(..., help="Patient ID."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG (default WORKDIR/patients/ID/inspect.png)."),
) -> None:
    """PNG to check one patient: registration, tumor mask, atlas overlay, point cloud."""
    from gliotype.modalities.inspect import render_inspection

    typer.echo(str(render_inspection(workdir, patient, out)))


# --------------------------------------------------------------------------- config
@config_app.command("show")
@user_errors
def config_show(
    preset: str = typer.Option("cpu", "--preset", help="paper, cpu or tiny."),
    config: Optional[Path] = typer.Option(None, "--config", help="A YAML file over the preset."),
    set_: list[str] = typer.Option([], "--set", help="Override one value: key.path=value (repeatable)."),
) -> None:
    """Print the resolved configuration (preset <- YAML <- --set)."""
    import yaml

    from gliotype.config import load_config

    cfg = load_config(preset, config, set_)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).rstrip())


# --------------------------------------------------------------------------- prediction and explanations
@app.command()
@user_errors
def predict(
    model: Path = typer.Option(..., "--model", help="Trained model folder (RUNDIR/model from `gliotype run`)."),
    out: Path = typer.Option(..., "--out", help="Output folder (written only when the prediction succeeds)."),
    t1: Optional[Path] = typer.Option(None, "--t1", help="Pre-contrast T1."),
    t1c: Optional[Path] = typer.Option(None, "--t1c", help="Post-contrast T1."),
    t2: Optional[Path] = typer.Option(None, "--t2", help="T2."),
    flair: Optional[Path] = typer.Option(None, "--flair", help="T2-FLAIR."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Tumor mask (BraTS labels)."),
    case: Optional[Path] = typer.Option(None, "--case", help="Or one patient's folder in any known layout."),
    patient_id: Optional[str] = typer.Option(None, "--patient-id", help="ID in the outputs (default: from the names)."),
    draws: int = typer.Option(100, "--draws", help="Re-predictions for the uncertainty interval (0: none)."),
    no_explain: bool = typer.Option(False, "--no-explain", help="Skip Grad-CAM, GNNExplainer and the figures."),
) -> None:
    """Predict the IDH status of one patient: prediction.json, report.html, Figs. 7-8, Grad-CAM maps."""
    from gliotype.prediction import inputs_from_case, load_model, predict_patient

    files = {"t1": t1, "t1c": t1c, "t2": t2, "flair": flair, "mask": mask}
    if case is not None:
        if any(files.values()):
            _fail("give either --case or the five files --t1 --t1c --t2 --flair --mask, not both")
        pid, inputs = inputs_from_case(case, patient_id)
        pid = patient_id or pid
    else:
        missing = [f"--{k}" for k, v in files.items() if v is None]
        if missing:
            _fail(f"missing {', '.join(missing)} (or give --case DIR)")
        pid, inputs = patient_id, files
    trained = load_model(model)
    res = predict_patient(trained, inputs, pid, out, draws=draws, explain=not no_explain)
    lo, hi = res.interval
    typer.echo(f"patient {res.patient_id}: P(IDH mutant) = {res.probability:.3f} (95% subsampling interval "
               f"{lo:.3f}-{hi:.3f}) -> {res.decision} at threshold {res.record['threshold']:.3f}")
    typer.echo(f"report: {out / 'report.html'}")


@app.command()
@user_errors
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
    typer.echo(f"explained {res['patients']} patients: {RunDir(rundir).explain.root}")
    for g in res.get("groups", []):
        if g["n"]:
            typer.echo(f"  {g['group']}: {g['n']} patients, mean density of important edges {g['mean_density']:.3f}")
    if res.get("p_value") is not None:
        typer.echo(f"  Mann-Whitney U = {res['mann_whitney_u']:.1f}, two-sided p = {res['p_value']:.3g}")


def main() -> None:  # pragma: no cover - console entry for `python -m gliotype`
    app(prog_name="gliotype")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
