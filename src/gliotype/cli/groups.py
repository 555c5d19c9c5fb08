"""The command groups of ``gliotype``: ``cohort``, ``config``, ``ssl``, ``atlas``, ``model`` and
``train``; each command parses its arguments and makes one call into the API."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gliotype.cli.options import CONFIG, EDGE_ATLAS, NODE_ATLAS, PRESET, SCHEDULER, SET, WORKERS, _config, _fail

cohort_app = typer.Typer(help="Find and check the patients of a cohort.", no_args_is_help=True)
config_app = typer.Typer(help="Show the resolved configuration of a preset.", no_args_is_help=True)
ssl_app = typer.Typer(help="Self-supervised brain-network construction (section 3.2, eq. 1).", no_args_is_help=True)
atlas_app = typer.Typer(help="The brain-network atlases: AAL regions (nodes) and tracts (edges).", no_args_is_help=True)
model_app = typer.Typer(help="Sign a trained model folder and check its signature (Ed25519).", no_args_is_help=True)
train_app = typer.Typer(help="Training on several nodes (docs/scale-out.md).", no_args_is_help=True)

#: name -> group, added to the root command by :mod:`gliotype.cli`
GROUPS = {"cohort": cohort_app, "config": config_app, "ssl": ssl_app, "atlas": atlas_app, "model": model_app,
          "train": train_app}


@cohort_app.command("scan")
def cohort_scan(
    root: Path = typer.Argument(..., help="Folder holding one sub-folder per patient (images or DICOM studies), "
                                         "or a BIDS dataset."),
    out: Path = typer.Option(..., "--out", help="Manifest CSV to write."),
    layout: str = typer.Option("auto", "--layout", help="auto, brats2021, brats2023, ucsf-pdgm, bids, csv or dicom."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV of IDH labels (flexible columns)."),
    dicom_overrides: Optional[Path] = typer.Option(
        None, "--dicom-overrides",
        help="DICOM studies: CSV of patient_id, series_number (or series_uid), role (t1, t1c, t2, flair, skip) "
             "that wins over the heuristic."),
) -> None:
    """Find every patient's T1, T1c, T2, FLAIR, mask (and FA) and write a manifest.

    DICOM studies (one folder per patient) are converted into dicom_nifti/ beside the manifest;
    the role of every series and the reason are printed per patient."""
    from gliotype import stages
    from gliotype.input import cohort_summary

    manifest = stages.scan(root, out, layout=layout, labels=labels, dicom_overrides=dicom_overrides)
    typer.echo(f"{len(manifest)} patients found, manifest written to {out}\n{cohort_summary(manifest)}")


@cohort_app.command("validate")
def cohort_validate(
    manifest: Path = typer.Argument(..., help="Manifest CSV written by `gliotype cohort scan`."),
    workers: int = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the table as CSV."),
    max_voxels: Optional[int] = typer.Option(None, "--max-voxels", min=1,
                                             help="Voxels an image file may declare (input.max_voxels)."),
    missing_sequences: Optional[int] = typer.Option(
        None, "--missing-sequences", min=0, max=3,
        help="Sequences (of t1, t1c, t2, flair) a case may lack (input.missing_sequences; default 0)."),
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Check every case under the config's input rules (input.max_voxels, input.missing_sequences,
    preprocess.nonfinite); print one table; exit non-zero only when no case is usable."""
    from gliotype import stages

    from gliotype.utils.executor import use_executor

    cfg = _config(preset, config, set_, max_voxels=max_voxels, missing_sequences=missing_sequences,
                  scheduler=scheduler)
    with use_executor(cfg.executor):  # an unreachable scheduler fails here, before any work
        checked = stages.validate(manifest, workers, report=report, config=cfg)
    typer.echo(checked.summary())
    if not checked.ok:
        _fail("no usable case in the manifest")


