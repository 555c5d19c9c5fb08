"""Per-patient preprocessing (paper section 4.2) and the cohort loop, cached and resumable.

Per patient, under ``WORKDIR/patients/<id>/`` (paths: :class:`gliotype.layout.CaseDir`)::

    preprocessed/t1.nii.gz t1c.nii.gz t2.nii.gz flair.nii.gz   float32, template grid
    preprocessed/mask.nii.gz                                   uint8 BraTS labels
    preprocessed/fa.nii.gz                                     float32 (FA cases only)
    preprocessed/brain_mask.nii.gz                             uint8 0/1
    preprocessed/transforms/                                   ANTs files + transforms.json
    preprocessed/qc.json  preprocessed/preprocess.log
    done.json                                                  written last: the cache key

Every file is written atomically. ``done.json`` holds the sha256 of the input file
bytes, of the ``preprocess`` config section and of :data:`PREPROCESS_VERSION`; a
rerun skips a patient whose key matches and redoes it otherwise. Steps and QC are
described in ``docs/preprocessing.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from gliotype.errors import CaseError, GliotypeError
from gliotype.input.manifest import is_blank
from gliotype.layout import CaseDir, TransformsDir, WorkDir
from gliotype.preprocessing import brain as brainmod
from gliotype.preprocessing.images import check_affine, on_grid, same_grid, save_nifti, voxel_volume, write_text
from gliotype.preprocessing.normalize import GM_METHODS, normalize, normalize_on_template, pre_registration_method

from gliotype.utils.io import sha256_file
from gliotype.utils.logging import get_logger
from gliotype.utils.progress import progress
from gliotype.utils.timing import Laps

log = get_logger("preprocessing")

#: Bumped whenever the same inputs and config would give different outputs.
PREPROCESS_VERSION = 2  # 2: ANTs seed + 1 (seed 0 meant the clock), one ITK thread
#: Sequence roles in output order (the ``sequences`` axis of :func:`load_preprocessed`).
SEQUENCES: tuple[str, ...] = ("t1", "t1c", "t2", "flair")
#: Mask labels accepted: BraTS 1 necrotic/non-enhancing core, 2 edema, 4 enhancing,
#: 3 (old BraTS non-enhancing core / BraTS 2023 enhancing). Kept as they are.
KNOWN_LABELS = (0, 1, 2, 3, 4)
STATUS_COLUMNS = ["patient_id", "status", "reason", "seconds"]


@dataclass
class CaseResult:
    """Outcome of one patient: ``done``, ``skipped`` (cache hit) or ``failed`` (with a one-line reason)."""

    patient_id: str
    status: str
    reason: str = ""
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- paths and cache


def _inputs(row: dict, pid: str) -> dict[str, Path]:
    """role -> input path (fa only when given); a missing required role is a CaseError."""
    out: dict[str, Path] = {}
    for role in (*SEQUENCES, "mask", "fa"):
        value = row.get(role)
        if is_blank(value):
            if role == "fa":
                continue
            raise CaseError(pid, None, f"no {role} file given in the manifest")
        out[role] = Path(str(value))
    return out


def _file_sha256(path: Path, pid: str, role: str) -> str:
    if not path.is_file():
        raise CaseError(pid, path, f"{role} file not found")
    return sha256_file(path)


def cache_key(input_hashes: dict[str, str], config) -> str:
    """sha256 of the input file hashes (by role), the preprocess config section and the version."""
    text = json.dumps({"version": PREPROCESS_VERSION, "inputs": input_hashes,
                       "preprocess": config.preprocess.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _outputs(case: CaseDir, has_fa: bool) -> list[str]:
    """The files of a preprocessed patient, relative to ``preprocessed/`` (as ``done.json`` lists them)."""
    files = [case.sequence(s) for s in SEQUENCES] + [case.mask, case.brain_mask]
    files += ([case.fa] if has_fa else []) + [case.transforms.json, case.qc]
    return [case.preprocessed_name(f) for f in files]


def _cached(case: CaseDir, key: str) -> bool:
    if not case.done.exists():
        return False
    try:
        meta = json.loads(case.done.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("key") == key and all((case.preprocessed / f).exists() for f in meta.get("outputs", ["?"]))


# --------------------------------------------------------------------------- per-case log


class _CaseLog:
    """Lines of one patient's run, written to ``preprocess.log`` at the end (also sent to the logger)."""

    def __init__(self, pid: str):
        self.pid = pid
        self.t0 = time.perf_counter()
        self.lines: list[str] = []

    def __call__(self, msg: str, level: int = logging.INFO) -> None:
        self.lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} +{time.perf_counter() - self.t0:7.2f}s "
                          f"{logging.getLevelName(level):7s} {msg}")
        log.debug("patient %s: %s", self.pid, msg)  # the cohort summary warns about failures

    def write(self, path: Path) -> None:
        write_text(path, "\n".join(self.lines) + "\n")


