"""The work folder (``WorkDir``) and what it hands out: one patient (``CaseDir``), its
registrations (``TransformsDir``), the atlas positions (``AtlasDir``), the self-supervised
models (``SslDir``), the pretrained image encoder (``ImagePretrainingDir``). The tree is drawn
in :mod:`gliotype.layout`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gliotype.layout.folder import _Folder


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

    # preprocessing (gliotype.preprocessing.cohort, .cache)
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
        """x_B (gliotype.self_supervised.encode)."""
        return self.root / "brain_network.safetensors"

    @property
    def brain_network_record(self) -> Path:
        """``brain_network.json``: x_B's cache key, size and sha256, written after it."""
        return self.root / "brain_network.json"

    @property
    def radiomics(self) -> Path:
        """``radiomics/``: pyradiomics features of the preprocessed sequences (gliotype.evaluation.radiomics)."""
        return self.root / "radiomics"

    @property
    def radiomics_features(self) -> Path:
        """``features.json``: feature name -> value."""
        return self.radiomics / "features.json"

    @property
    def radiomics_record(self) -> Path:
        """``radiomics.json``: the features' cache key, size and sha256, written last."""
        return self.radiomics / "radiomics.json"

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
    def record(self) -> Path:
        """``atlas.json``: the sampling's key and the size and sha256 of :attr:`copied`, written last."""
        return self.root / "atlas.json"

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
class ImagePretrainingDir(_Folder):
    """``WORKDIR/image_pretraining/``: f_I and its compartment head pretrained on every patient of
    the cohort (``multimodal.image.pretrain_epochs``, docs/design.md point 50)."""

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def weights(self) -> Path:
        return self.root / "image_encoder.safetensors"

    @property
    def record(self) -> Path:
        """``image_encoder.json``: the cache key and the patients, written last."""
        return self.root / "image_encoder.json"


@dataclass(frozen=True)
class WorkDir(_Folder):
    """A work folder: the per-patient folders, the atlas positions, the self-supervised models
    and the status tables of the stages."""

    @property
    def lock(self) -> Path:
        """``.gliotype.lock``: held by the one command preprocessing into this folder (:mod:`gliotype.utils.lock`)."""
        return self.root / ".gliotype.lock"

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
    def image_pretraining(self) -> ImagePretrainingDir:
        return ImagePretrainingDir(self.root / "image_pretraining")

    @property
    def preprocessing_status(self) -> Path:
        return self.root / "preprocessing.csv"

    @property
    def modalities_status(self) -> Path:
        return self.root / "modalities_status.csv"

    @property
    def brain_network_status(self) -> Path:
        return self.root / "brain_network_status.csv"
