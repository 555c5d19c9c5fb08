"""Memory follows the file, not the header (issue 14, case 4): a header declaring more voxels than
the limit, or than the file holds, is refused before any voxel is read, in one line."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from input_helpers import SHAPE, brain, manifest_of, save
from typer.testing import CliRunner

import gliotype
from gliotype.cli import app
from gliotype.errors import CaseError, GliotypeError
from gliotype.input import InputRules, load_volume, validate_manifest, validation_table

FORMATS = (".nii", ".nii.gz", ".mha", ".nrrd")
#: Python's allocations while a refused file is "read" (tracemalloc also sees numpy's buffers)
PEAK_BUDGET = 50e6


def declaring(folder: Path, name: str, shape: tuple[int, ...]) -> Path:
    """A real 2 x 2 x 2 float32 image written by nibabel or SimpleITK, its header then edited
    to declare ``shape``: the file keeps its few hundred bytes."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith((".nii", ".nii.gz")):
        nii = folder / (name.removesuffix(".gz") + ".tmp.nii")
        nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.float32), np.eye(4)), str(nii))
        with open(nii, "r+b") as fh:
            header = nib.Nifti1Header.from_fileobj(fh)  # as stored (vox_offset 352)
            header.set_data_shape(shape)
            fh.seek(0)
            header.write_to(fh)  # 348 header bytes; the 32 voxel bytes stay
        raw = nii.read_bytes()
        nii.unlink()
        path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
        return path
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 2, 2), np.float32)), str(path))
    key = b"DimSize = 2 2 2" if name.endswith((".mha", ".mhd")) else b"sizes: 2 2 2"
    text = path.read_bytes()
    assert key in text
    path.write_bytes(text.replace(key, key[:-5] + " ".join(map(str, shape)).encode()))
    return path