@cohort_app.command("segment")
def cohort_segment(
    manifest: Path = typer.Argument(..., help="Manifest CSV written by `gliotype cohort scan`."),
    segmenter: Path = typer.Option(..., "--segmenter", metavar="PATH",
                                   help="A tumour-segmentation model folder: MONAI bundle or nnU-Net v2."),
    out: Path = typer.Option(..., "--out", help="Folder for the masks, their figures and the new manifest."),
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Segment the tumour of every case without a mask: OUT/<id>_seg_auto.nii.gz (+ .png to check it),
    OUT/manifest.csv pointing to them, OUT/segmentation.csv (docs/real-data.md, 'No tumour mask')."""
    from gliotype.input import InputRules
    from gliotype.segmentation import load_segmenter, segment_cohort

    cfg = _config(preset, config, set_)
    res = segment_cohort(manifest, load_segmenter(segmenter), out, rules=InputRules.of(cfg), config=cfg.preprocess)
    typer.echo(res.summary())
    if not res.ok:
        _fail("no case could be segmented")


@ssl_app.command("train")
def ssl_train(
    workdir: Path = typer.Argument(..., help="Work folder written by `gliotype preprocess`."),
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Train the node autoencoder and the edge model on the patients with FA (resumable)."""
    from gliotype.self_supervised import train_self_supervised

    r = train_self_supervised(workdir, _config(preset, config, set_))
    edge = ("edge retrieval: no held-out batch" if r["edge_retrieval_top1"] is None  # e.g. one patient, same_tract
            else f"edge retrieval top-1 {r['edge_retrieval_top1']:.3f} (chance {r['edge_retrieval_chance']:.3f})")
    typer.echo(f"trained on {len(r['train_patients'])} FA patients, evaluated on {len(r['heldout_patients'])} held out"
               f"\nnode reconstruction MSE {r['node_reconstruction_mse']:.3f} (predicting the mean: "
               f"{r['node_mean_baseline_mse']:.3f})\n{edge}")


@ssl_app.command("encode")
def ssl_encode(workdir: Path = typer.Argument(..., help="Work folder with trained models.")) -> None:
    """Write every patient's brain network x_B = {v_N, v_E}."""
    from gliotype.self_supervised import encode_brain_networks

    status = encode_brain_networks(workdir)["status"]
    typer.echo(", ".join(f"{v} {k}" for k, v in status.value_counts().items()))


@atlas_app.command("show")
def atlas_show(
    out: Path = typer.Option(Path("atlases.png"), "--out", help="PNG to write."),
    node_atlas: Optional[Path] = NODE_ATLAS,
    edge_atlas: Optional[Path] = EDGE_ATLAS,
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Render both atlases on the ICBM152 template (builds and caches the tract atlas once)."""
    from gliotype.atlases import show_atlases

    regions, tracts = show_atlases(_config(preset, config, set_, node_atlas, edge_atlas).atlas, out)
    typer.echo(f"{regions} regions, {tracts} tracts: {out}")


@config_app.command("show")
def config_show(preset: str = PRESET, config: Optional[Path] = CONFIG, set_: list[str] = SET) -> None:
    """Print the resolved configuration (preset <- YAML <- --set)."""
    import yaml

    cfg = _config(preset, config, set_)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).rstrip())


@model_app.command("keygen")
def model_keygen(out: Path = typer.Option(..., "--out", help="Folder for private_key.pem and public_key.pem.")) -> None:
    """Make an Ed25519 key pair: private_key.pem (mode 0600, keep it secret) and public_key.pem (share it)."""
    from gliotype.bundle import generate_key_pair

    pair = generate_key_pair(out)
    typer.echo(f"key {pair.key_id}: {pair.private.name} (private, mode 0600: keep it to yourself) and "
               f"{pair.public.name} (give it to the users of your models)")


@model_app.command("sign")
def model_sign(
    model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="Trained model folder (RUNDIR/model)."),
    key: Path = typer.Option(..., "--key", metavar="PRIVATE_KEY", help="Your private key (from `model keygen`)."),
) -> None:
    """Sign a model folder: manifest.sig, the signature of manifest.json (the sha256 of every file)."""
    from gliotype.bundle import sign_bundle

    signed = sign_bundle(model_dir, key)
    typer.echo(f"model folder {model_dir.name} signed with key {signed.key_id} ({signed.files} files)")


@model_app.command("verify")
def model_verify(
    model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="Trained model folder (RUNDIR/model)."),
    key: Path = typer.Option(..., "--key", metavar="PUBLIC_KEY", help="The author's public key (PEM)."),
) -> None:
    """Check a model folder's signature with its author's public key, and every file against it."""
    from gliotype.bundle import verify_bundle

    signed = verify_bundle(model_dir, key)
    typer.echo(f"model folder {model_dir.name}: signed with key {signed.key_id}, its {signed.files} files unchanged")


__all__ = ["GROUPS"]


@train_app.command("join")
def train_join(
    preset: str = PRESET,
    config: Optional[Path] = CONFIG,
    set_: list[str] = SET,
    wait: float = typer.Option(60.0, "--wait", help="Minutes to wait for the next training before ending."),
) -> None:
    """On each other node of ``train.nodes``: join every training the driver node's `gliotype run`
    starts at ``train.endpoint`` (same ``train`` settings, same paths on a shared file system)."""
    from gliotype.utils.launch import join

    joined = join(_config(preset, config, set_).train, wait_s=wait * 60.0)
    typer.echo(f"joined {joined} training(s); none started in the last {wait:g} minutes")