# --------------------------------------------------------------------------- one case


def _load(inputs: dict[str, Path], pid: str) -> dict[str, nib.Nifti1Image]:
    from gliotype.input.volumes import load_volume

    images = {}
    for role, path in inputs.items():
        img = load_volume(path, pid, role)
        problem = check_affine(img.affine)
        if problem:
            raise CaseError(pid, path, f"{role} {problem}")
        images[role] = img
    for role in (*SEQUENCES, "fa"):
        if role in images:
            data = np.asarray(images[role].dataobj, dtype=np.float32)
            if not np.all(np.isfinite(data)):
                data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
            images[role] = nib.Nifti1Image(data, images[role].affine)
    return images


def _check_mask(img: nib.Nifti1Image, pid: str, path: Path) -> np.ndarray:
    """The mask as uint8 labels; empty, non-integer or unknown labels are a CaseError."""
    raw = np.asarray(img.dataobj)
    if not np.all(np.isfinite(raw)):
        raise CaseError(pid, path, "mask has NaN or infinite values")
    rounded = np.rint(raw)
    if np.any(np.abs(raw - rounded) > 1e-3):
        raise CaseError(pid, path, "mask has non-integer values (expected labels 0, 1, 2, 3, 4)")
    labels = np.unique(rounded).astype(np.int64)
    unknown = [int(v) for v in labels if v not in KNOWN_LABELS]
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:5])
        raise CaseError(pid, path, f"mask has unknown label values {shown} (expected 0, 1, 2, 3, 4)")
    if not np.any(rounded > 0):
        raise CaseError(pid, path, "mask is empty (no tumor voxel)")
    return rounded.astype(np.uint8)


