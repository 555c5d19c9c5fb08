"""The on-disk layout of a *work folder*, a *model folder* and a *run folder*: every path under
them is spelled here, and only here.

A work folder (``gliotype preprocess --out``, ``RUNDIR/work/``, the temporary folder of
``gliotype predict``) holds the per-patient intermediate files of every stage and the
models fitted on them. Stages never join path parts themselves: they ask a
:class:`WorkDir` (and the :class:`CaseDir`, :class:`AtlasDir`, :class:`SslDir` and
:class:`TransformsDir` it hands out) for the file they read or write. The names are those
of existing work folders, so a cached work folder keeps working::

    WORKDIR/
        preprocessing.csv                   status table of preprocessing
        modalities_status.csv               status table of the modalities
        brain_network_status.csv            status table of the brain networks
        atlas/                              AtlasDir: the fixed atlas positions
            atlas_sampling.npz  tract_matrix.npz  tract_grid.json
        ssl/                                SslDir: the self-supervised models
            node/  edge/                    checkpoints (gliotype.utils.training)
            node_autoencoder.safetensors  edge_model.safetensors  models.json  report.json  config.yaml
        patients/<id>/                      CaseDir: one patient
            done.json                       preprocessing's cache key, written last
            preprocessed/                   on the template grid
                t1.nii.gz  t1c.nii.gz  t2.nii.gz  flair.nii.gz  mask.nii.gz  brain_mask.nii.gz
                fa.nii.gz (FA cases)  qc.json  preprocess.log
                transforms/                 TransformsDir: ANTs files + transforms.json
            modalities/
                tumor_image.nii.gz  point_cloud.npz  crossing.npz  atlas_samples.npz  modalities.json
            brain_network.safetensors       x_B
            audit/descriptors.json          cached tumour descriptors
            inspect.png                     ``gliotype inspect``

The exported model folder (``RUNDIR/model/``, :class:`ModelDir`) holds ``atlas/`` and
``ssl/`` folders laid out as here, so :class:`AtlasDir` and :class:`SslDir` also read those.

A run folder (``gliotype run --out RUNDIR``, :class:`RunDir`) holds the work folder, the
split, the trained networks, the exported model and the results::

    RUNDIR/
        config.yaml  manifest.csv (when scanned from --data)  validation.csv
        work/                               WorkDir (shared by the repeats)
        splits.csv                          patient_id, split, idh
        models/<row slug>/                  MultiModalDir: encoders trained on half A (Table 4 rows)
        models/<baseline>/                  Table 3's 3D CNNs (resnet34, densenet121)
        models-B/<row slug>/                the cross-fitting fold (encoders on half B)
        model/                              ModelDir: the exported model (split 0 only)
        results/                            ResultsDir
            table{2,3,4}.csv/.md  predictions.csv  roc.png  report.html  summary.json
            audit.csv  audit_homophily.csv  audit_descriptors.csv  audit.md  audit.json
            repeats_table{2,3,4}.csv/.md    (top folder, with --repeats > 1)
        repeats/split-seed-<S>/             a RunDir of its own for split seed S (splits.csv,
                                            models/, models-B/, results/); its work/,
                                            config.yaml, manifest.csv are the top folder's
        explain/                            ExplainDir (``gliotype explain``)
            <id>/ (explain.json and the files of ``explain_case``)
            edge_density.csv  edge_density_groups.csv  edge_density.png  summary.json

Every class is a frozen dataclass around ``root`` and is :class:`os.PathLike`, so
``Path(workdir)`` still works where a function is handed a :class:`WorkDir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

_F = TypeVar("_F", bound="_Folder")


@dataclass(frozen=True)
class _Folder:
    """A folder of the layout: ``root`` and the named paths under it."""

    root: Path

    def __post_init__(self) -> None:
        if not isinstance(self.root, Path):
            object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls: type[_F], folder: str | os.PathLike | _F) -> _F:
        """``folder`` itself when it already is one, else the folder at that path."""
        return folder if isinstance(folder, cls) else cls(Path(folder))

    def __fspath__(self) -> str:
        return os.fspath(self.root)


@dataclass(frozen=True)
class TransformsDir(_Folder):
    """``patients/<id>/preprocessed/transforms/``: the stored registrations of one patient.

    :data:`json` lists the files in the order ``ants.apply_transforms`` takes them; the
    other names are the stable names the ANTs files are copied to.
    """

    @property
    def json(self) -> Path:
        return self.root / "transforms.json"

    @property
    def affine(self) -> Path:
        return self.root / "affine.mat"

    @property
    def warp(self) -> Path:
        return self.root / "warp.nii.gz"

    @property
    def inverse_warp(self) -> Path:
        return self.root / "inverse_warp.nii.gz"

    def coregistration(self, role: str) -> Path:
        """The rigid co-registration of sequence ``role`` to the T1c."""
        return self.root / f"coreg_{role}.mat"

    def coregistrations(self) -> list[Path]:
        """Every co-registration file present (any role)."""
        return sorted(self.root.glob(self.coregistration("*").name))

    def file(self, name: str) -> Path:
        """A file named in ``transforms.json`` (names relative to this folder)."""
        return self.root / name


@dataclass(frozen=True)
class CaseDir(_Folder):
    """``WORKDIR/patients/<id>/``: everything stored for one patient."""

    @property
    def patient_id(self) -> str:
        return self.root.name

    # preprocessing (gliotype.preprocessing.pipeline)
    @property
    def done(self) -> Path:
        """Preprocessing's cache key and outputs, written last: the mark of a preprocessed patient."""
        return self.root / "done.json"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed"

    def sequence(self, role: str) -> Path:
        """A preprocessed sequence (``t1``, ``t1c``, ``t2``, ``flair``) on the template grid."""
        return self.preprocessed / f"{role}.nii.gz"

    @property
    def mask(self) -> Path:
        """The tumour labels on the template grid."""
        return self.preprocessed / "mask.nii.gz"

    @property
    def brain_mask(self) -> Path:
        return self.preprocessed / "brain_mask.nii.gz"

    @property
    def fa(self) -> Path:
        return self.preprocessed / "fa.nii.gz"

    @property
    def qc(self) -> Path:
        return self.preprocessed / "qc.json"

    @property
    def preprocess_log(self) -> Path:
        return self.preprocessed / "preprocess.log"

    @property
    def transforms(self) -> TransformsDir:
        return TransformsDir(self.preprocessed / "transforms")

    def preprocessed_name(self, path: Path) -> str:
        """``path`` relative to :attr:`preprocessed`, with ``/`` (as ``done.json`` lists the outputs)."""
        return Path(path).relative_to(self.preprocessed).as_posix()

    # modalities (gliotype.modalities.build)
    @property
    def modalities(self) -> Path:
        return self.root / "modalities"

    @property
    def tumor_image(self) -> Path:
        """x_I."""
        return self.modalities / "tumor_image.nii.gz"

    @property
    def point_cloud(self) -> Path:
        """x_P."""
        return self.modalities / "point_cloud.npz"

    @property
    def crossing(self) -> Path:
        """The point-to-tract crossings of eq. 2."""
        return self.modalities / "crossing.npz"

    @property
    def atlas_samples(self) -> Path:
        """Region and tract samples, the inputs of the self-supervised models."""
        return self.modalities / "atlas_samples.npz"

    @property
    def modalities_meta(self) -> Path:
        """``modalities.json``, the modalities' cache key, written last."""
        return self.modalities / "modalities.json"

    # later stages
    @property
    def brain_network(self) -> Path:
        """x_B (gliotype.self_supervised.stage)."""
        return self.root / "brain_network.safetensors"

    @property
    def audit_descriptors(self) -> Path:
        """Cached hand-made descriptors (gliotype.audit.descriptors)."""
        return self.root / "audit" / "descriptors.json"

    @property
    def inspect_png(self) -> Path:
        """``gliotype inspect``'s default output."""
        return self.root / "inspect.png"