def refusal(path: Path, **kwargs) -> tuple[str, float]:
    """The CaseError message of ``load_volume(path)`` and the peak of Python allocations meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(CaseError) as err:
            load_volume(path, "P1", "t2", **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(err.value), peak


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_header_over_the_voxel_limit_is_refused_before_reading(tmp_path, suffix):
    path = declaring(tmp_path, f"P1_t2{suffix}", (800, 800, 800))
    assert path.stat().st_size < 1000
    message, peak = refusal(path)
    assert message == (f"patient P1 [P1_t2{suffix}]: t2 image header declares 512,000,000 voxels "
                       "(800 x 800 x 800), over the limit of 134,217,728 (input.max_voxels)")
    assert peak < PEAK_BUDGET  # reading would allocate 2.048 GB


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_file_shorter_than_its_header_declares_is_truncated(tmp_path, suffix):
    path = declaring(tmp_path, f"P1_t2{suffix}", (300, 300, 300))  # 27 M voxels: within the limit
    message, peak = refusal(path)
    assert message == ("patient P1 [P1_t2" + suffix + "]: t2 file is truncated: its header declares "
                       "108,000,000 bytes of voxels, the file holds 32")
    assert peak < PEAK_BUDGET  # reading would allocate 108 MB


@pytest.mark.parametrize("suffix", (".mhd", ".nhdr"))
def test_a_short_detached_data_file_is_truncated(tmp_path, suffix):
    import SimpleITK as sitk

    path = tmp_path / f"P1_t2{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 3, 2), np.float32)), str(path))
    assert load_volume(path).shape == (2, 3, 4)
    data = path.with_suffix(".raw")
    data.write_bytes(data.read_bytes()[:40])
    with pytest.raises(CaseError, match="t2 file is truncated: its header declares 96 bytes of voxels, "
                                        "the file holds 40"):
        load_volume(path, "P1", "t2")


def test_no_format_allocates_what_a_lying_header_declares(tmp_path):
    """The whole process (SimpleITK's C++ buffers included) stays far below the 2 GB declared."""
    paths = [str(declaring(tmp_path, f"big{s}", (800, 800, 800))) for s in FORMATS]
    code = "\n".join([
        "import json, sys",
        "from gliotype.errors import CaseError",
        "from gliotype.input import load_volume",
        "out = []",
        "for p in sys.argv[1:]:",
        "    try:",
        "        load_volume(p)",
        "        out.append('read')",
        "    except CaseError as e:",
        "        out.append(str(e))",
        # VmHWM: this process's own peak; ru_maxrss would keep the forking pytest worker's
        "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))",
        "print(json.dumps([out, int(hwm.split()[1]) * 1024]))"])
    env = {**os.environ, "PYTHONPATH": str(Path(gliotype.__file__).parents[1])}  # this gliotype
    res = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    messages, max_rss = json.loads(res.stdout.strip().splitlines()[-1])
    assert all("declares 512,000,000 voxels" in m for m in messages), messages
    assert max_rss < 1e9, f"peak RSS {max_rss / 1e6:.0f} MB"


def test_the_voxel_limit_is_configurable_and_inclusive(tmp_path):
    path = save(tmp_path / "P1_t2.nii.gz", brain())
    voxels = int(np.prod(SHAPE))
    assert "over the limit of 3,071 (input.max_voxels)" in refusal(path, max_voxels=voxels - 1)[0]
    assert load_volume(path, max_voxels=voxels).shape == SHAPE
    # a 4D file holding one volume has as many voxels as the volume
    one = save(tmp_path / "P1_t1.nii", brain()[..., None])
    assert load_volume(one, max_voxels=voxels).shape == SHAPE


def test_a_multi_volume_file_is_refused_from_its_header(tmp_path):
    path = declaring(tmp_path, "P1_t2.nii", (200, 200, 100, 30))  # 120 M voxels, 30 volumes, 32 bytes
    message, peak = refusal(path)
    assert message.endswith("t2 image is 4D with 30 volumes (expected one 3D volume)") and peak < PEAK_BUDGET


def _cohort_with_a_lying_header(tmp_path):
    df = manifest_of(tmp_path, 3)
    big = declaring(tmp_path / "big", "P1_t2.nii.gz", (800, 800, 800))
    Path(df.loc[1, "t2"]).write_bytes(big.read_bytes())
    return df


@pytest.mark.parametrize("workers", [1, 2])
def test_validate_rejects_that_case_in_one_line_and_checks_the_others(tmp_path, workers):
    df = _cohort_with_a_lying_header(tmp_path)
    reports = validate_manifest(df, workers=workers)
    assert [r.status for r in reports] == ["ok", "rejected", "ok"]
    assert reports[1].reason == ("patient P1 [P1_t2.nii.gz]: t2 image header declares 512,000,000 voxels "
                                 "(800 x 800 x 800), over the limit of 134,217,728 (input.max_voxels)")
    line = [ln for ln in validation_table(reports).splitlines() if ln.startswith("P1 ")]
    assert line == ["P1       REJECTED  P1_t2.nii.gz: t2 image header declares 512,000,000 voxels (800 x 800 x 800), "
                    "over the limit of 134,217,728 (input.max_voxels)"]
    small = validate_manifest(df, workers=workers, rules=InputRules(max_voxels=int(np.prod(SHAPE)) - 1))
    assert all("over the limit of 3,071" in r.reason for r in small)


def test_cli_validate_prints_one_line_and_takes_the_limit(tmp_path):
    df = _cohort_with_a_lying_header(tmp_path)
    manifest = tmp_path / "manifest.csv"
    df.to_csv(manifest, index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["cohort", "validate", str(manifest), "--workers", "2"])
    assert res.exit_code == 0, res.output
    rejected = [ln for ln in res.output.splitlines() if "REJECTED" in ln]
    assert len(rejected) == 1 and rejected[0].startswith("P1 ") and "P1_t2.nii.gz" in rejected[0]
    assert "declares 512,000,000 voxels" in rejected[0] and "2 of 3 cases usable" in res.output
    res = runner.invoke(app, ["cohort", "validate", str(manifest), "--max-voxels", str(int(np.prod(SHAPE)) - 1)])
    assert res.exit_code != 0 and "0 of 3 cases usable" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["cohort", "validate", str(manifest), "--set", "input.max_voxels=512000000"])
    assert res.exit_code == 0 and "P1_t2.nii.gz: t2 file is truncated" in res.output


def test_a_run_validates_under_its_config(tmp_path):
    """``gliotype run``'s cohort stage takes the run's config to the validator."""
    from gliotype import stages
    from gliotype.config import load_config

    manifest = tmp_path / "manifest.csv"
    manifest_of(tmp_path, 2).to_csv(manifest, index=False)
    assert len(stages.cohort(None, manifest, tmp_path / "run", 1, load_config("tiny"))) == 2
    with pytest.raises(GliotypeError, match="no usable case"):
        stages.cohort(None, manifest, tmp_path / "run", 1, load_config("tiny", overrides=["input.max_voxels=3071"]))
