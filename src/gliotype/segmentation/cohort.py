"""Segmenting the cases of a manifest that have no tumour mask (``gliotype cohort segment``).

For every row whose ``mask`` cell is empty, :func:`segment_cohort` writes into ``out``
``<pid>_seg_auto.nii.gz`` (the mask), ``<pid>_seg_auto.png`` (the figure to check it) and
``<pid>_seg_auto.json`` (the segmenter, its fingerprint, the volumes and warnings); then
``out/manifest.csv``, the manifest with those rows pointing to their automatic masks, and
``out/segmentation.csv``, one row per case (``given``, ``segmented``, ``reused`` or
``failed`` with its one-line reason). A case that fails never stops the others and keeps
an empty mask cell in the new manifest (validation then rejects it with the reason).
Rerunning reuses a case's mask when its JSON names the same segmenter fingerprint (the
sha256 of the model's files), so an interrupted cohort resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gliotype.errors import CaseError, GliotypeError, stop_on_environment
from gliotype.input import InputRules, check_patient_id, is_blank
from gliotype.input.manifest import read_manifest, write_manifest
from gliotype.prediction._util import jsonable
from gliotype.segmentation.case import FIGURE_SUFFIX, auto_mask_name, segment_case
from gliotype.segmentation.segmenter import Segmenter
from gliotype.utils.io import atomic_write, make_folder, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.progress import progress

log = get_logger(__name__)

MANIFEST_NAME = "manifest.csv"
TABLE_NAME = "segmentation.csv"


@dataclass
class CohortSegmentation:
    """What :func:`segment_cohort` did."""

    table: pd.DataFrame
    manifest: Path
    seconds: float

    def count(self, status: str) -> int:
        return int((self.table["status"] == status).sum()) if len(self.table) else 0

    @property
    def ok(self) -> bool:
        """False when cases needed a mask and none got one."""
        wanted = self.count("segmented") + self.count("reused") + self.count("failed")
        return wanted == 0 or self.count("failed") < wanted

    def summary(self) -> str:
        lines = [f"{len(self.table)} cases: {self.count('given')} with a mask, {self.count('segmented')} segmented, "
                 f"{self.count('reused')} reused from an earlier run, {self.count('failed')} failed "
                 f"({self.seconds:.0f} s)"]
        for r in self.table.itertuples():
            if r.status == "failed":
                lines.append(f"  {r.problem}")
            elif r.warnings:
                lines.append(f"  patient {r.patient_id}: {r.warnings}")
        lines.append(f"new manifest: {self.manifest}")
        return "\n".join(lines)


def _reusable(sidecar: Path, mask: Path, fingerprint: str) -> dict | None:
    if not (sidecar.is_file() and mask.is_file()):
        return None
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("fingerprint") == fingerprint else None


def segment_cohort(manifest: str | Path | pd.DataFrame, segmenter: Segmenter, out: str | Path, *,
                   rules: InputRules = InputRules(), config=None) -> CohortSegmentation:
    """Masks for the rows of ``manifest`` without one, and a new manifest pointing to them (module doc)."""
    t0 = time.perf_counter()
    df = read_manifest(manifest) if not isinstance(manifest, pd.DataFrame) else manifest.copy()
    out = make_folder(out)
    fingerprint = segmenter.fingerprint()
    rows = []
    for i in progress(list(range(len(df))), "segment"):
        row = df.iloc[i].to_dict()
        pid = str(row.get("patient_id", "")).strip()
        entry = {"patient_id": pid, "status": "given", "mask": "", "whole_tumor_ml": None, "necrotic_core_ml": None,
                 "edema_ml": None, "enhancing_ml": None, "warnings": "", "problem": ""}
        rows.append(entry)
        if not is_blank(row.get("mask")):
            continue
        try:
            pid = check_patient_id(pid)
            mask, sidecar = out / auto_mask_name(pid), out / f"{pid}_seg_auto.json"
            record = _reusable(sidecar, mask, fingerprint)
            entry["status"] = "reused"
            if record is None:
                seg = segment_case(segmenter, row, pid, mask, rules=rules, config=config,
                                   figure=out / f"{pid}{FIGURE_SUFFIX}")
                record = {"patient_id": pid, **seg.record(), "fingerprint": fingerprint}
                atomic_write(sidecar, json.dumps(jsonable(record), indent=2))
                entry["status"] = "segmented"
        except (CaseError, GliotypeError) as exc:
            text = str(exc) if isinstance(exc, CaseError) else f"patient {pid}: {exc}"
            log.warning("%s", text)
            entry.update(status="failed", problem=text)
            continue
        except MemoryError:
            entry.update(status="failed", problem=f"patient {pid}: out of memory while segmenting")
            continue
        except Exception as exc:  # one case never stops the others, unless the machine stops them all
            stop_on_environment(exc)
            entry.update(status="failed", problem=f"patient {pid}: unexpected problem while segmenting "
                                                  f"({type(exc).__name__})")
            continue
        df.iloc[i, df.columns.get_loc("mask")] = str(mask)
        v = record.get("volumes_ml", {})
        entry.update(mask=mask.name, whole_tumor_ml=v.get("whole_tumor"), necrotic_core_ml=v.get("necrotic_core"),
                     edema_ml=v.get("edema"), enhancing_ml=v.get("enhancing"),
                     warnings="; ".join(record.get("warnings", [])))
    table = pd.DataFrame(rows)
    write_csv_atomic(table, out / TABLE_NAME)
    path = write_manifest(df, out / MANIFEST_NAME)
    res = CohortSegmentation(table, path, time.perf_counter() - t0)
    log.info("cohort segmentation: %d segmented, %d reused, %d failed", res.count("segmented"), res.count("reused"),
             res.count("failed"))
    return res


__all__ = ["MANIFEST_NAME", "TABLE_NAME", "CohortSegmentation", "segment_cohort"]