@dataclass(frozen=True)
class AtlasDir(_Folder):
    """``WORKDIR/atlas/`` (and a model folder's ``atlas/``): the atlas positions of every patient."""

    @property
    def sampling(self) -> Path:
        """Node and tract positions, region pairs, edge index and key (``AtlasSampling``)."""
        return self.root / "atlas_sampling.npz"

    @property
    def tract_matrix(self) -> Path:
        """Tract probabilities as a sparse voxel x tract matrix."""
        return self.root / "tract_matrix.npz"

    @property
    def tract_grid(self) -> Path:
        """Shape and affine of the tract atlas grid."""
        return self.root / "tract_grid.json"

    @property
    def regions(self) -> Path:
        """Region centroids and names for Fig. 8 (a model folder's ``atlas/`` only)."""
        return self.root / "regions.npz"

    @property
    def copied(self) -> tuple[Path, ...]:
        """What a model folder copies from the work folder's ``atlas/``."""
        return self.sampling, self.tract_matrix, self.tract_grid


@dataclass(frozen=True)
class SslDir(_Folder):
    """``WORKDIR/ssl/`` (and a model folder's ``ssl/``): the self-supervised models."""

    @property
    def node_checkpoints(self) -> Path:
        return self.root / "node"

    @property
    def edge_checkpoints(self) -> Path:
        return self.root / "edge"

    @property
    def node_model(self) -> Path:
        return self.root / "node_autoencoder.safetensors"

    @property
    def edge_model(self) -> Path:
        return self.root / "edge_model.safetensors"

    @property
    def models(self) -> Path:
        """``models.json``: sizes and the cache key, written last."""
        return self.root / "models.json"

    @property
    def report(self) -> Path:
        """``report.json``: the evidence of learning."""
        return self.root / "report.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def copied(self) -> tuple[Path, ...]:
        """What a model folder copies from the work folder's ``ssl/``."""
        return self.node_model, self.edge_model, self.models