def _coregister(images: dict, pid: str, inputs: dict, cfg, tdir: TransformsDir, say) -> tuple[dict, dict]:
    """Everything onto the T1c grid. Returns (role -> image on the T1c grid, coregistration record)."""
    from gliotype.preprocessing.register import resample_to, rigid_coregister

    ref = images["t1c"]
    out = {"t1c": ref}
    record: dict[str, str | None] = {}
    for role in ("t1", "t2", "flair", "fa"):
        if role not in images:
            continue
        img = images[role]
        aligned = same_grid(img, ref)
        if cfg.coregister == "always" or (cfg.coregister == "auto" and not aligned):
            say(f"{role}: rigid co-registration to t1c")
            path = tdir.coregistration(role)
            try:
                out[role] = rigid_coregister(ref, img, cfg.spacing_mm, cfg.seed, path)
            except Exception as exc:
                raise CaseError(pid, inputs[role], f"rigid co-registration of {role} to t1c failed ({_one_line(exc)})")
            record[role] = path.name
        elif aligned:
            out[role] = img
            record[role] = None
        else:
            say(f"{role}: resampled onto the t1c grid (coregister=never)")
            out[role] = resample_to(ref, img, "linear")
            record[role] = None
    mask = images["mask"]
    if same_grid(mask, ref):
        out["mask"] = mask
    else:
        say("mask: resampled onto the t1c grid (world coordinates, generic label interpolation)")
        res = resample_to(ref, nib.Nifti1Image(np.asarray(mask.dataobj, np.float32), mask.affine), "genericLabel")
        out["mask"] = nib.Nifti1Image(np.rint(np.asarray(res.dataobj)).astype(np.uint8), res.affine)
    return out, record


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _run_case(pid: str, inputs: dict[str, Path], case: CaseDir, config, say, qc: dict) -> dict:
    """The steps of section 4.2 for one patient; writes the outputs and fills and returns ``qc``."""
    from gliotype.atlases import load_template
    from gliotype.preprocessing import register as reg_mod

    cfg = config.preprocess
    lap = Laps(ndigits=3)

    template = load_template(int(round(cfg.spacing_mm)))
    tdir = case.transforms
    tdir.root.mkdir(parents=True, exist_ok=True)
    qc.update({"patient_id": pid, "version": PREPROCESS_VERSION})

    # 1. load and check
    images = _load(inputs, pid)
    mask_labels = _check_mask(images["mask"], pid, inputs["mask"])
    images["mask"] = nib.Nifti1Image(mask_labels, images["mask"].affine)
    for role in SEQUENCES:
        if not np.any(np.asarray(images[role].dataobj)):
            raise CaseError(pid, inputs[role], f"{role} image is all zero")
    say(f"loaded {', '.join(images)}; t1c grid {images['t1c'].shape} "
        f"voxel {np.round(nib.affines.voxel_sizes(images['t1c'].affine), 3).tolist()} mm")
    lap("load")

    # 2. co-registration to T1c
    native, coreg = _coregister(images, pid, inputs, cfg, tdir, say)
    ref = native["t1c"]
    vox_native = voxel_volume(ref.affine)
    mask = np.asarray(native["mask"].dataobj).astype(np.uint8)
    tumor = mask > 0
    if not tumor.any():
        raise CaseError(pid, inputs["mask"], "mask is empty on the t1c grid")
    qc["coregistration"] = {k: ("rigid" if v else "none") for k, v in coreg.items()}
    lap("coregistration")

    # 3. brain mask (skull stripping)
    arrays = {r: np.asarray(native[r].dataobj, dtype=np.float32) for r in SEQUENCES}
    stats = brainmod.skull_strip_stats(arrays["t1c"], vox_native)
    stripped = {"yes": True, "no": False}.get(cfg.skull_stripped)
    if stripped is None:
        stripped = brainmod.is_skull_stripped(arrays["t1c"], vox_native)
    on_template = on_grid(ref, template.shape, template.affine)
    if stripped:
        brain = brainmod.nonzero_brain_mask(arrays["t1c"])
        how = "non-zero t1c (skull-stripped input)"
    elif on_template:
        brain = (template.brain_mask > 0.5) & brainmod.head_mask(arrays["t1c"])
        how = "template brain mask (input on the template grid, not skull-stripped)"
    else:
        brain = reg_mod.template_brain_mask(ref, arrays[cfg.moving], template, cfg.registration, cfg.spacing_mm,
                                            cfg.reg_iterations, cfg.seed)
        how = "template brain mask warped back (input not skull-stripped)"
    brain_ml = float(brain.sum() * vox_native / 1000.0)
    say(f"skull stripped: {stripped} (zero fraction {stats['zero_fraction']:.2f}, foreground "
        f"{stats['foreground_ml']:.0f} ml); brain mask from {how}: {brain_ml:.0f} ml")
    qc["skull_stripped"] = {"setting": cfg.skull_stripped, "detected": bool(stripped), **stats,
                            "brain_mask": how, "brain_native_ml": round(brain_ml, 2)}
    if brain.sum() * vox_native < 100_000:  # 100 ml
        raise CaseError(pid, inputs["t1c"], f"brain mask is only {brain_ml:.0f} ml (expected about 1,000-2,000 ml)")
    inside = float((tumor & brain).sum() / tumor.sum())
    qc["tumor_inside_brain"] = round(inside, 4)
    if inside < cfg.min_tumor_in_brain:
        raise CaseError(pid, inputs["mask"], f"mask lies outside the brain: {inside:.0%} of tumor voxels inside the "
                        f"brain mask (< {cfg.min_tumor_in_brain:.0%}); is it the mask of this patient and space?")
    lap("brain_mask")

    # 4. denoising (optional) and intensity normalisation
    for role in SEQUENCES:
        data = np.where(brain, arrays[role], 0.0).astype(np.float32)
        if cfg.denoise:
            import ants

            from gliotype.preprocessing.images import to_ants

            shifted = data - data[brain].min() if data[brain].min() < 0 else data  # Rician model: >= 0
            den = ants.denoise_image(to_ants(ref, shifted), to_ants(ref, brain.astype(np.float32))).numpy()
            data = np.where(brain, den + (data - shifted), 0.0).astype(np.float32)
        try:
            # grey-matter readings: z-score now, the template GM map after registration (normalize.py)
            arrays[role] = normalize(data, brain, pre_registration_method(cfg.normalization), exclude=tumor)
        except ValueError as exc:
            raise CaseError(pid, inputs[role], f"{role}: {exc}") from None
    fa = None
    if "fa" in native:
        fa = np.clip(np.where(brain, np.asarray(native["fa"].dataobj, dtype=np.float32), 0.0), 0.0, 1.0)
    say(f"normalisation: {cfg.normalization}; denoise: {cfg.denoise}")
    lap("normalization")

    # 5. registration to the template
    tumor_native_mm3 = float(tumor.sum() * vox_native)
    if on_template:
        reg = reg_mod.identity_registration()
        reg.kind = "identity (input on the template grid)"
        say("input is on the template grid: registration skipped")
    else:
        moving = nib.Nifti1Image(arrays[cfg.moving], ref.affine)
        try:
            reg = reg_mod.register_to_template(moving, brain, tumor if cfg.mask_tumor else None, template,
                                               cfg.registration, cfg.spacing_mm, cfg.reg_iterations, cfg.seed)
        except Exception as exc:
            raise CaseError(pid, inputs[cfg.moving], f"registration to the template failed ({_one_line(exc)})")
        say(f"registration {cfg.moving} -> template: {reg.kind} in {reg.seconds:.1f}s")
    lap("registration")
    try:
        if on_template:
            seqs = np.stack([arrays[r] for r in SEQUENCES]).astype(np.float32)
            wbrain = brain.copy()
            wmask = mask.copy()
            wfa = fa
        else:
            wbrain = reg_mod.apply_forward(reg, template, ref, brain.astype(np.float32), "linear") > 0.5
            seqs = np.stack([reg_mod.apply_forward(reg, template, ref, arrays[r], "linear") for r in SEQUENCES])
            seqs = np.where(wbrain[None], seqs, 0.0).astype(np.float32)
            wmask = np.rint(reg_mod.apply_forward(reg, template, ref, mask.astype(np.float32), "genericLabel"))
            wmask = wmask.astype(np.uint8)
            wfa = None
            if fa is not None:
                wfa = np.clip(np.where(wbrain, reg_mod.apply_forward(reg, template, ref, fa, "linear"), 0.0), 0.0, 1.0)
        lap("apply_transforms")
        if cfg.normalization in GM_METHODS:  # statistics on the template's grey matter, tumour left out
            try:
                seqs = np.stack([normalize_on_template(seqs[i], wbrain, cfg.normalization, template.gm, wmask > 0)
                                 for i in range(len(SEQUENCES))]).astype(np.float32)
            except ValueError as exc:
                raise CaseError(pid, None, f"{cfg.normalization} normalisation: {exc}") from None
            lap("normalization_gm")

        # 6. QC
        tbrain = template.brain_mask > 0.5
        dice = brainmod.dice(wbrain, tbrain)
        similarity = _similarity(template, seqs[SEQUENCES.index(cfg.moving)])
        linear_scale = reg.linear_scale()
        vox_t = voxel_volume(template.affine)
        tumor_t_mm3 = float((wmask > 0).sum() * vox_t)
        ratio = tumor_t_mm3 / tumor_native_mm3
        brain_t_ml = float(wbrain.sum() * vox_t / 1000.0)
        qc.update({
            "registration": reg.kind,
            "moving": cfg.moving,
            "tumor_masked_in_metric": bool(cfg.mask_tumor and not on_template and cfg.registration == "SyN"),
            "brain_dice": round(dice, 4),
            "similarity_mattes_mi": None if not np.isfinite(similarity) else round(similarity, 4),
            "tumor_native_mm3": round(tumor_native_mm3, 1),
            "tumor_template_mm3": round(tumor_t_mm3, 1),
            "tumor_volume_ratio": round(ratio, 4),
            "linear_scale": round(linear_scale, 4),
            "tumor_volume_ratio_scaled": round(ratio / linear_scale, 4) if linear_scale > 0 else None,
            "brain_template_ml": round(brain_t_ml, 2),
            # the tumour's share of the (patient's, warped) brain, template / native
            "tumor_fraction_ratio": round((tumor_t_mm3 / brain_t_ml) / (tumor_native_mm3 / brain_ml), 4)
            if brain_t_ml > 0 else None,
            "tumor_template_voxels": int((wmask > 0).sum()),
            "labels_native": sorted(int(v) for v in np.unique(mask) if v),
            "labels_template": sorted(int(v) for v in np.unique(wmask) if v),
        })
        say(f"QC: brain Dice {dice:.3f}, Mattes MI {similarity:.3f}, tumor {tumor_native_mm3:.0f} -> "
            f"{tumor_t_mm3:.0f} mm3 (ratio {ratio:.3f}, linear scale {linear_scale:.3f})")

        # outputs (also for a failed QC, for inspection; done.json is what marks success)
        affine = template.affine
        for i, role in enumerate(SEQUENCES):
            save_nifti(seqs[i], affine, case.sequence(role))
        save_nifti(wmask, affine, case.mask, np.uint8)
        save_nifti(wbrain.astype(np.uint8), affine, case.brain_mask, np.uint8)
        if wfa is not None:
            save_nifti(wfa, affine, case.fa)
        elif case.fa.exists():
            case.fa.unlink()
        reg_mod.save_transforms(reg, tdir, ref, template, coreg)
        lap("write")
    finally:
        reg.cleanup()

    problems = []
    if qc["tumor_template_voxels"] < cfg.min_tumor_voxels:
        problems.append(f"tumor has {qc['tumor_template_voxels']} voxels on the template grid "
                        f"(< {cfg.min_tumor_voxels})")
    if not np.isfinite(similarity):
        problems.append("registration diverged: the similarity metric is not a number")
    if dice < cfg.qc_min_dice:
        where = " (input on the template grid, registration skipped)" if on_template else ""
        problems.append(f"registration diverged: brain mask Dice {dice:.3f} with the template brain mask "
                        f"(< {cfg.qc_min_dice}){where}")
    qc["steps_seconds"] = lap.seconds
    qc["passed"] = not problems
    qc["problems"] = problems
    if problems:
        raise CaseError(pid, None, problems[0])
    return qc


