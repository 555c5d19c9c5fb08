"""The on-disk layout of a *work folder*: every path under it is spelled here, and only here.

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

The exported model folder (``RUNDIR/model/``) holds ``atlas/`` and ``ssl/`` folders laid
out as here, so :class:`AtlasDir` and :class:`SslDir` also read those. The run folder
(``models/``, ``results/``...) is not described here.

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


__all__ = ["AtlasDir", "CaseDir", "ModelDir", "MultiModalDir", "PopulationGraphDir", "SslDir", "TransformsDir", "WorkDir"]
