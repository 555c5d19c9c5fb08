"""gliotype's outputs for a BIDS dataset, as a BIDS derivative dataset.

For the rows of a manifest scanned from BIDS (their ``bids`` prefix), ``gliotype
preprocess`` and ``gliotype predict`` also write, by default into
``<BIDS root>/derivatives/gliotype`` (the BIDS convention; ``--bids-derivatives DIR``
elsewhere)::

    dataset_description.json        Name, BIDSVersion, DatasetType derivative, GeneratedBy gliotype + version
    sub-01/[ses-02/]anat/
        sub-01[_ses-02]_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz
        sub-01[_ses-02]_ce-<agent>_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz   (t1c)
        sub-01[_ses-02]_space-MNI152NLin2009aSym_desc-preproc_T2w.nii.gz
        sub-01[_ses-02]_space-MNI152NLin2009aSym_desc-preproc_FLAIR.nii.gz
        sub-01[_ses-02]_space-MNI152NLin2009aSym_desc-preproc_dseg.nii.gz             (tumour labels)
        sub-01[_ses-02]_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz
        sub-01[_ses-02]_desc-idh_prediction.json                                       (predict)

The space is that of the template preprocessing registers to, the ICBM152 2009a nonlinear
symmetric template shipped by nilearn (:func:`gliotype.atlases.load_template`): TemplateFlow's
``MNI152NLin2009aSym``. The files are copies of what gliotype computed (the work folder's
preprocessed volumes, the prediction's ``prediction.json``), each written atomically and
only when its bytes differ: rerunning is idempotent. A folder holding another pipeline's
derivative dataset is refused.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gliotype import __version__
from gliotype.errors import GliotypeError
from gliotype.input.bids.dataset import DESCRIPTION, case_folder, description, parse_prefix
from gliotype.input.bids.scan import PIPELINE
from gliotype.input.manifest import is_blank
from gliotype.layout import CaseDir, WorkDir
from gliotype.utils.io import atomic_path, atomic_write, sha256_file
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: TemplateFlow name of the template grid of the preprocessed images (nilearn's ICBM152 2009a
#: nonlinear symmetric, ``mni_icbm152_*_tal_nlin_sym_09a``).
TEMPLATE_SPACE = "MNI152NLin2009aSym"
BIDS_VERSION = "1.10.0"
#: The ``ce-`` label of the t1c output when the input's name carries none (``acq-gd_T1w``...).
DEFAULT_CEAGENT = "contrast"
#: role -> the end of its output name (after ``space-``), for the preprocessed volumes.
PREPROCESSED = {"t1": "desc-preproc_T1w", "t1c": "desc-preproc_T1w", "t2": "desc-preproc_T2w",
                "flair": "desc-preproc_FLAIR", "mask": "desc-preproc_dseg", "brain_mask": "desc-brain_mask"}


def default_root(bids_root: str | Path) -> Path:
    """Where a BIDS dataset's gliotype outputs go by default: ``<bids_root>/derivatives/gliotype``."""
    return Path(bids_root) / "derivatives" / PIPELINE


def dataset_description() -> dict:
    """The ``dataset_description.json`` of gliotype's derivative dataset."""
    return {"Name": "gliotype outputs", "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
            "GeneratedBy": [{"Name": PIPELINE, "Version": __version__,
                             "Description": "glioma IDH status from T1, T1c, T2, FLAIR and a tumour mask"}]}


def ensure_dataset(root: str | Path) -> Path:
    """``root`` as gliotype's derivative dataset: its ``dataset_description.json`` written (or
    updated to this version); a :class:`GliotypeError` when another pipeline's dataset is there."""
    root = Path(root)
    if (root / DESCRIPTION).exists():
        generated = description(root).get("GeneratedBy")
        names = [str(g.get("Name", "")) for g in generated if isinstance(g, dict)] if isinstance(generated, list) else []
        if PIPELINE not in names:
            raise GliotypeError(f"BIDS derivatives folder {root.name} holds another dataset ({DESCRIPTION} names "
                                f"{', '.join(names) or 'no pipeline'}); choose another --bids-derivatives folder")
    text = json.dumps(dataset_description(), indent=2) + "\n"
    path = root / DESCRIPTION
    if not path.exists() or path.read_text(encoding="utf-8", errors="replace") != text:
        atomic_write(path, text)
    return root


@dataclass(frozen=True)
class BidsOutput:
    """Where one case's outputs go in a derivative dataset: ``root`` (the dataset folder) and
    the case's entity ``prefix`` (``sub-01`` or ``sub-01_ses-02``)."""

    root: Path
    prefix: str

    def __post_init__(self):
        parse_prefix(self.prefix)  # only sub-<label>[_ses-<label>]: it names folders
        object.__setattr__(self, "root", Path(self.root))

    @property
    def anat(self) -> Path:
        return self.root / case_folder(self.prefix) / "anat"

    def preprocessed(self, role: str, ceagent: str = DEFAULT_CEAGENT) -> Path:
        """The output of a preprocessed volume (a role of :data:`PREPROCESSED`)."""
        ce = f"_ce-{ceagent}" if role == "t1c" else ""
        return self.anat / f"{self.prefix}{ce}_space-{TEMPLATE_SPACE}_{PREPROCESSED[role]}.nii.gz"

    @property
    def prediction(self) -> Path:
        """The copy of ``prediction.json``."""
        return self.anat / f"{self.prefix}_desc-idh_prediction.json"