def _similarity(template, warped: np.ndarray) -> float:
    """ANTs Mattes mutual information between the template T1 and the registered sequence (lower = better)."""
    import ants

    from gliotype.preprocessing.images import to_ants

    fixed = to_ants(template.image(template.t1))
    try:
        return float(ants.image_similarity(fixed, fixed.new_image_like(np.asarray(warped, np.float32)),
                                           metric_type="MattesMutualInformation"))
    except Exception:
        return float("nan")


def preprocess_case(row, workdir, config) -> CaseResult:
    """Preprocess one patient (a manifest row: patient_id, t1, t1c, t2, flair, mask, [fa]).

    Never raises for a bad case: returns ``failed`` with a one-line reason (the
    traceback of an unexpected error goes to the patient's ``preprocess.log``).
    """
    row = dict(row)
    pid = str(row.get("patient_id", "")).strip()
    t0 = time.perf_counter()
    if not pid or pid in (".", "..") or any(c in pid for c in "/\\") or pid != os.path.basename(pid):
        return CaseResult(pid, "failed", f"invalid patient id {pid!r}", {"seconds": 0.0})
    case = WorkDir.of(workdir).case(pid)
    out, done = case.preprocessed, case.done
    say = _CaseLog(pid)
    qc: dict = {}
    try:
        inputs = _inputs(row, pid)
        hashes = {role: _file_sha256(path, pid, role) for role, path in inputs.items()}
        key = cache_key(hashes, config)
        if _cached(case, key):
            return CaseResult(pid, "skipped", "", {"seconds": round(time.perf_counter() - t0, 3)})
        if done.exists():
            done.unlink()
        out.mkdir(parents=True, exist_ok=True)
        say(f"preprocessing {pid} (gliotype preprocessing v{PREPROCESS_VERSION}); config "
            f"{json.dumps(config.preprocess.model_dump(mode='json'), sort_keys=True)}")
        for role, path in inputs.items():
            say(f"input {role}: {path.name} sha256 {hashes[role][:16]}")
        _run_case(pid, inputs, case, config, say, qc)
        seconds = round(time.perf_counter() - t0, 3)
        qc["seconds"] = seconds
        write_text(case.qc, json.dumps(qc, indent=2))
        say(f"done in {seconds:.1f}s")
        say.write(case.preprocess_log)
        meta = {"key": key, "patient_id": pid, "version": PREPROCESS_VERSION, "inputs": hashes,
                "preprocess": config.preprocess.model_dump(mode="json"), "outputs": _outputs(case, "fa" in inputs),
                "has_fa": "fa" in inputs, "seconds": seconds}
        write_text(done, json.dumps(meta, indent=2))  # last
        return CaseResult(pid, "done", "", {"seconds": seconds, "qc": qc})
    except CaseError as exc:
        reason = f"{exc.file}: {exc.problem}" if exc.file else exc.problem
        qc = qc or {"patient_id": pid}
    except Exception as exc:  # never a traceback for the user; it goes to the log
        reason = f"unexpected error: {type(exc).__name__}: {_one_line(exc)}"
        say(traceback.format_exc(), logging.DEBUG)
    seconds = round(time.perf_counter() - t0, 3)
    say(f"failed after {seconds:.1f}s: {reason}", logging.WARNING)
    try:
        if out.exists() or qc:
            qc = {**qc, "passed": False, "reason": reason, "seconds": seconds}
            write_text(case.qc, json.dumps(qc, indent=2))
            say.write(case.preprocess_log)
    except OSError:
        pass
    return CaseResult(pid, "failed", reason, {"seconds": seconds, "qc": qc})