@dataclass(frozen=True)
class MultiModalDir(_Folder):
    """One trained multi-modal network (``RUNDIR/models/<row>/``, a model folder's ``multimodal/``)."""

    @property
    def weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def meta(self) -> Path:
        """``model.json``: the cache key and encoders, written last."""
        return self.root / "model.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def features(self) -> Path:
        """``features.csv``: u_I, u_P, u_T, u_B of every featurised patient."""
        return self.root / "features.csv"

    @property
    def features_meta(self) -> Path:
        """``features.json``: the model key ``features.csv`` was made with."""
        return self.root / "features.json"

    @property
    def copied(self) -> tuple[Path, ...]:
        """What a model folder copies."""
        return self.weights, self.meta


@dataclass(frozen=True)
class PopulationGraphDir(_Folder):
    """A model folder's ``population_graph/``: the stored graph and its GNN."""

    @property
    def nodes(self) -> Path:
        """u_T, u_B, labels and transductive probabilities of the stored patients."""
        return self.root / "nodes.npz"

    @property
    def standardisation(self) -> Path:
        return self.root / "standardisation.npz"

    @property
    def gnn(self) -> Path:
        return self.root / "gnn.safetensors"

    @property
    def meta(self) -> Path:
        """``meta.json``: graph row, theta, threshold, GNN sizes."""
        return self.root / "meta.json"