def bids_output(row: Mapping, derivatives: str | Path | bool = True) -> BidsOutput | None:
    """The :class:`BidsOutput` of a manifest row scanned from BIDS (None for another row).

    ``derivatives``: True for the default root (:func:`default_root` of the row's
    ``bids_root``), a folder, or False (None returned).
    """
    prefix = row.get("bids")
    if derivatives is False or is_blank(prefix):
        return None
    if derivatives is True:
        if is_blank(row.get("bids_root")):
            raise GliotypeError(f"patient {row.get('patient_id')}: the manifest has no bids_root to put the BIDS "
                                "derivatives under; give --bids-derivatives DIR")
        return BidsOutput(default_root(str(row["bids_root"])), str(prefix).strip())
    return BidsOutput(Path(derivatives), str(prefix).strip())


def ceagent_of(path) -> str:
    """The ``ce-`` label in a t1c file's BIDS name, else :data:`DEFAULT_CEAGENT`."""
    m = re.search(r"_ce-([A-Za-z0-9]+)_", Path(str(path or "")).name)
    return m.group(1) if m else DEFAULT_CEAGENT


def publish(source: Path, target: Path) -> bool:
    """Copy ``source`` to ``target`` atomically unless ``target`` already holds its bytes;
    True when written."""
    if target.is_file() and target.stat().st_size == source.stat().st_size and sha256_file(target) == sha256_file(source):
        return False
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return True


def _case_sources(case: CaseDir) -> dict[str, Path]:
    """role -> preprocessed file; a sequence the patient lacks (``input.missing_sequences``: a zero
    volume in the work folder, named in ``done.json``) is no derivative."""
    missing = set(json.loads(case.done.read_text()).get("missing_sequences", [])) if case.done.exists() else set()
    sources = {"t1": case.sequence("t1"), "t1c": case.sequence("t1c"), "t2": case.sequence("t2"),
               "flair": case.sequence("flair"), "mask": case.mask, "brain_mask": case.brain_mask}
    return {role: path for role, path in sources.items() if role not in missing}


def write_preprocessed(out: BidsOutput, case: CaseDir, ceagent: str = DEFAULT_CEAGENT) -> int:
    """Copy one preprocessed patient (``case``, done) into the derivative dataset; files written."""
    ensure_dataset(out.root)
    return sum(publish(src, out.preprocessed(role, ceagent)) for role, src in _case_sources(case).items())


def write_prediction(out: BidsOutput, prediction_json: str | Path) -> Path:
    """Copy a prediction's ``prediction.json`` into the derivative dataset."""
    ensure_dataset(out.root)
    publish(Path(prediction_json), out.prediction)
    return out.prediction


@dataclass(frozen=True)
class Planned:
    """One BIDS row to copy once preprocessed: its patient ID, its output and the ``ce-`` label of its t1c."""

    patient_id: str
    out: BidsOutput
    ceagent: str = DEFAULT_CEAGENT


def plan_derivatives(rows: pd.DataFrame | Iterable[Mapping], derivatives: str | Path | bool = True) -> list[Planned]:
    """The outputs of the BIDS rows of ``rows`` (``derivatives``: see :func:`bids_output`), their
    derivative datasets made now (:func:`ensure_dataset`): a folder that cannot be written stops
    before any preprocessing, not after it."""
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else [dict(r) for r in rows]
    plan = []
    for row in records:
        out = bids_output(row, derivatives)
        if out is not None:
            plan.append(Planned(str(row.get("patient_id", "")).strip(), out, ceagent_of(row.get("t1c"))))
    if not plan and not isinstance(derivatives, bool):
        log.warning("BIDS derivatives folder given, but no manifest row was scanned from a BIDS dataset; nothing "
                    "is written there")
    for root in dict.fromkeys(p.out.root for p in plan):
        ensure_dataset(root)
    return plan


def write_planned(plan: list[Planned], work: str | Path | WorkDir) -> dict:
    """Copy every planned patient preprocessed in ``work`` (``done.json`` present; others are left out).

    Returns ``{"patients": n, "written": files written, "roots": [derivative folders]}``.
    """
    work = WorkDir.of(work)
    patients = written = 0
    roots: list[Path] = []
    for p in plan:
        case = work.case(p.patient_id)
        if not p.patient_id or not case.done.exists():
            continue
        written += write_preprocessed(p.out, case, p.ceagent)
        patients += 1
        roots += [] if p.out.root in roots else [p.out.root]
    if patients:
        log.info("BIDS derivatives: %d patients (%d files written) in %s", patients, written,
                 ", ".join(str(r) for r in roots))
    return {"patients": patients, "written": written, "roots": roots}


def preprocessed_derivatives(rows: pd.DataFrame | Iterable[Mapping], work: str | Path | WorkDir,
                             derivatives: str | Path | bool = True) -> dict:
    """Copy the preprocessed volumes of every BIDS row of ``rows`` preprocessed in ``work`` into
    its derivative dataset (:func:`plan_derivatives` then :func:`write_planned`)."""
    return write_planned(plan_derivatives(rows, derivatives), work)


__all__ = ["BIDS_VERSION", "BidsOutput", "DEFAULT_CEAGENT", "PREPROCESSED", "Planned", "TEMPLATE_SPACE", "bids_output",
           "ceagent_of", "dataset_description", "default_root", "ensure_dataset", "plan_derivatives",
           "preprocessed_derivatives", "publish", "write_planned", "write_prediction", "write_preprocessed"]