# --------------------------------------------------------------------------- cohort


def _worker_init() -> None:
    """One ITK thread per worker process (set before ants is imported in the worker)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _worker(row: dict, workdir: WorkDir, config) -> CaseResult:
    return preprocess_case(row, workdir, config)


def _check_config(config) -> None:
    cfg = config.preprocess
    if int(round(cfg.spacing_mm)) not in (1, 2) or abs(cfg.spacing_mm - round(cfg.spacing_mm)) > 1e-6:
        raise GliotypeError(f"preprocess.spacing_mm must be 1 or 2 (the template grids), got {cfg.spacing_mm}")
    if cfg.registration == "SyN" and not cfg.reg_iterations:
        raise GliotypeError("preprocess.reg_iterations must not be empty for SyN")


def preprocess_cohort(df: pd.DataFrame, workdir, config, workers: int = 1) -> pd.DataFrame:
    """Preprocess every manifest row; one bad case never stops the run.

    Returns a DataFrame (patient_id, status, reason, seconds) in manifest order, also
    written to ``WORKDIR/preprocessing.csv``. ``workers > 1`` runs cases in separate
    processes with one ITK thread each.
    """
    _check_config(config)
    work = WorkDir.of(workdir)
    work.root.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in df.to_dict("records")]
    results: dict[int, CaseResult] = {}
    seen: set[str] = set()
    todo: list[int] = []
    for i, r in enumerate(rows):
        pid = str(r.get("patient_id", "")).strip()
        if pid in seen:
            results[i] = CaseResult(pid, "failed", "duplicate patient id in the manifest")
        else:
            seen.add(pid)
            todo.append(i)

    workers = max(1, min(int(workers or 1), len(todo)))
    if workers == 1:
        for i in progress(todo, "preprocessing", total=len(todo)):
            results[i] = preprocess_case(rows[i], work, config)
    else:
        _parallel(rows, todo, work, config, workers, results)

    table = pd.DataFrame([{"patient_id": results[i].patient_id, "status": results[i].status,
                           "reason": results[i].reason, "seconds": results[i].info.get("seconds", 0.0)}
                          for i in range(len(rows))], columns=STATUS_COLUMNS)
    write_text(work.preprocessing_status, table.to_csv(index=False))
    counts = table["status"].value_counts().to_dict()
    log.info("preprocessing: %s", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no patient")
    for r in table[table["status"] == "failed"].itertuples():
        log.warning("patient %s: preprocessing failed: %s", r.patient_id, r.reason)
    return table


def _parallel(rows, todo, workdir, config, workers, results) -> None:
    """Run ``todo`` in a process pool; a crashed worker costs its case (after one retry), not the run."""
    import multiprocessing as mp

    attempts = {i: 0 for i in todo}
    pending = list(todo)
    bar = progress(range(len(todo)), "preprocessing", total=len(todo))
    bar_iter = iter(bar)
    # fork (Linux) like the other stages: no re-import of the caller's main module and no
    # start-up cost; ants is imported lazily, so ITK reads the one-thread setting in the child
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    while pending:
        ctx = mp.get_context(method)
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx,
                                 initializer=_worker_init) as pool:
            futures = {}
            for i in pending:
                attempts[i] += 1
                futures[pool.submit(_worker, rows[i], workdir, config)] = i
            pending = []
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except BrokenProcessPool:
                    if attempts[i] >= 2:
                        pid = str(rows[i].get("patient_id", ""))
                        results[i] = CaseResult(pid, "failed", "the worker process crashed (out of memory?)")
                    else:
                        pending.append(i)
                        continue
                except Exception as exc:
                    pid = str(rows[i].get("patient_id", ""))
                    results[i] = CaseResult(pid, "failed", f"unexpected error: {_one_line(exc)}")
                next(bar_iter, None)
    if hasattr(bar, "close"):
        bar.close()


# --------------------------------------------------------------------------- reading back


def load_preprocessed(workdir, patient_id) -> dict:
    """The preprocessed patient on the template grid.

    Returns ``sequences`` (4, X, Y, Z) float32 in the order t1, t1c, t2, flair; ``mask``
    (X, Y, Z) uint8 BraTS labels; ``fa`` (X, Y, Z) float32 or None; ``affine`` (4, 4);
    ``brain`` (X, Y, Z) bool. Raises :class:`CaseError` when the patient was not
    (successfully) preprocessed.
    """
    pid = str(patient_id)
    case = WorkDir.of(workdir).case(pid)
    if not case.done.exists():
        raise CaseError(pid, None, f"not preprocessed (no {case.done.name}; run preprocessing first)")
    meta = json.loads(case.done.read_text())

    def read(path: Path, dtype) -> tuple[np.ndarray, np.ndarray]:
        if not path.exists():
            raise CaseError(pid, path, "preprocessed file is missing (rerun preprocessing)")
        img = nib.load(str(path))
        return np.asarray(img.dataobj, dtype=dtype), np.asarray(img.affine, dtype=np.float64)

    seqs = []
    affine = None
    for role in SEQUENCES:
        arr, affine = read(case.sequence(role), np.float32)
        seqs.append(arr)
    mask, _ = read(case.mask, np.uint8)
    brain, _ = read(case.brain_mask, np.uint8)
    fa = read(case.fa, np.float32)[0] if meta.get("has_fa") else None
    return {"sequences": np.stack(seqs).astype(np.float32), "mask": mask, "fa": fa, "affine": affine,
            "brain": brain.astype(bool)}


__all__ = ["CaseResult", "KNOWN_LABELS", "PREPROCESS_VERSION", "SEQUENCES", "cache_key", "load_preprocessed",
           "preprocess_case", "preprocess_cohort"]