@dataclass(frozen=True)
class ModelDir(_Folder):
    """A trained-model folder (``RUNDIR/model/``), what ``gliotype predict`` loads::

        MODEL/
            config.yaml  manifest.json (sha256 of every other file)
            ssl/               SslDir (the copied models)
            atlas/             AtlasDir (the copied positions + regions.npz)
            multimodal/        MultiModalDir (weights, model.json)
            population_graph/  PopulationGraphDir
    """

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def ssl(self) -> SslDir:
        return SslDir(self.root / "ssl")

    @property
    def atlas(self) -> AtlasDir:
        return AtlasDir(self.root / "atlas")

    @property
    def multimodal(self) -> MultiModalDir:
        return MultiModalDir(self.root / "multimodal")

    @property
    def population_graph(self) -> PopulationGraphDir:
        return PopulationGraphDir(self.root / "population_graph")

    def required(self) -> tuple[str, ...]:
        """The files a complete model folder holds (``manifest.json`` aside), relative, ``/``-separated."""
        pg = self.population_graph
        paths = (self.config, *self.ssl.copied, *self.atlas.copied, *self.multimodal.copied, pg.nodes, pg.gnn,
                 pg.meta, pg.standardisation, self.atlas.regions)
        return tuple(p.relative_to(self.root).as_posix() for p in paths)



@dataclass(frozen=True)
class WorkDir(_Folder):
    """A work folder: the per-patient folders, the atlas positions, the self-supervised models
    and the status tables of the stages."""

    @property
    def patients(self) -> Path:
        return self.root / "patients"

    def case(self, patient_id) -> CaseDir:
        return CaseDir(self.patients / str(patient_id))

    def case_ids(self) -> list[str]:
        """The patient folders present, sorted (empty when there is none)."""
        if not self.patients.is_dir():
            return []
        return sorted(p.name for p in self.patients.iterdir() if p.is_dir())

    @property
    def atlas(self) -> AtlasDir:
        return AtlasDir(self.root / "atlas")

    @property
    def ssl(self) -> SslDir:
        return SslDir(self.root / "ssl")

    @property
    def preprocessing_status(self) -> Path:
        return self.root / "preprocessing.csv"

    @property
    def modalities_status(self) -> Path:
        return self.root / "modalities_status.csv"

    @property
    def brain_network_status(self) -> Path:
        return self.root / "brain_network_status.csv"


def row_slug(name: str) -> str:
    """The folder name of a Table 4 row: ``fI + fP + MLP + Lcontr`` -> ``fI_fP_MLP_Lcontr`` (a slug is its own slug)."""
    keep = "".join(c if c.isalnum() else "_" for c in name)
    return "_".join(p for p in keep.split("_") if p)


@dataclass(frozen=True)
class ResultsDir(_Folder):
    """``RUNDIR/results/``: the tables, predictions, figures, report and audit of one split
    (``gliotype audit --out`` writes its files into any folder laid out the same)."""

    #: the tables of a run, in report order
    TABLES = ("table2", "table3", "table4")

    def table(self, name: str | int, ext: str = "csv") -> Path:
        """``table{2,3,4}.csv`` (or ``.md``); ``name`` is ``"table3"`` or ``3``."""
        return self.root / f"{_table_name(name)}.{ext}"

    def repeats_table(self, name: str | int, ext: str = "csv") -> Path:
        """``repeats_table{2,3,4}.csv`` (or ``.md``): mean and SD over the repeated splits (top folder only)."""
        return self.root / f"repeats_{_table_name(name)}.{ext}"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def roc(self) -> Path:
        """Fig. 6."""
        return self.root / "roc.png"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    # the information audit (gliotype.audit)
    @property
    def audit(self) -> Path:
        """``audit.csv``: one row per feature group."""
        return self.root / "audit.csv"

    @property
    def audit_homophily(self) -> Path:
        return self.root / "audit_homophily.csv"

    @property
    def audit_descriptors(self) -> Path:
        return self.root / "audit_descriptors.csv"

    @property
    def audit_markdown(self) -> Path:
        return self.root / "audit.md"

    @property
    def audit_json(self) -> Path:
        return self.root / "audit.json"

    @property
    def audit_files(self) -> tuple[Path, ...]:
        """Every file the audit writes."""
        return self.audit, self.audit_homophily, self.audit_descriptors, self.audit_markdown, self.audit_json


def _table_name(name: str | int) -> str:
    return f"table{name}" if isinstance(name, int) else name


@dataclass(frozen=True)
class ExplainDir(_Folder):
    """``RUNDIR/explain/`` (``gliotype explain``): a folder per patient and the cohort summary."""

    def case(self, patient_id) -> Path:
        """The patient's folder (the files of :func:`gliotype.prediction.explain_case`)."""
        return self.root / str(patient_id)

    def case_json(self, patient_id) -> Path:
        return self.case(patient_id) / "explain.json"

    @property
    def edge_density(self) -> Path:
        return self.root / "edge_density.csv"

    @property
    def edge_density_groups(self) -> Path:
        return self.root / "edge_density_groups.csv"

    @property
    def edge_density_png(self) -> Path:
        return self.root / "edge_density.png"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


_REPEATS = "repeats"
_REPEAT_PREFIX = "split-seed-"


@dataclass(frozen=True)
class RunDir(_Folder):
    """A run folder (``gliotype run --out``); see the module's docstring for the tree.

    A repeated split ``repeats/split-seed-<S>/`` is a :class:`RunDir` of its own; it holds only
    its ``splits.csv``, ``models*/`` and ``results/``, and hands out the top folder's work
    folder, ``config.yaml``, ``manifest.csv`` and ``validation.csv`` (written once per run).
    """

    @property
    def is_repeat(self) -> bool:
        """A folder ``repeats/split-seed-<S>`` of another run."""
        return self.root.parent.name == _REPEATS and self.root.name.startswith(_REPEAT_PREFIX)

    @property
    def top(self) -> RunDir:
        """The run this folder is a repeat of (itself when it is none)."""
        return RunDir(self.root.parent.parent) if self.is_repeat else self

    # of the run as a whole (a repeat's are the top folder's)
    @property
    def config(self) -> Path:
        return self.top.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        """The manifest ``gliotype run --data`` scanned (``--manifest`` runs use theirs)."""
        return self.top.root / "manifest.csv"

    @property
    def validation(self) -> Path:
        """``validation.csv``: status and reason of every manifest row."""
        return self.top.root / "validation.csv"

    @property
    def work(self) -> WorkDir:
        return WorkDir(self.top.root / "work")

    # of one split
    @property
    def splits(self) -> Path:
        return self.root / "splits.csv"

    def models(self, fold: str = "A") -> Path:
        """The networks whose encoders trained on half ``fold``: ``models/`` (A), ``models-B/``."""
        return self.root / ("models" if fold == "A" else f"models-{fold}")

    def model_row(self, name: str, fold: str = "A") -> MultiModalDir:
        """The multi-modal network of a Table 4 row (its name or its slug)."""
        return MultiModalDir(self.models(fold) / row_slug(name))

    def baseline(self, name: str) -> Path:
        """A 3D CNN of Table 3 (``resnet34``, ``densenet121``), trained once on halves A and B."""
        return self.models("A") / name

    @property
    def model(self) -> ModelDir:
        """The exported model (the first split's)."""
        return ModelDir(self.root / "model")

    @property
    def results(self) -> ResultsDir:
        return ResultsDir(self.root / "results")

    @property
    def explain(self) -> ExplainDir:
        return ExplainDir(self.root / "explain")

    # repeated splits
    def repeat(self, split_seed: int) -> RunDir:
        """The folder of the split drawn with seed ``split_seed`` (the first split is the top folder)."""
        return RunDir(self.top.root / _REPEATS / f"{_REPEAT_PREFIX}{int(split_seed)}")

    def repeats(self) -> list[RunDir]:
        """The repeat folders present, sorted by path (empty when there is none)."""
        return [RunDir(p) for p in sorted((self.top.root / _REPEATS).glob(f"{_REPEAT_PREFIX}*"))]


__all__ = ["AtlasDir", "CaseDir", "ExplainDir", "ModelDir", "MultiModalDir", "PopulationGraphDir", "ResultsDir",
           "RunDir", "SslDir", "TransformsDir", "WorkDir", "row_slug"]
